//! Weighted sums along one axis through fixed taps: the mechanism behind average pooling,
//! adaptive pooling and interpolation (a box pool or a separable interpolation is a product
//! of one-axis maps), plus the device-generic max along one axis.
//!
//! Output position `o` on an axis reads input positions `idx[o·T + t]` (`t < T`) with weights
//! `w[o·T + t]`; an index equal to the axis length marks padding. The weighted form is a
//! [`LinearMap`] (its backward is its adjoint, exact at every order).

use super::linear::{apply, LinearMap};
use crate::Result;
use candle_core::{Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Arc;

/// The taps of one axis.
#[derive(Debug, Clone)]
pub(crate) struct AxisTaps {
    /// Output length.
    pub out_len: usize,
    /// Taps per output position.
    pub t: usize,
    /// Input positions, `out_len * t`; the axis length means "padding".
    pub idx: Vec<u32>,
    /// Weights, `out_len * t` (unused by [`max`]).
    pub w: Vec<f64>,
}

/// The weighted taps applied along axis `dim` of a tensor of shape `dims`.
#[derive(Debug, Clone)]
struct AxisMap {
    dims: Vec<usize>,
    dim: usize,
    taps: AxisTaps,
}

impl AxisMap {
    fn outer(&self) -> usize {
        self.dims[..self.dim].iter().product()
    }
    fn inner(&self) -> usize {
        self.dims[self.dim + 1..].iter().product()
    }
}

impl LinearMap for AxisMap {
    fn name(&self, adjoint: bool) -> &'static str {
        if adjoint {
            "scarce-axis-taps-adjoint"
        } else {
            "scarce-axis-taps"
        }
    }
    fn in_shape(&self) -> Shape {
        Shape::from(self.dims.clone())
    }
    fn out_shape(&self) -> Shape {
        let mut d = self.dims.clone();
        d[self.dim] = self.taps.out_len;
        Shape::from(d)
    }
    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T> {
        let (len, out, inner, t) = (
            self.dims[self.dim],
            self.taps.out_len,
            self.inner(),
            self.taps.t,
        );
        let (src_len, dst_len) = if adjoint { (out, len) } else { (len, out) };
        let mut y = vec![T::zero(); self.outer() * dst_len * inner];
        y.par_chunks_mut(dst_len * inner)
            .zip(x.par_chunks(src_len * inner))
            .for_each(|(y, x)| {
                for o in 0..out {
                    for k in 0..t {
                        let i = self.taps.idx[o * t + k] as usize;
                        if i >= len {
                            continue;
                        }
                        let w = T::from_f64(self.taps.w[o * t + k]);
                        let (dst, src) = if adjoint { (i, o) } else { (o, i) };
                        let (d, s) = (&mut y[dst * inner..][..inner], &x[src * inner..][..inner]);
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d += w * s;
                        }
                    }
                }
            });
        y
    }
    fn device(&self, x: &Tensor, adjoint: bool) -> candle_core::Result<Tensor> {
        let len = self.dims[self.dim];
        let (out, t) = (self.taps.out_len, self.taps.t);
        let idx: Vec<u32> = self
            .taps
            .idx
            .iter()
            .map(|&i| if i as usize >= len { 0 } else { i })
            .collect();
        let idx = Tensor::from_vec(idx, out * t, x.device())?;
        let w = Tensor::from_vec(
            self.taps.w.clone(),
            tap_shape(self.dims.len(), self.dim, out, t),
            x.device(),
        )?
        .to_dtype(x.dtype())?;
        let split = split_shape(&self.dims, self.dim, out, t);
        if adjoint {
            let spread = x
                .unsqueeze(self.dim + 1)?
                .broadcast_as(split.clone())?
                .broadcast_mul(&w)?;
            let mut merged = self.dims.clone();
            merged[self.dim] = out * t;
            let spread = spread.reshape(merged)?;
            Tensor::zeros(self.dims.clone(), x.dtype(), x.device())?.index_add(
                &idx,
                &spread.contiguous()?,
                self.dim,
            )
        } else {
            x.index_select(&idx, self.dim)?
                .reshape(split)?
                .broadcast_mul(&w)?
                .sum(self.dim + 1)
        }
    }
}

/// Shape with `dims[dim]` split into `(out, t)`.
fn split_shape(dims: &[usize], dim: usize, out: usize, t: usize) -> Vec<usize> {
    let mut s = dims[..dim].to_vec();
    s.push(out);
    s.push(t);
    s.extend_from_slice(&dims[dim + 1..]);
    s
}

/// Shape `[1, …, out, t, …, 1]` for broadcasting per-tap data against [`split_shape`].
fn tap_shape(rank: usize, dim: usize, out: usize, t: usize) -> Vec<usize> {
    let mut s = vec![1; rank + 1];
    s[dim] = out;
    s[dim + 1] = t;
    s
}

/// Weighted sum along `dim`: `y[.., o, ..] = Σ_t w[o,t] · x[.., idx[o,t], ..]`.
pub(crate) fn weighted(x: &Tensor, dim: usize, taps: &AxisTaps) -> Result<Tensor> {
    apply(
        x,
        &Arc::new(AxisMap {
            dims: x.dims().to_vec(),
            dim,
            taps: taps.clone(),
        }),
    )
}

/// Max along `dim` with candle ops (any device): `y[.., o, ..] = max_t x[.., idx[o,t], ..]`,
/// padding taps being `-inf`. The gradient goes to the first maximal tap only (PyTorch's
/// rule); it flows through `index_select` and a `where`, both exact at every order.
pub(crate) fn max(x: &Tensor, dim: usize, taps: &AxisTaps) -> Result<Tensor> {
    let in_len = x.dim(dim)?;
    let padded = taps.idx.iter().any(|&i| i as usize >= in_len);
    let src = if padded {
        let mut pad_shape = x.dims().to_vec();
        pad_shape[dim] = 1;
        let neg_inf =
            Tensor::full(f32::NEG_INFINITY, pad_shape, x.device())?.to_dtype(x.dtype())?;
        Tensor::cat(&[x, &neg_inf], dim)?
    } else {
        x.clone()
    };
    let idx = Tensor::from_vec(taps.idx.clone(), taps.idx.len(), x.device())?;
    let sel =
        src.index_select(&idx, dim)?
            .reshape(split_shape(x.dims(), dim, taps.out_len, taps.t))?;
    if taps.t == 1 {
        return Ok(sel.squeeze(dim + 1)?);
    }
    let arg = sel.detach().argmax_keepdim(dim + 1)?;
    let tap_ids = Tensor::arange(0u32, taps.t as u32, x.device())?.reshape(tap_shape(
        x.rank(),
        dim,
        1,
        taps.t,
    ))?;
    let mask = arg.broadcast_eq(&tap_ids)?;
    let zeros = Tensor::zeros(sel.shape(), x.dtype(), x.device())?;
    Ok(mask.where_cond(&sel, &zeros)?.sum(dim + 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_candle_form_and_are_adjoint() {
        // Two taps per output, a padding tap (index 5) and a repeated input position.
        let taps = AxisTaps {
            out_len: 3,
            t: 2,
            idx: vec![0, 1, 1, 5, 4, 2],
            w: vec![0.5, 0.25, 1.0, 0.0, -2.0, 3.0],
        };
        super::super::linear::check_map(AxisMap {
            dims: vec![2, 5, 3],
            dim: 1,
            taps,
        });
    }

    #[test]
    fn device_max_pool_matches_cpu_kernel() {
        use crate::ops::{max_pool2d, PoolOpts};
        use crate::rng::Stream;
        use candle_core::{DType, Device};
        let x = Stream::new(4, "pool")
            .normal_tensor((2, 3, 7, 6), 0.0, 1.0, DType::F64, &Device::Cpu)
            .unwrap();
        for opts in [
            PoolOpts::new(2).ceil_mode(true),
            PoolOpts::new(3).stride(2).padding(1),
        ] {
            let cpu = max_pool2d(&x, &opts).unwrap();
            let mut y = x.clone();
            for a in 0..2 {
                let t = super::super::pool::max_taps_for(&x, &opts, a).unwrap();
                y = max(&y, a + 2, &t).unwrap();
            }
            assert_eq!(scarce_fixtures::rel_err(&y, &cpu).unwrap(), 0.0);
        }
    }
}
