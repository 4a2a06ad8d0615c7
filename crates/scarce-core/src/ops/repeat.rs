//! Nearest-neighbour upsampling by whole factors (each input element becomes a block of
//! `f₀×f₁×f₂` copies) as a [`LinearMap`]: the adjoint sums each block. `interpolate` takes
//! this path when its nearest taps are exactly `o / f` on every axis (a UNet's ×2), one pass
//! each way where the per-axis tap path takes one pass per axis and a scatter.

use super::linear::{apply, LinearMap};
use super::par;
use crate::Result;
use candle_core::{Shape, Tensor, WithDType};
use std::sync::Arc;

/// Repeat every element of `[planes, d, h, w]` into a `f₀×f₁×f₂` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepeatMap {
    /// The input's full shape (`[N, C, *spatial]`, 1 to 3 spatial axes).
    dims: Vec<usize>,
    /// Factor per spatial axis.
    factors: Vec<usize>,
}

impl RepeatMap {
    /// `[planes, d, h, w]` and `[f₀, f₁, f₂]`, 1-padded in front for fewer spatial axes.
    fn geometry(&self) -> ([usize; 4], [usize; 3]) {
        let spatial = &self.dims[2..];
        let planes = self.dims[0] * self.dims[1];
        let mut s = [1; 3];
        let mut f = [1; 3];
        let off = 3 - spatial.len();
        s[off..].copy_from_slice(spatial);
        f[off..].copy_from_slice(&self.factors);
        ([planes, s[0], s[1], s[2]], f)
    }

    fn out_dims(&self) -> Vec<usize> {
        let mut o = self.dims[..2].to_vec();
        o.extend(self.dims[2..].iter().zip(&self.factors).map(|(s, f)| s * f));
        o
    }
}

impl LinearMap for RepeatMap {
    fn name(&self, adjoint: bool) -> &'static str {
        if adjoint {
            "scarce-upsample-nearest-adjoint"
        } else {
            "scarce-upsample-nearest"
        }
    }

    fn in_shape(&self) -> Shape {
        Shape::from(self.dims.clone())
    }

    fn out_shape(&self) -> Shape {
        Shape::from(self.out_dims())
    }

    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T> {
        let ([planes, d, h, w], [fd, fh, fw]) = self.geometry();
        let (small, big) = (d * h * w, d * h * w * fd * fh * fw);
        let ow = w * fw;
        if !adjoint {
            let mut y = vec![T::zero(); planes * big];
            par::chunks_mut(&mut y, big, |p, out| {
                let src = &x[p * small..][..small];
                for (r, row) in src.chunks_exact(w).enumerate() {
                    // Output rows (r / h, r % h) · (fd, fh) + (a, b) all equal the first.
                    let (z, y0) = (r / h, r % h);
                    let first = (z * fd * h * fh + y0 * fh) * ow;
                    for (i, &v) in row.iter().enumerate() {
                        out[first + i * fw..][..fw].fill(v);
                    }
                    for a in 0..fd {
                        for b in 0..fh {
                            let at = first + (a * h * fh + b) * ow;
                            if at != first {
                                out.copy_within(first..first + ow, at);
                            }
                        }
                    }
                }
            });
            y
        } else {
            let mut y = vec![T::zero(); planes * small];
            par::chunks_mut(&mut y, small, |p, out| {
                let src = &x[p * big..][..big];
                for (r, acc) in out.chunks_exact_mut(w).enumerate() {
                    let (z, y0) = (r / h, r % h);
                    for a in 0..fd {
                        for b in 0..fh {
                            let row = &src[((z * fd + a) * h * fh + y0 * fh + b) * ow..][..ow];
                            for (acc, block) in acc.iter_mut().zip(row.chunks_exact(fw)) {
                                *acc += block.iter().fold(T::zero(), |s, &v| s + v);
                            }
                        }
                    }
                }
            });
            y
        }
    }

    fn device(&self, x: &Tensor, adjoint: bool) -> candle_core::Result<Tensor> {
        // [.., s, 1] broadcast to [.., s, f] per axis; the adjoint sums the f axes.
        let (mut unsq, mut wide) = (self.dims[..2].to_vec(), self.dims[..2].to_vec());
        for (&s, &f) in self.dims[2..].iter().zip(&self.factors) {
            unsq.extend([s, 1]);
            wide.extend([s, f]);
        }
        if adjoint {
            let axes: Vec<usize> = (0..self.factors.len()).map(|a| 3 + 2 * a).collect();
            x.reshape(wide)?
                .sum_keepdim(axes)?
                .reshape(self.dims.clone())
        } else {
            x.reshape(unsq)?
                .broadcast_as(wide)?
                .contiguous()?
                .reshape(self.out_dims())
        }
    }
}

/// `x` (`[N, C, *spatial]`) with each element repeated `factors[a]` times along spatial axis
/// `a`.
pub(crate) fn repeat(x: &Tensor, factors: Vec<usize>) -> Result<Tensor> {
    let map = RepeatMap {
        dims: x.dims().to_vec(),
        factors,
    };
    apply(x, &Arc::new(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_candle_form_and_are_adjoint() {
        for (dims, factors) in [
            (vec![2, 3, 4, 5], vec![2, 2]),
            (vec![1, 2, 3, 2, 4], vec![2, 3, 1]),
            (vec![2, 1, 7], vec![3]),
        ] {
            super::super::linear::check_map(RepeatMap { dims, factors });
        }
    }
}
