//! Batch, group and layer normalisation, composed from candle ops whose gradients are
//! correct at first and second order (candle's fused `layer_norm` / `rms_norm` return no
//! gradient at all, so they are never used). Variances are biased, as in PyTorch.

use super::bn_fused::{bn_max_pool_cpu, bn_train_cpu, Stats};
use super::channel::{channel_expand, channel_sum};
use super::gn_fused::group_norm_cpu;
use super::pool::{max_pool, windows, PoolOpts};
use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// `(x - mean) / sqrt(var + eps)` over the axes `dims` (keepdim), plus the mean and biased
/// variance.
fn standardise(x: &Tensor, dims: &[usize], eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let count: usize = dims.iter().map(|&d| x.dims()[d]).product();
    let mean = (x.sum_keepdim(dims)? / count as f64)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim(dims)? / count as f64)?;
    let y = centred.broadcast_div(&(var.clone() + eps)?.sqrt()?)?;
    Ok((y, mean, var))
}

/// Per-channel affine `y·w[c] + b[c]` for channel axis 1.
fn channel_affine(y: Tensor, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<Tensor> {
    let ones = Tensor::ones(y.dim(1)?, y.dtype(), y.device())?;
    scale_shift(&y, &ones, w, b)
}

/// The statistics a training-mode batch norm computed, for running-average updates.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// Per-channel mean, `[C]`, detached.
    pub mean: Tensor,
    /// Per-channel biased variance, `[C]`, detached.
    pub var: Tensor,
    /// Elements per channel (`N · prod(spatial)`), to unbias the variance.
    pub count: usize,
}

/// Batch normalisation with batch statistics (training mode): per channel (axis 1) over
/// `N` and the spatial axes. Gradients flow through the statistics. `x`: `[N, C, ...]`.
///
/// The per-channel reductions and broadcasts go through [`channel_sum`] / [`channel_expand`]
/// (candle's multi-axis reduction is a slow strided loop on the CPU).
pub fn batch_norm_train(
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    if x.rank() < 2 {
        return Err(Error::shape("x", "[N, C, ...]", x.dims()));
    }
    let c = x.dim(1)?;
    let count = x.elem_count() / c.max(1);
    if let Some((w, b)) = fused_affine(x, w, b)? {
        let (y, st) = bn_train_cpu(x, &w, &b, eps)?;
        return Ok((y, batch_stats(st, x, count)?));
    }
    let mean = (channel_sum(x)? / count as f64)?;
    let centred = (x - channel_expand(&mean, x.dims())?)?;
    let var = (channel_sum(&centred.sqr()?)? / count as f64)?;
    let stats = BatchStats {
        mean: mean.detach(),
        var: var.detach(),
        count,
    };
    let inv = (var + eps)?.sqrt()?.recip()?;
    Ok((scale_shift(&centred, &inv, w, b)?, stats))
}

/// For the fused CPU kernels: `(w, b)` as `[C]` tensors of x's dtype (ones and zeros when
/// absent), or `None` when `x` is not an f32/f64 tensor on the CPU.
fn fused_affine(
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
) -> Result<Option<(Tensor, Tensor)>> {
    if !(super::cpu_kernels(x) && matches!(x.dtype(), DType::F32 | DType::F64)) {
        return Ok(None);
    }
    let c = x.dim(1)?;
    let w = match w {
        Some(w) => w.clone(),
        None => Tensor::ones(c, x.dtype(), x.device())?,
    };
    let b = match b {
        Some(b) => b.clone(),
        None => Tensor::zeros(c, x.dtype(), x.device())?,
    };
    for (name, t) in [("weight", &w), ("bias", &b)] {
        if t.dims() != [c] || t.dtype() != x.dtype() {
            return Err(Error::shape(
                name,
                format!("[{c}] of {:?}", x.dtype()),
                t.dims(),
            ));
        }
    }
    Ok(Some((w, b)))
}

fn batch_stats(st: Stats, x: &Tensor, count: usize) -> Result<BatchStats> {
    let c = x.dim(1)?;
    let mean = Tensor::from_vec(st.mean, c, x.device())?.to_dtype(x.dtype())?;
    let var = Tensor::from_vec(st.var, c, x.device())?.to_dtype(x.dtype())?;
    Ok(BatchStats { mean, var, count })
}

/// Training-mode batch norm followed by max pooling, `max_pool(batch_norm_train(x))`, with
/// the batch statistics. On the CPU one fused op (the normalised tensor is never stored, and
/// the backward reads the pooled gradient at the window maxima only); elsewhere the two ops.
pub fn batch_norm_train_max_pool<const D: usize>(
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
    pool: &PoolOpts<D>,
) -> Result<(Tensor, BatchStats)> {
    if x.rank() != D + 2 {
        return Err(Error::shape(
            "x",
            format!("[N, C, {D} spatial axes]"),
            x.dims(),
        ));
    }
    let count = x.elem_count() / x.dim(1)?.max(1);
    if let Some((w, b)) = fused_affine(x, w, b)? {
        let (wins, out_dims) = windows(x, pool)?;
        let (y, st) = bn_max_pool_cpu(x, &w, &b, eps, wins, out_dims)?;
        return Ok((y, batch_stats(st, x, count)?));
    }
    let (y, stats) = batch_norm_train(x, w, b, eps)?;
    Ok((max_pool(&y, pool)?, stats))
}

/// `x · expand(inv · w) + expand(b)` per channel.
fn scale_shift(x: &Tensor, inv: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>) -> Result<Tensor> {
    let c = x.dim(1)?;
    for (name, t) in [("weight", w), ("bias", b)] {
        if let Some(t) = t {
            if t.dims() != [c] {
                return Err(Error::shape(name, format!("[{c}]"), t.dims()));
            }
        }
    }
    let scale = match w {
        Some(w) => (inv * w)?,
        None => inv.clone(),
    };
    let y = (x * channel_expand(&scale, x.dims())?)?;
    Ok(match b {
        Some(b) => (y + channel_expand(b, x.dims())?)?,
        None => y,
    })
}

/// Batch normalisation with given (running) statistics (evaluation mode).
pub fn batch_norm_eval(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(Error::shape("x", "[N, C, ...]", x.dims()));
    }
    let c = x.dim(1)?;
    for (name, t) in [("running_mean", mean), ("running_var", var)] {
        if t.dims() != [c] {
            return Err(Error::shape(name, format!("[{c}]"), t.dims()));
        }
    }
    let centred = (x - channel_expand(mean, x.dims())?)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    scale_shift(&centred, &inv, w, b)
}

/// Group normalisation: channels split into `groups` contiguous groups, statistics per
/// sample and group; per-channel affine. `x`: `[N, C, ...]`.
pub fn group_norm(
    x: &Tensor,
    groups: usize,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    group_norm_act(x, groups, w, b, eps, false)
}

/// `silu(group_norm(x))`, the pre-activation of a residual block (diffusion UNets). On the
/// CPU one fused op: three passes forward and two backward, instead of about twenty.
pub fn group_norm_silu(
    x: &Tensor,
    groups: usize,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    group_norm_act(x, groups, w, b, eps, true)
}

fn group_norm_act(
    x: &Tensor,
    groups: usize,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(Error::shape("x", "[N, C, ...]", x.dims()));
    }
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    if groups == 0 || c % groups != 0 {
        return Err(Error::param(
            "groups",
            format!("{groups} does not divide {c} channels"),
        ));
    }
    if let Some((w, b)) = fused_affine(x, w, b)? {
        return group_norm_cpu(x, groups, &w, &b, eps, silu);
    }
    // Elsewhere: group statistics are the batch-norm statistics of `[1, N·G, rest]`.
    let xg = x.reshape((1, n * groups, ()))?;
    let (y, _) = batch_norm_train(&xg, None, None, eps)?;
    let y = channel_affine(y.reshape(x.shape())?, w, b)?;
    Ok(if silu { y.silu()? } else { y })
}

/// Layer normalisation over the trailing `normalized_ndim` axes, with elementwise affine
/// `w`, `b` of those axes' shape.
pub fn layer_norm(
    x: &Tensor,
    normalized_ndim: usize,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    if normalized_ndim == 0 || normalized_ndim > x.rank() {
        return Err(Error::param(
            "normalized_ndim",
            format!("{normalized_ndim} for a rank-{} input", x.rank()),
        ));
    }
    let lead = x.rank() - normalized_ndim;
    let tail = &x.dims()[lead..];
    let flat = x.reshape(
        x.dims()[..lead]
            .iter()
            .copied()
            .chain([tail.iter().product()])
            .collect::<Vec<_>>(),
    )?;
    let (y, _, _) = standardise(&flat, &[lead], eps)?;
    let mut y = y.reshape(x.shape())?;
    for (name, t) in [("weight", w), ("bias", b)] {
        if let Some(t) = t {
            if t.dims() != tail {
                return Err(Error::shape(name, format!("{tail:?}"), t.dims()));
            }
        }
    }
    if let Some(w) = w {
        y = y.broadcast_mul(w)?;
    }
    if let Some(b) = b {
        y = y.broadcast_add(b)?;
    }
    Ok(y)
}
