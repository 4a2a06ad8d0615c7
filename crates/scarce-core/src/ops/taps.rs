//! Reductions along one axis through fixed taps: the mechanism behind pooling, adaptive
//! pooling and interpolation.
//!
//! Output position `o` on an axis reads input positions `idx[o·T + t]` (`t < T`), either as a
//! weighted sum (average pools, interpolation) or as a max (max pools). Box pools and
//! separable interpolation are products over axes, so an N-d op is N one-axis ops. The reads
//! are `index_select` (backward `index_add`, whose backward is `index_select` again) and the
//! max picks its argmax by a mask, so gradients are exact at every order on every device and
//! none of candle's pooling or upsampling backward passes is used.

use crate::Result;
use candle_core::Tensor;

/// The taps of one axis.
#[derive(Debug, Clone)]
pub(crate) struct AxisTaps {
    /// Output length.
    pub out_len: usize,
    /// Taps per output position.
    pub t: usize,
    /// Input positions, `out_len * t`; the value `in_len` means "padding".
    pub idx: Vec<u32>,
    /// Weights for weighted sums, `out_len * t` (ignored by max).
    pub w: Vec<f64>,
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

/// Weighted sum along `dim`: `y[.., o, ..] = Σ_t w[o,t] · x[.., idx[o,t], ..]`. Padding taps
/// must carry weight 0 and are read from position 0.
pub(crate) fn weighted(x: &Tensor, dim: usize, taps: &AxisTaps) -> Result<Tensor> {
    let in_len = x.dim(dim)? as u32;
    let idx: Vec<u32> = taps.idx.iter().map(|&i| if i >= in_len { 0 } else { i }).collect();
    let idx = Tensor::from_vec(idx, taps.idx.len(), x.device())?;
    let sel = x.index_select(&idx, dim)?;
    if taps.t == 1 && taps.w.iter().all(|&w| w == 1.0) {
        return Ok(sel);
    }
    let sel = sel.reshape(split_shape(x.dims(), dim, taps.out_len, taps.t))?;
    let w = Tensor::from_vec(taps.w.clone(), tap_shape(x.rank(), dim, taps.out_len, taps.t), x.device())?
        .to_dtype(x.dtype())?;
    Ok(sel.broadcast_mul(&w)?.sum(dim + 1)?)
}

/// Max along `dim`: `y[.., o, ..] = max_t x[.., idx[o,t], ..]`, padding taps being `-inf`.
/// The gradient goes to the first maximal tap only (PyTorch's rule).
pub(crate) fn max(x: &Tensor, dim: usize, taps: &AxisTaps) -> Result<Tensor> {
    let in_len = x.dim(dim)?;
    let padded = taps.idx.iter().any(|&i| i as usize >= in_len);
    let src = if padded {
        let mut pad_shape = x.dims().to_vec();
        pad_shape[dim] = 1;
        let neg_inf = Tensor::full(f32::NEG_INFINITY, pad_shape, x.device())?.to_dtype(x.dtype())?;
        Tensor::cat(&[x, &neg_inf], dim)?
    } else {
        x.clone()
    };
    let idx = Tensor::from_vec(taps.idx.clone(), taps.idx.len(), x.device())?;
    let sel = src.index_select(&idx, dim)?.reshape(split_shape(x.dims(), dim, taps.out_len, taps.t))?;
    if taps.t == 1 {
        return Ok(sel.squeeze(dim + 1)?);
    }
    let arg = sel.detach().argmax_keepdim(dim + 1)?;
    let tap_ids = Tensor::arange(0u32, taps.t as u32, x.device())?
        .reshape(tap_shape(x.rank(), dim, 1, taps.t))?;
    let mask = arg.broadcast_eq(&tap_ids)?;
    let zeros = Tensor::zeros(sel.shape(), x.dtype(), x.device())?;
    Ok(mask.where_cond(&sel, &zeros)?.sum(dim + 1)?)
}

