//! Softmax, log-softmax and cross-entropy, composed from ops that are exact at second order.
//! candle's fused `softmax_last_dim` returns no gradient, so it is never used. The max
//! subtracted for stability is detached: it cancels exactly in the result, so the gradient
//! is unchanged.

use crate::{Error, Result};
use candle_core::{DType, Tensor};

fn axis(x: &Tensor, dim: isize) -> Result<usize> {
    let r = x.rank() as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if !(0..r).contains(&d) {
        return Err(Error::param("dim", format!("{dim} for a rank-{r} tensor")));
    }
    Ok(d as usize)
}

/// `exp(x) / Σ exp(x)` along `dim` (negative counts from the end).
pub fn softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    let d = axis(x, dim)?;
    let m = x.max_keepdim(d)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(d)?)?)
}

/// `x - logsumexp(x)` along `dim`.
pub fn log_softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    let d = axis(x, dim)?;
    let m = x.max_keepdim(d)?.detach();
    let s = x.broadcast_sub(&m)?;
    Ok(s.broadcast_sub(&s.exp()?.sum_keepdim(d)?.log()?)?)
}

/// A one-hot tensor `[N, C, ...]` (dtype and device of `like`) from class indices `[N, ...]`,
/// built on that device (only the smallest and largest index come to the host, to check them).
pub fn one_hot(target: &Tensor, classes: usize, like: &Tensor) -> Result<Tensor> {
    let t = target.to_device(like.device())?.to_dtype(DType::I64)?;
    if t.elem_count() > 0 {
        let flat = t.flatten_all()?;
        let lo = flat.min(0)?.to_scalar::<i64>()?;
        let hi = flat.max(0)?.to_scalar::<i64>()?;
        if let Some(bad) = [lo, hi]
            .into_iter()
            .find(|&c| c < 0 || c as usize >= classes)
        {
            return Err(Error::param(
                "target",
                format!("class {bad} outside 0..{classes}"),
            ));
        }
    }
    // [N, 1, ...] against [1, C, 1, ...]
    let mut class_shape = vec![1, classes];
    class_shape.extend(std::iter::repeat_n(1, t.rank().saturating_sub(1)));
    let ids = Tensor::arange(0i64, classes as i64, t.device())?.reshape(class_shape)?;
    let t = if t.rank() == 0 { t.reshape(1)? } else { t };
    Ok(t.unsqueeze(1)?.broadcast_eq(&ids)?.to_dtype(like.dtype())?)
}

/// Mean cross-entropy of logits `x` `[N, C, ...]` against class indices `target` `[N, ...]`
/// (any integer dtype): the mean over all `N·prod(...)` positions of
/// `-log_softmax(x, 1)[target]`. Returns a scalar.
pub fn cross_entropy(x: &Tensor, target: &Tensor) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(Error::shape("logits", "[N, C, ...]", x.dims()));
    }
    let mut expect = vec![x.dim(0)?];
    expect.extend_from_slice(&x.dims()[2..]);
    if target.dims() != expect.as_slice() {
        return Err(Error::shape("target", format!("{expect:?}"), target.dims()));
    }
    let positions = target.elem_count();
    let logp = log_softmax(x, 1)?;
    let hot = one_hot(target, x.dim(1)?, x)?;
    Ok((logp.mul(&hot)?.sum_all()? * (-1.0 / positions as f64))?)
}
