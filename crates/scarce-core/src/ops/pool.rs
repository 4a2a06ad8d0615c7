//! Max, average and adaptive average pooling in 2D and 3D, PyTorch semantics, exact
//! gradients at every order (see [`super::taps`]: a box pool is a product of one-axis pools).

use super::gather::PlaneGather;
use super::linear::apply_adjoint;
use super::taps::{self, AxisTaps};
use crate::{Error, Result};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Settings of a pooling window over `D` spatial axes (PyTorch's meaning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolOpts<const D: usize> {
    /// Window size per axis.
    pub kernel: [usize; D],
    /// Step per axis (PyTorch's default: the kernel size).
    pub stride: [usize; D],
    /// Implicit padding on both sides (`-inf` for max, zeros for average); at most half the
    /// kernel, as in PyTorch.
    pub padding: [usize; D],
    /// Spacing between window taps (max pooling only).
    pub dilation: [usize; D],
    /// Use `ceil` instead of `floor` for the output size (a last, partial window).
    pub ceil_mode: bool,
    /// Average pooling: count padded positions in the divisor.
    pub count_include_pad: bool,
    /// Average pooling: divide by this instead of the window size.
    pub divisor_override: Option<usize>,
}

impl<const D: usize> PoolOpts<D> {
    /// A `k`-window with stride `k`, no padding, floor mode (`nn.MaxPool2d(k)`).
    pub fn new(k: usize) -> Self {
        Self::window([k; D])
    }

    /// A window with stride equal to it.
    pub fn window(kernel: [usize; D]) -> Self {
        PoolOpts {
            kernel,
            stride: kernel,
            padding: [0; D],
            dilation: [1; D],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }

    /// The same stride on every axis.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s; D];
        self
    }

    /// The same padding on every axis.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p; D];
        self
    }

    /// Ceil mode on or off.
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        if x.rank() != D + 2 {
            return Err(Error::shape(
                "x",
                format!("{}-d [N, C, {D} spatial]", D + 2),
                x.dims(),
            ));
        }
        for a in 0..D {
            if self.kernel[a] == 0 || self.stride[a] == 0 || self.dilation[a] == 0 {
                return Err(Error::param("kernel/stride/dilation", "must be positive"));
            }
            if 2 * self.padding[a] > self.kernel[a] {
                return Err(Error::param(
                    "padding",
                    format!(
                        "{:?} must be at most half the kernel {:?}",
                        self.padding, self.kernel
                    ),
                ));
            }
            if self.divisor_override == Some(0) {
                return Err(Error::param("divisor_override", "must be positive"));
            }
        }
        Ok(())
    }
}

/// PyTorch's `pooling_output_shape`.
fn out_size(input: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Result<usize> {
    let span = d * (k - 1) + 1;
    let num = (input + 2 * p) as isize - span as isize + if ceil { s as isize - 1 } else { 0 };
    if num < 0 {
        return Err(Error::param(
            "kernel",
            format!("window {span} larger than padded input {}", input + 2 * p),
        ));
    }
    let mut out = num as usize / s + 1;
    if ceil && (out - 1) * s >= input + p {
        out -= 1;
    }
    Ok(out)
}

fn max_taps(input: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> Result<AxisTaps> {
    let out_len = out_size(input, k, s, p, d, ceil)?;
    let mut idx = Vec::with_capacity(out_len * k);
    for o in 0..out_len {
        for t in 0..k {
            let pos = (o * s + t * d) as isize - p as isize;
            idx.push(if pos >= 0 && (pos as usize) < input {
                pos as u32
            } else {
                input as u32
            });
        }
    }
    Ok(AxisTaps {
        out_len,
        t: k,
        idx,
        w: vec![],
    })
}

fn avg_taps(
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    ceil: bool,
    include_pad: bool,
    unit: bool,
) -> Result<AxisTaps> {
    let out_len = out_size(input, k, s, p, 1, ceil)?;
    let (mut idx, mut w) = (
        Vec::with_capacity(out_len * k),
        Vec::with_capacity(out_len * k),
    );
    for o in 0..out_len {
        let start = (o * s) as isize - p as isize;
        let end = (start + k as isize).min((input + p) as isize);
        let (lo, hi) = (start.max(0), end.min(input as isize));
        let div = if include_pad { end - start } else { hi - lo };
        for t in 0..k as isize {
            let pos = lo + t;
            if pos < hi {
                idx.push(pos as u32);
                w.push(if unit { 1.0 } else { 1.0 / div as f64 });
            } else {
                idx.push(input as u32);
                w.push(0.0);
            }
        }
    }
    Ok(AxisTaps {
        out_len,
        t: k,
        idx,
        w,
    })
}

fn adaptive_taps(input: usize, out_len: usize) -> Result<AxisTaps> {
    if out_len == 0 {
        return Err(Error::param("output_size", "must be positive"));
    }
    let bin = |i: usize| (i * input / out_len, ((i + 1) * input).div_ceil(out_len));
    let t = (0..out_len).map(|i| bin(i).1 - bin(i).0).max().unwrap_or(1);
    let (mut idx, mut w) = (Vec::new(), Vec::new());
    for o in 0..out_len {
        let (lo, hi) = bin(o);
        for j in 0..t {
            let pos = lo + j;
            idx.push(if pos < hi { pos as u32 } else { input as u32 });
            w.push(if pos < hi {
                1.0 / (hi - lo) as f64
            } else {
                0.0
            });
        }
    }
    Ok(AxisTaps { out_len, t, idx, w })
}

/// Max pooling over `D` spatial axes. `x`: `[N, C, *spatial]`.
///
/// The gradient goes to the first maximal element of each window in scan order (PyTorch's
/// rule). On the CPU one kernel finds each window's maximum and argmax, and the backward
/// scatters through the argmax; elsewhere a box max is taken one axis at a time with candle ops (the
/// same result: the first maximum of a box is the first maximum along its last axis within
/// the first row holding the maximum).
pub fn max_pool<const D: usize>(x: &Tensor, opts: &PoolOpts<D>) -> Result<Tensor> {
    opts.check(x)?;
    if super::cpu_kernels(x) && matches!(x.dtype(), DType::F32 | DType::F64) {
        return max_pool_cpu(x, opts);
    }
    let axes = (0..D)
        .map(|a| {
            let (k, s, p, d) = (
                opts.kernel[a],
                opts.stride[a],
                opts.padding[a],
                opts.dilation[a],
            );
            max_taps(x.dim(a + 2)?, k, s, p, d, opts.ceil_mode)
        })
        .collect::<Result<Vec<_>>>()?;
    max_pool_by_axes(x, &axes)
}

/// The taps of axis `a` of a max pool (for tests of the device-generic path).
#[cfg(test)]
pub(crate) fn max_taps_for<const D: usize>(
    x: &Tensor,
    opts: &PoolOpts<D>,
    a: usize,
) -> Result<AxisTaps> {
    max_taps(
        x.dim(a + 2)?,
        opts.kernel[a],
        opts.stride[a],
        opts.padding[a],
        opts.dilation[a],
        opts.ceil_mode,
    )
}

/// The device-generic form of [`max_pool`]: one axis at a time.
fn max_pool_by_axes(x: &Tensor, axes: &[AxisTaps]) -> Result<Tensor> {
    let mut y = x.clone();
    for (a, t) in axes.iter().enumerate() {
        y = taps::max(&y, a + 2, t)?;
    }
    Ok(y)
}

/// Window geometry of one axis as plain numbers: output length, kernel, stride, padding,
/// dilation, input length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Win {
    out: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    len: usize,
}

impl Win {
    /// Valid input positions of window `o`: `(first, count)`, spaced by the dilation.
    fn range(&self, o: usize) -> (usize, usize) {
        let start = (o * self.s) as isize - self.p as isize;
        let d = self.d as isize;
        // Taps t with 0 <= start + t·d < len.
        let lo = if start >= 0 { 0 } else { (-start + d - 1) / d };
        let hi = ((self.len as isize - start + d - 1) / d).clamp(0, self.k as isize);
        if hi <= lo {
            return (0, 0);
        }
        ((start + lo * d) as usize, (hi - lo) as usize)
    }
}

/// The in-plane offsets of every window's valid taps in scan order, as CSR: window `o`
/// reads `offsets[ptr[o]..ptr[o + 1]]`. The same for every plane.
pub(crate) fn window_offsets(w: &[Win; 3]) -> (Vec<u32>, Vec<usize>) {
    let (mut offsets, mut ptr) = (Vec::new(), vec![0]);
    for od in 0..w[0].out {
        let (d0, dn) = w[0].range(od);
        for oh in 0..w[1].out {
            let (h0, hn) = w[1].range(oh);
            for ow in 0..w[2].out {
                let (w0, wn) = w[2].range(ow);
                for td in 0..dn {
                    for th in 0..hn {
                        let row = ((d0 + td * w[0].d) * w[1].len + h0 + th * w[1].d) * w[2].len;
                        for tw in 0..wn {
                            offsets.push((row + w0 + tw * w[2].d) as u32);
                        }
                    }
                }
                ptr.push(offsets.len());
            }
        }
    }
    (offsets, ptr)
}

/// Values and in-plane indices of the first maximum of every window (NaN wins, as in
/// PyTorch), for a contiguous buffer of `planes` planes.
///
/// With `affine = Some((scale, shift))` (per channel, `planes` being `N·C` with `C =
/// scale.len()`), the maximum is taken over `x·scale[c] + shift[c]` and that value returned:
/// a per-channel affine map (batch norm) fused in front of the pool.
pub(crate) fn window_max<T: WithDType>(
    x: &[T],
    planes: usize,
    w: &[Win; 3],
    affine: Option<(&[T], &[T])>,
) -> (Vec<T>, Vec<u32>) {
    let plane = w[0].len * w[1].len * w[2].len;
    let out_plane = w[0].out * w[1].out * w[2].out;
    let (offsets, ptr) = window_offsets(w);
    let chunk = (1 << 14) / plane.max(1) + 1;
    let mut vals = vec![T::zero(); planes * out_plane];
    let mut idx = vec![0u32; planes * out_plane];
    vals.par_chunks_mut(out_plane * chunk)
        .zip(idx.par_chunks_mut(out_plane * chunk))
        .zip(x.par_chunks(plane * chunk))
        .enumerate()
        .for_each(|(t, ((vo, io), xs))| {
            for (q, ((vo, io), xp)) in vo
                .chunks_mut(out_plane)
                .zip(io.chunks_mut(out_plane))
                .zip(xs.chunks(plane))
                .enumerate()
            {
                let (a, b) = match affine {
                    Some((scale, shift)) => {
                        let k = (t * chunk + q) % scale.len();
                        (scale[k], shift[k])
                    }
                    None => (T::one(), T::zero()),
                };
                for o in 0..out_plane {
                    let taps = &offsets[ptr[o]..ptr[o + 1]];
                    let Some((&first, rest)) = taps.split_first() else {
                        continue;
                    };
                    let (mut bv, mut bi) = (xp[first as usize] * a + b, first);
                    // Branch-free running maximum (data-dependent branches mispredict on
                    // random activations); NaN wins.
                    for &j in rest {
                        let v = xp[j as usize] * a + b;
                        #[allow(clippy::eq_op)] // v != v is the NaN test
                        let take = (v > bv) | ((v != v) & (bv == bv));
                        bv = if take { v } else { bv };
                        bi = if take { j } else { bi };
                    }
                    vo[o] = bv;
                    io[o] = bi;
                }
            }
        });
    (vals, idx)
}

/// The CPU max-pool op: values and argmax in one pass; the argmax is kept for the backward,
/// which scatters the gradient through [`PlaneGather`]'s adjoint (exact at every order).
struct MaxPoolOp {
    wins: [Win; 3],
    out_dims: Vec<usize>,
    argmax: Arc<OnceLock<Arc<Vec<u32>>>>,
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "scarce-max-pool"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("scarce-max-pool: input must be contiguous")
        };
        let planes = l.dims()[0] * l.dims()[1];
        let (out, idx) = match s {
            CpuStorage::F32(v) => {
                let (o, i) = window_max(&v[a..b], planes, &self.wins, None);
                (CpuStorage::F32(o), i)
            }
            CpuStorage::F64(v) => {
                let (o, i) = window_max(&v[a..b], planes, &self.wins, None);
                (CpuStorage::F64(o), i)
            }
            _ => candle_core::bail!("scarce-max-pool: f32 or f64 only"),
        };
        let _ = self.argmax.set(Arc::new(idx));
        Ok((out, Shape::from(self.out_dims.clone())))
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(idx) = self.argmax.get() else {
            candle_core::bail!("scarce-max-pool: backward before forward")
        };
        let map = Arc::new(PlaneGather {
            input: arg.dims().to_vec(),
            output: self.out_dims.clone(),
            planes: arg.dims()[0] * arg.dims()[1],
            idx: idx.clone(),
        });
        apply_adjoint(grad, &map)
            .map_err(candle_core::Error::wrap)
            .map(Some)
    }
}

/// The window geometry of a max pool on `x`, padded to three axes, and the output dims.
pub(crate) fn windows<const D: usize>(
    x: &Tensor,
    opts: &PoolOpts<D>,
) -> Result<([Win; 3], Vec<usize>)> {
    opts.check(x)?;
    let unit = Win {
        out: 1,
        k: 1,
        s: 1,
        p: 0,
        d: 1,
        len: 1,
    };
    let mut wins = [unit; 3];
    let mut out_dims = x.dims()[..2].to_vec();
    for a in 0..D {
        let len = x.dim(a + 2)?;
        let (k, s, p, d) = (
            opts.kernel[a],
            opts.stride[a],
            opts.padding[a],
            opts.dilation[a],
        );
        let out = out_size(len, k, s, p, d, opts.ceil_mode)?;
        wins[3 - D + a] = Win {
            out,
            k,
            s,
            p,
            d,
            len,
        };
        out_dims.push(out);
    }
    Ok((wins, out_dims))
}

fn max_pool_cpu<const D: usize>(x: &Tensor, opts: &PoolOpts<D>) -> Result<Tensor> {
    let (wins, out_dims) = windows(x, opts)?;
    let op = MaxPoolOp {
        wins,
        out_dims,
        argmax: Arc::new(OnceLock::new()),
    };
    Ok(x.contiguous()?.apply_op1(op)?)
}

/// 2D max pooling (`F.max_pool2d`).
pub fn max_pool2d(x: &Tensor, opts: &PoolOpts<2>) -> Result<Tensor> {
    max_pool(x, opts)
}

/// 3D max pooling (`F.max_pool3d`).
pub fn max_pool3d(x: &Tensor, opts: &PoolOpts<3>) -> Result<Tensor> {
    max_pool(x, opts)
}

/// Average pooling over `D` spatial axes (`dilation` must be 1, as in PyTorch).
pub fn avg_pool<const D: usize>(x: &Tensor, opts: &PoolOpts<D>) -> Result<Tensor> {
    opts.check(x)?;
    if opts.dilation.iter().any(|&d| d != 1) {
        return Err(Error::param("dilation", "average pooling has no dilation"));
    }
    let unit = opts.divisor_override.is_some();
    let mut y = x.clone();
    for a in 0..D {
        let t = avg_taps(
            x.dim(a + 2)?,
            opts.kernel[a],
            opts.stride[a],
            opts.padding[a],
            opts.ceil_mode,
            opts.count_include_pad,
            unit,
        )?;
        y = taps::weighted(&y, a + 2, &t)?;
    }
    match opts.divisor_override {
        Some(d) => Ok((y / d as f64)?),
        None => Ok(y),
    }
}

/// 2D average pooling (`F.avg_pool2d`).
pub fn avg_pool2d(x: &Tensor, opts: &PoolOpts<2>) -> Result<Tensor> {
    avg_pool(x, opts)
}

/// 3D average pooling (`F.avg_pool3d`).
pub fn avg_pool3d(x: &Tensor, opts: &PoolOpts<3>) -> Result<Tensor> {
    avg_pool(x, opts)
}

/// Adaptive average pooling to `size` (`F.adaptive_avg_pool2d/3d`): bin `i` of an axis
/// covers `[floor(i·in/out), ceil((i+1)·in/out))`.
pub fn adaptive_avg_pool<const D: usize>(x: &Tensor, size: [usize; D]) -> Result<Tensor> {
    if x.rank() != D + 2 {
        return Err(Error::shape(
            "x",
            format!("{}-d [N, C, {D} spatial]", D + 2),
            x.dims(),
        ));
    }
    let mut y = x.clone();
    for (a, &s) in size.iter().enumerate() {
        y = taps::weighted(&y, a + 2, &adaptive_taps(x.dim(a + 2)?, s)?)?;
    }
    Ok(y)
}

/// 2D adaptive average pooling.
pub fn adaptive_avg_pool2d(x: &Tensor, size: [usize; 2]) -> Result<Tensor> {
    adaptive_avg_pool(x, size)
}

/// 3D adaptive average pooling.
pub fn adaptive_avg_pool3d(x: &Tensor, size: [usize; 3]) -> Result<Tensor> {
    adaptive_avg_pool(x, size)
}
