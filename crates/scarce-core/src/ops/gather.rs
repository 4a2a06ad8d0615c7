//! Reads at fixed positions within each plane (`y[p, o] = x[p, idx[p, o]]`) and its adjoint,
//! the per-plane scatter-add, as a [`LinearMap`] pair. Max pooling's backward scatters
//! through it. Planes are independent, so both directions run in parallel over planes.

use super::linear::LinearMap;
use candle_core::{Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Arc;

/// `y[p, o] = x[p, idx[p·out_plane + o]]` from shape `input` (`planes · in_plane` elements) to
/// shape `output` (`planes · out_plane` elements).
#[derive(Debug, Clone)]
pub(crate) struct PlaneGather {
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub planes: usize,
    /// Positions within the plane, `planes · out_plane`.
    pub idx: Arc<Vec<u32>>,
}

impl PlaneGather {
    fn in_plane(&self) -> usize {
        self.input.iter().product::<usize>() / self.planes
    }
    fn out_plane(&self) -> usize {
        self.output.iter().product::<usize>() / self.planes
    }
    /// Planes per parallel task: enough work per task to amortise scheduling.
    fn chunk(&self) -> usize {
        (1 << 14) / self.in_plane().max(1) + 1
    }
    fn flat_idx(&self) -> Vec<u32> {
        let (ip, op) = (self.in_plane(), self.out_plane());
        self.idx
            .iter()
            .enumerate()
            .map(|(i, &j)| ((i / op) * ip) as u32 + j)
            .collect()
    }
}

impl LinearMap for PlaneGather {
    fn name(&self, adjoint: bool) -> &'static str {
        if adjoint {
            "scarce-plane-scatter-add"
        } else {
            "scarce-plane-gather"
        }
    }
    fn in_shape(&self) -> Shape {
        Shape::from(self.input.clone())
    }
    fn out_shape(&self) -> Shape {
        Shape::from(self.output.clone())
    }
    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T> {
        let (ip, op, ch) = (self.in_plane(), self.out_plane(), self.chunk());
        if adjoint {
            let mut out = vec![T::zero(); self.planes * ip];
            out.par_chunks_mut(ip * ch)
                .zip(x.par_chunks(op * ch))
                .zip(self.idx.par_chunks(op * ch))
                .for_each(|((dst, src), idx)| {
                    for ((d, s), i) in dst.chunks_mut(ip).zip(src.chunks(op)).zip(idx.chunks(op)) {
                        for (&v, &j) in s.iter().zip(i) {
                            d[j as usize] += v;
                        }
                    }
                });
            out
        } else {
            let mut out = vec![T::zero(); self.planes * op];
            out.par_chunks_mut(op * ch)
                .zip(x.par_chunks(ip * ch))
                .zip(self.idx.par_chunks(op * ch))
                .for_each(|((dst, src), idx)| {
                    for ((d, s), i) in dst.chunks_mut(op).zip(src.chunks(ip)).zip(idx.chunks(op)) {
                        for (d, &j) in d.iter_mut().zip(i) {
                            *d = s[j as usize];
                        }
                    }
                });
            out
        }
    }
    fn device(&self, x: &Tensor, adjoint: bool) -> candle_core::Result<Tensor> {
        let flat = self.flat_idx();
        let idx = Tensor::from_vec(flat, self.idx.len(), x.device())?;
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
        // 3 planes of 4 → 5 reads each, with repeats: the adjoint must add, not overwrite.
        let idx = Arc::new(vec![0, 3, 3, 1, 0, 2, 2, 2, 0, 1, 3, 0, 0, 1, 2]);
        super::super::linear::check_map(super::PlaneGather {
            input: vec![3, 2, 2],
            output: vec![3, 5],
            planes: 3,
            idx,
        });
    }
}
