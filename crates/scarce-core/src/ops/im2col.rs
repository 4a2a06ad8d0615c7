//! `im2col` and its adjoint `col2im`, a [`LinearMap`]: each one's backward is the other, so
//! autodiff through them is exact at every order. With
//! the products done by candle's matmul, convolution forward and backward run at
//! matrix-multiply speed on the CPU. On other devices the same map is an `index_select`
//! with precomputed indices (whose backward, `index_add`, has `index_select` as backward).

use super::linear::{apply, apply_adjoint, LinearMap};
use super::par;
use crate::Result;
use candle_core::{Shape, Tensor, WithDType};
use std::sync::Arc;

/// Geometry of a convolution over three spatial axes; 2D convolutions use depth 1 with a
/// kernel, stride and dilation of 1 and no padding along depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Geom {
    pub n: usize,
    pub c: usize,
    pub input: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dil: [usize; 3],
    pub output: [usize; 3],
}

impl Geom {
    pub fn kernel_len(&self) -> usize {
        self.kernel.iter().product()
    }
    pub fn out_len(&self) -> usize {
        self.output.iter().product()
    }
    pub fn in_len(&self) -> usize {
        self.input.iter().product()
    }
    /// Rows of the column matrix: `C * prod(kernel)`.
    pub fn rows(&self) -> usize {
        self.c * self.kernel_len()
    }
    /// Columns of the column matrix: `N * prod(output)`.
    pub fn cols(&self) -> usize {
        self.n * self.out_len()
    }
    fn input_shape(&self) -> Shape {
        Shape::from(vec![
            self.n,
            self.c,
            self.input[0],
            self.input[1],
            self.input[2],
        ])
    }
    fn cols_shape(&self) -> Shape {
        Shape::from((self.rows(), self.cols()))
    }
}

/// The output positions `o` along one axis whose input coordinate `o*s + off` lies in
/// `0..len`, as a half-open range.
fn valid(out: usize, s: usize, off: isize, len: usize) -> (usize, usize) {
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(s)
    };
    let hi = if (len as isize) <= off {
        0
    } else {
        ((len as isize - off) as usize).div_ceil(s)
    };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// For kernel offset `k` on axis `a`: the offset `k*dil - pad`.
fn offset(g: &Geom, a: usize, k: usize) -> isize {
    (k * g.dil[a]) as isize - g.pad[a] as isize
}

/// Calls `f(row, kd, kh, kw)` style decomposition of a row index.
fn split_row(g: &Geom, r: usize) -> (usize, [usize; 3]) {
    let [_, kh, kw] = g.kernel;
    let klen = g.kernel_len();
    let c = r / klen;
    let k = r % klen;
    (c, [k / (kh * kw), (k / kw) % kh, k % kw])
}

/// Fills row `r` of the column matrix (all `N` samples) from the contiguous input `x`.
fn fill_row<T: WithDType>(g: &Geom, x: &[T], r: usize, row: &mut [T]) {
    let [od, oh, ow] = g.output;
    let [id, ih, iw] = g.input;
    let out_len = g.out_len();
    let (c, k) = split_row(g, r);
    let off = [offset(g, 0, k[0]), offset(g, 1, k[1]), offset(g, 2, k[2])];
    let rd = valid(od, g.stride[0], off[0], id);
    let rh = valid(oh, g.stride[1], off[1], ih);
    let rw = valid(ow, g.stride[2], off[2], iw);
    for n in 0..g.n {
        let plane = &x[(n * g.c + c) * g.in_len()..][..g.in_len()];
        let dst = &mut row[n * out_len..][..out_len];
        for d in rd.0..rd.1 {
            let zd = (d * g.stride[0]) as isize + off[0];
            for h in rh.0..rh.1 {
                let zh = (h * g.stride[1]) as isize + off[1];
                let src = &plane[(zd as usize * ih + zh as usize) * iw..][..iw];
                let drow = &mut dst[(d * oh + h) * ow..][..ow];
                if g.stride[2] == 1 {
                    let start = (rw.0 as isize + off[2]) as usize;
                    drow[rw.0..rw.1].copy_from_slice(&src[start..start + (rw.1 - rw.0)]);
                } else {
                    for w in rw.0..rw.1 {
                        drow[w] = src[((w * g.stride[2]) as isize + off[2]) as usize];
                    }
                }
            }
        }
    }
}

/// Adds the columns of sample `n`, channel `c` back into that input plane.
fn add_plane<T: WithDType>(g: &Geom, cols: &[T], n: usize, c: usize, plane: &mut [T]) {
    let [od, oh, ow] = g.output;
    let [id, ih, iw] = g.input;
    let out_len = g.out_len();
    let klen = g.kernel_len();
    for k in 0..klen {
        let r = c * klen + k;
        let (_, kk) = split_row(g, r);
        let off = [
            offset(g, 0, kk[0]),
            offset(g, 1, kk[1]),
            offset(g, 2, kk[2]),
        ];
        let rd = valid(od, g.stride[0], off[0], id);
        let rh = valid(oh, g.stride[1], off[1], ih);
        let rw = valid(ow, g.stride[2], off[2], iw);
        let src_row = &cols[r * g.cols() + n * out_len..][..out_len];
        for d in rd.0..rd.1 {
            let zd = (d * g.stride[0]) as isize + off[0];
            for h in rh.0..rh.1 {
                let zh = (h * g.stride[1]) as isize + off[1];
                let dst = &mut plane[(zd as usize * ih + zh as usize) * iw..][..iw];
                let src = &src_row[(d * oh + h) * ow..][..ow];
                for w in rw.0..rw.1 {
                    dst[((w * g.stride[2]) as isize + off[2]) as usize] += src[w];
                }
            }
        }
    }
}

/// `im2col` into `cols` (`rows × cols`), rows in parallel when `parallel`.
pub(crate) fn im2col_into<T: WithDType>(g: &Geom, x: &[T], cols: &mut [T], parallel: bool) {
    if parallel {
        par::chunks_mut(cols, g.cols(), |r, row| fill_row(g, x, r, row));
    } else {
        cols.chunks_mut(g.cols())
            .enumerate()
            .for_each(|(r, row)| fill_row(g, x, r, row));
    }
}

/// `col2im` added into `x` (`N·C` planes), planes in parallel when `parallel`.
pub(crate) fn col2im_into<T: WithDType>(g: &Geom, cols: &[T], x: &mut [T], parallel: bool) {
    let f = |(p, plane): (usize, &mut [T])| add_plane(g, cols, p / g.c, p % g.c, plane);
    if parallel {
        par::chunks_mut(x, g.in_len(), |p, plane| f((p, plane)));
    } else {
        x.chunks_mut(g.in_len()).enumerate().for_each(f);
    }
}

fn im2col_cpu<T: WithDType>(g: &Geom, x: &[T]) -> Vec<T> {
    let mut cols = vec![T::zero(); g.rows() * g.cols()];
    im2col_into(g, x, &mut cols, true);
    cols
}

fn col2im_cpu<T: WithDType>(g: &Geom, cols: &[T]) -> Vec<T> {
    let mut x = vec![T::zero(); g.n * g.c * g.in_len()];
    col2im_into(g, cols, &mut x, true);
    x
}

/// Flat indices into the input followed by one zero sentinel (index `N*C*prod(input)`),
/// in the column matrix's order; the device-generic form of `im2col`.
fn im2col_indices(g: &Geom) -> Vec<u32> {
    let sentinel = (g.n * g.c * g.in_len()) as u32;
    let [od, oh, ow] = g.output;
    let mut idx = Vec::with_capacity(g.rows() * g.cols());
    for r in 0..g.rows() {
        let (c, k) = split_row(g, r);
        for n in 0..g.n {
            for d in 0..od {
                for h in 0..oh {
                    for w in 0..ow {
                        let z = [
                            (d * g.stride[0]) as isize + offset(g, 0, k[0]),
                            (h * g.stride[1]) as isize + offset(g, 1, k[1]),
                            (w * g.stride[2]) as isize + offset(g, 2, k[2]),
                        ];
                        let inside = z
                            .iter()
                            .zip(g.input.iter())
                            .all(|(&z, &l)| z >= 0 && (z as usize) < l);
                        idx.push(if inside {
                            let plane = (n * g.c + c) * g.in_len();
                            (plane
                                + (z[0] as usize * g.input[1] + z[1] as usize) * g.input[2]
                                + z[2] as usize) as u32
                        } else {
                            sentinel
                        });
                    }
                }
            }
        }
    }
    idx
}

impl LinearMap for Geom {
    fn name(&self, adjoint: bool) -> &'static str {
        if adjoint {
            "scarce-col2im"
        } else {
            "scarce-im2col"
        }
    }
    fn in_shape(&self) -> Shape {
        self.input_shape()
    }
    fn out_shape(&self) -> Shape {
        self.cols_shape()
    }
    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T> {
        if adjoint {
            col2im_cpu(self, x)
        } else {
            im2col_cpu(self, x)
        }
    }
    /// `index_select` with precomputed indices (adjoint: `index_add`), whose candle
    /// backward passes are each other.
    fn device(&self, t: &Tensor, adjoint: bool) -> candle_core::Result<Tensor> {
        let idx = Tensor::from_vec(im2col_indices(self), self.rows() * self.cols(), t.device())?;
        let numel = self.n * self.c * self.in_len();
        if adjoint {
            let zeros = Tensor::zeros(numel + 1, t.dtype(), t.device())?;
            zeros
                .index_add(&idx, &t.flatten_all()?, 0)?
                .narrow(0, 0, numel)?
                .reshape(self.input_shape())
        } else {
            let ext = Tensor::cat(
                &[t.flatten_all()?, Tensor::zeros(1, t.dtype(), t.device())?],
                0,
            )?;
            ext.index_select(&idx, 0)?.reshape(self.cols_shape())
        }
    }
}

/// `[N, C, D, H, W]` → `[C·kD·kH·kW, N·Do·Ho·Wo]`: row `(c, kd, kh, kw)`, column `(n, od, oh, ow)`.
pub(crate) fn im2col(x: &Tensor, geom: Geom) -> Result<Tensor> {
    apply(x, &Arc::new(geom))
}

/// The adjoint of [`im2col`]: sums columns back into `[N, C, D, H, W]`.
pub(crate) fn col2im(cols: &Tensor, geom: Geom) -> Result<Tensor> {
    apply_adjoint(cols, &Arc::new(geom))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_candle_form_and_are_adjoint() {
        super::super::linear::check_map(Geom {
            n: 2,
            c: 3,
            input: [3, 5, 6],
            kernel: [2, 3, 2],
            stride: [1, 2, 3],
            pad: [1, 1, 2],
            dil: [2, 1, 2],
            output: [2, 3, 3],
        });
    }
}
