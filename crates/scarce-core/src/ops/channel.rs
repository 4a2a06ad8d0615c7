//! Per-channel broadcast and reduction as one [`LinearMap`] pair: `expand` copies a `[C]`
//! vector (or one `[N, C]` row per sample) over `[N, C, *spatial]`, its adjoint sums over the
//! axes the vector does not have.
//!
//! candle differentiates a broadcast by a reduction over several non-trailing axes, which is
//! a slow strided loop on the CPU (70 ms for a 100×64×28×28 batch); biases, batch norm and
//! per-sample conditioning (a diffusion UNet's time embedding) go through these kernels
//! instead.

use super::linear::{apply, apply_adjoint, LinearMap};
use super::par;
use crate::{Error, Result};
use candle_core::{Shape, Tensor, WithDType};
use std::sync::Arc;

/// `[C]` (or `[N, C]` when `per_sample`) ↔ `[N, C, *rest]`.
#[derive(Debug, Clone)]
pub(crate) struct ChannelMap {
    dims: Vec<usize>,
    per_sample: bool,
}

impl ChannelMap {
    fn n(&self) -> usize {
        self.dims[0]
    }
    fn c(&self) -> usize {
        self.dims[1]
    }
    fn inner(&self) -> usize {
        self.dims[2..].iter().product()
    }
}

impl LinearMap for ChannelMap {
    fn name(&self, adjoint: bool) -> &'static str {
        match (adjoint, self.per_sample) {
            (false, false) => "scarce-channel-expand",
            (true, false) => "scarce-channel-sum",
            (false, true) => "scarce-sample-channel-expand",
            (true, true) => "scarce-sample-channel-sum",
        }
    }
    fn in_shape(&self) -> Shape {
        if self.per_sample {
            Shape::from((self.n(), self.c()))
        } else {
            Shape::from(self.c())
        }
    }
    fn out_shape(&self) -> Shape {
        Shape::from(self.dims.clone())
    }
    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T> {
        let (n, c, inner) = (self.n(), self.c(), self.inner());
        // Each plane summed in f64 for accuracy.
        let plane_sum =
            |p: usize| -> f64 { x[p * inner..][..inner].iter().map(|v| v.to_f64()).sum() };
        let per_sample = self.per_sample;
        if adjoint {
            let sums = if per_sample {
                par::map(n * c, plane_sum)
            } else {
                par::map(c, |ch| (0..n).map(|b| plane_sum(b * c + ch)).sum())
            };
            return sums.into_iter().map(T::from_f64).collect();
        }
        let mut out: Vec<T> = par::zeroed(n * c * inner);
        par::chunks_mut(&mut out, c * inner, |b, sample| {
            let row = if per_sample { &x[b * c..][..c] } else { x };
            for (plane, &v) in sample.chunks_mut(inner).zip(row) {
                plane.fill(v)
            }
        });
        out
    }
    fn device(&self, x: &Tensor, adjoint: bool) -> candle_core::Result<Tensor> {
        let (n, c, inner) = (self.n(), self.c(), self.inner());
        match (adjoint, self.per_sample) {
            (true, true) => x.reshape((n, c, inner))?.sum(2),
            (true, false) => x.reshape((n, c, inner))?.sum(2)?.sum(0),
            (false, per_sample) => x
                .reshape((if per_sample { n } else { 1 }, c, 1))?
                .broadcast_as((n, c, inner))?
                .contiguous()?
                .reshape(self.dims.clone()),
        }
    }
}

fn map_for(dims: &[usize], per_sample: bool) -> Result<Arc<ChannelMap>> {
    if dims.len() < 2 {
        return Err(Error::shape("x", "[N, C, ...]", dims));
    }
    Ok(Arc::new(ChannelMap {
        dims: dims.to_vec(),
        per_sample,
    }))
}

/// Copies `v` over `dims` (`[N, C, ...]`): `v` is `[C]` (the same for every sample) or
/// `[N, C]` (a row per sample).
pub fn channel_expand(v: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let per_sample = v.rank() == 2;
    let map = map_for(dims, per_sample)?;
    if v.shape() != &map.in_shape() {
        return Err(Error::shape(
            "v",
            format!("[{c}] or [{n}, {c}]", n = map.n(), c = map.c()),
            v.dims(),
        ));
    }
    apply(v, &map)
}

/// Sums `x` (`[N, C, ...]`) over every axis but axis 1, giving `[C]`.
pub fn channel_sum(x: &Tensor) -> Result<Tensor> {
    apply_adjoint(x, &map_for(x.dims(), false)?)
}

/// Sums `x` (`[N, C, ...]`) over its spatial axes, giving `[N, C]`.
pub fn sample_channel_sum(x: &Tensor) -> Result<Tensor> {
    apply_adjoint(x, &map_for(x.dims(), true)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_match_candle_form_and_are_adjoint() {
        for per_sample in [false, true] {
            super::super::linear::check_map(super::ChannelMap {
                dims: vec![3, 4, 2, 5],
                per_sample,
            });
        }
    }
}
