//! Reads at fixed flat positions (`y[o] = x[idx[o]]`) and its adjoint, scatter-add, as a
//! [`LinearMap`] pair. Max pooling's backward scatters through it.

use super::linear::LinearMap;
use candle_core::{Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Arc;

/// `y[o] = x[idx[o]]` from shape `input` to shape `output`.
#[derive(Debug, Clone)]
pub(crate) struct GatherMap {
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub idx: Arc<Vec<u32>>,
}

impl LinearMap for GatherMap {
    fn name(&self, adjoint: bool) -> &'static str {
        if adjoint {
            "scarce-scatter-add"
        } else {
            "scarce-gather"
        }
    }
    fn in_shape(&self) -> Shape {
        Shape::from(self.input.clone())
    }
    fn out_shape(&self) -> Shape {
        Shape::from(self.output.clone())
    }
    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T> {
        if adjoint {
            let mut out = vec![T::zero(); self.input.iter().product()];
            for (&i, &v) in self.idx.iter().zip(x) {
                out[i as usize] += v;
            }
            out
        } else {
            self.idx.par_iter().map(|&i| x[i as usize]).collect()
        }
    }
    fn device(&self, x: &Tensor, adjoint: bool) -> candle_core::Result<Tensor> {
        let idx = Tensor::from_vec(self.idx.to_vec(), self.idx.len(), x.device())?;
        if adjoint {
            let numel = self.input.iter().product::<usize>();
            Tensor::zeros(numel, x.dtype(), x.device())?
                .index_add(&idx, &x.flatten_all()?, 0)?
                .reshape(self.input.clone())
        } else {
            x.flatten_all()?
                .index_select(&idx, 0)?
                .reshape(self.output.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn kernels_match_candle_form_and_are_adjoint() {
        // Repeated indices: the adjoint must add, not overwrite.
        let idx = Arc::new(vec![0, 5, 5, 11, 3, 0, 7]);
        super::super::linear::check_map(super::GatherMap {
            input: vec![3, 4],
            output: vec![7],
            idx,
        });
    }
}
