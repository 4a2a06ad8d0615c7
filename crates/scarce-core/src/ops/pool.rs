//! Max, average and adaptive average pooling in 2D and 3D, PyTorch semantics, exact
//! gradients at every order (see [`super::taps`]: a box pool is a product of one-axis pools).

use super::gather::gather;
use super::taps::{self, AxisTaps};
use crate::{Error, Result};
use candle_core::{DType, Tensor, WithDType};
use rayon::prelude::*;

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
            return Err(Error::shape("x", format!("{}-d [N, C, {D} spatial]", D + 2), x.dims()));
        }
        for a in 0..D {
            if self.kernel[a] == 0 || self.stride[a] == 0 || self.dilation[a] == 0 {
                return Err(Error::param("kernel/stride/dilation", "must be positive"));
            }
            if 2 * self.padding[a] > self.kernel[a] {
                return Err(Error::param(
                    "padding",
                    format!("{:?} must be at most half the kernel {:?}", self.padding, self.kernel),
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
        return Err(Error::param("kernel", format!("window {span} larger than padded input {}", input + 2 * p)));
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
            idx.push(if pos >= 0 && (pos as usize) < input { pos as u32 } else { input as u32 });
        }
    }
    Ok(AxisTaps { out_len, t: k, idx, w: vec![] })
}

fn avg_taps(input: usize, k: usize, s: usize, p: usize, ceil: bool, include_pad: bool, unit: bool) -> Result<AxisTaps> {
    let out_len = out_size(input, k, s, p, 1, ceil)?;
    let (mut idx, mut w) = (Vec::with_capacity(out_len * k), Vec::with_capacity(out_len * k));
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
    Ok(AxisTaps { out_len, t: k, idx, w })
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
            w.push(if pos < hi { 1.0 / (hi - lo) as f64 } else { 0.0 });
        }
    }
    Ok(AxisTaps { out_len, t, idx, w })
}

/// Max pooling over `D` spatial axes. `x`: `[N, C, *spatial]`.
///
/// The gradient goes to the first maximal element of each window in scan order (PyTorch's
/// rule). On the CPU one kernel finds each window's argmax and the values are read through
/// [`super::gather`]; elsewhere a box max is taken one axis at a time with candle ops (the
/// same result: the first maximum of a box is the first maximum along its last axis within
/// the first row holding the maximum).
pub fn max_pool<const D: usize>(x: &Tensor, opts: &PoolOpts<D>) -> Result<Tensor> {
    opts.check(x)?;
    let axes = (0..D)
        .map(|a| max_taps(x.dim(a + 2)?, opts.kernel[a], opts.stride[a], opts.padding[a], opts.dilation[a], opts.ceil_mode))
        .collect::<Result<Vec<_>>>()?;
    if x.device().is_cpu() {
        let (idx, out_dims) = window_argmax(x, &axes)?;
        return gather(x, idx, out_dims);
    }
    max_pool_by_axes(x, &axes)
}

/// The device-generic form of [`max_pool`]: one axis at a time.
fn max_pool_by_axes(x: &Tensor, axes: &[AxisTaps]) -> Result<Tensor> {
    let mut y = x.clone();
    for (a, t) in axes.iter().enumerate() {
        y = taps::max(&y, a + 2, t)?;
    }
    Ok(y)
}

/// Flat input index of the first maximum of every window, and the output dims.
fn window_argmax(x: &Tensor, axes: &[AxisTaps]) -> Result<(Vec<u32>, Vec<usize>)> {
    struct Argmax<'a> {
        axes: &'a [AxisTaps],
    }
    impl Argmax<'_> {
        fn run<T: WithDType>(&self, x: &[T], dims: &[usize]) -> Vec<u32> {
            // Pad the geometry to three axes; an absent axis has one position and one tap.
            let unit = AxisTaps { out_len: 1, t: 1, idx: vec![0], w: vec![] };
            let mut ax: Vec<&AxisTaps> = vec![&unit; 3 - self.axes.len()];
            ax.extend(self.axes.iter());
            let mut sp = vec![1usize; 3 - self.axes.len()];
            sp.extend_from_slice(&dims[2..]);
            let plane: usize = sp.iter().product();
            let out_plane: usize = ax.iter().map(|a| a.out_len).product();
            let planes = dims[0] * dims[1];
            let mut idx = vec![0u32; planes * out_plane];
            idx.par_chunks_mut(out_plane).enumerate().for_each(|(p, out)| {
                let base = p * plane;
                let xp = &x[base..base + plane];
                let mut o = 0;
                for od in 0..ax[0].out_len {
                    for oh in 0..ax[1].out_len {
                        for ow in 0..ax[2].out_len {
                            let mut best: Option<(T, usize)> = None;
                            for &zd in &ax[0].idx[od * ax[0].t..][..ax[0].t] {
                                if zd as usize >= sp[0] {
                                    continue;
                                }
                                for &zh in &ax[1].idx[oh * ax[1].t..][..ax[1].t] {
                                    if zh as usize >= sp[1] {
                                        continue;
                                    }
                                    let row = (zd as usize * sp[1] + zh as usize) * sp[2];
                                    for &zw in &ax[2].idx[ow * ax[2].t..][..ax[2].t] {
                                        if zw as usize >= sp[2] {
                                            continue;
                                        }
                                        let i = row + zw as usize;
                                        let v = xp[i];
                                        // First strict maximum; NaN wins, as in PyTorch.
                                        let better = match best {
                                            None => true,
                                            Some((b, _)) => v > b || (v != v && b == b),
                                        };
                                        if better {
                                            best = Some((v, i));
                                        }
                                    }
                                }
                            }
                            out[o] = (base + best.map_or(0, |b| b.1)) as u32;
                            o += 1;
                        }
                    }
                }
            });
            idx
        }
    }
    let x = x.contiguous()?;
    let dims = x.dims().to_vec();
    let op = Argmax { axes };
    let idx = match x.dtype() {
        DType::F32 => op.run(&x.flatten_all()?.to_vec1::<f32>()?, &dims),
        DType::F64 => op.run(&x.flatten_all()?.to_vec1::<f64>()?, &dims),
        d => return Err(Error::param("x", format!("max pooling supports f32 and f64, not {d:?}"))),
    };
    let mut out_dims = dims[..2].to_vec();
    out_dims.extend(axes.iter().map(|a| a.out_len));
    Ok((idx, out_dims))
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
        let t = avg_taps(x.dim(a + 2)?, opts.kernel[a], opts.stride[a], opts.padding[a], opts.ceil_mode, opts.count_include_pad, unit)?;
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
        return Err(Error::shape("x", format!("{}-d [N, C, {D} spatial]", D + 2), x.dims()));
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
