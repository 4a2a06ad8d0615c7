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

/// A one-hot tensor `[N, C, ...]` (dtype of `like`) from class indices `[N, ...]`.
pub fn one_hot(target: &Tensor, classes: usize, like: &Tensor) -> Result<Tensor> {
    let t = target
        .to_dtype(DType::I64)?
        .flatten_all()?
        .to_vec1::<i64>()?;
    if let Some(bad) = t.iter().find(|&&c| c < 0 || c as usize >= classes) {
        return Err(Error::param(
            "target",
            format!("class {bad} outside 0..{classes}"),
        ));
    }
    let dims = target.dims();
    let (n, rest) = (
        dims.first().copied().unwrap_or(1),
        dims.iter().skip(1).product::<usize>(),
    );
    let mut v = vec![0f64; n * classes * rest];
    for (i, &c) in t.iter().enumerate() {
        let (s, r) = (i / rest.max(1), i % rest.max(1));
        v[(s * classes + c as usize) * rest + r] = 1.0;
    }
    let mut shape = vec![n, classes];
    shape.extend_from_slice(&dims[dims.len().min(1)..]);
    Ok(Tensor::from_vec(v, shape, like.device())?.to_dtype(like.dtype())?)
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
