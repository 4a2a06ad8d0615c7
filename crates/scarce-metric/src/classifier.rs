//! The [`FewShotClassifier`] interface and the checks every method shares.

use candle_core::{DType, Device, Tensor};
use scarce_core::{Error, Params, Result};

/// A few-shot method: from support embeddings with episode labels, logits for queries.
/// Learnable head parameters (a temperature, a relation module) live in `head`, so one
/// optimiser trains backbone and head together; methods without any return an empty map.
pub trait FewShotClassifier: Send + Sync {
    /// A short name for logs and checkpoints.
    fn name(&self) -> String;

    /// Initial head parameters.
    fn init_head(&self, _device: &Device, _dtype: DType) -> Result<Params> {
        Ok(Params::new())
    }

    /// Logits `[n_query, n_way]` for `query` `[n_query, d]` given `support` `[n_support, d]`
    /// and its labels in `0..n_way` (every class present). Differentiable in the
    /// embeddings and the head.
    fn logits(
        &self,
        head: &Params,
        support: &Tensor,
        support_labels: &[u32],
        n_way: usize,
        query: &Tensor,
    ) -> Result<Tensor>;
}

/// Checks an episode's embeddings and labels: 2-D, equal widths, one label per support
/// row, every class `0..n_way` present and no other.
pub fn check_episode(support: &Tensor, labels: &[u32], n_way: usize, query: &Tensor) -> Result<()> {
    let (s, q) = (support.dims(), query.dims());
    if s.len() != 2 {
        return Err(Error::shape("support", "[n_support, d]", s));
    }
    if q.len() != 2 || q[1] != s[1] {
        return Err(Error::shape(
            "query",
            format!("[n_query, {}] like the support", s[1]),
            q,
        ));
    }
    if labels.len() != s[0] {
        return Err(Error::param(
            "support_labels",
            format!("{} labels for {} support rows", labels.len(), s[0]),
        ));
    }
    let mut seen = vec![false; n_way];
    for &l in labels {
        match seen.get_mut(l as usize) {
            Some(v) => *v = true,
            None => {
                return Err(Error::param(
                    "support_labels",
                    format!("label {l} outside 0..{n_way}"),
                ))
            }
        }
    }
    if let Some(k) = seen.iter().position(|&v| !v) {
        return Err(Error::param(
            "support_labels",
            format!("class {k} has no support example (labels must cover 0..{n_way})"),
        ));
    }
    Ok(())
}

/// Class means of `support` rows: `[n_way, d]`, computed as one matrix product with a
/// `[n_way, n_support]` averaging matrix.
pub fn prototypes(support: &Tensor, labels: &[u32], n_way: usize) -> Result<Tensor> {
    let mut counts = vec![0f64; n_way];
    for &l in labels {
        counts[l as usize] += 1.0;
    }
    let mut w = vec![0f64; n_way * labels.len()];
    for (i, &l) in labels.iter().enumerate() {
        w[l as usize * labels.len() + i] = 1.0 / counts[l as usize];
    }
    let w =
        Tensor::from_vec(w, (n_way, labels.len()), support.device())?.to_dtype(support.dtype())?;
    Ok(w.matmul(support)?)
}

/// Squared Euclidean distances `[n, m]` between rows of `a` `[n, d]` and `b` `[m, d]`,
/// as `‖a‖² − 2 a·b + ‖b‖²` (one matrix product).
pub fn squared_distances(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let aa = a.sqr()?.sum_keepdim(1)?;
    let bb = b.sqr()?.sum_keepdim(1)?.t()?;
    let ab = a.matmul(&b.t()?)?;
    Ok(aa.broadcast_sub(&(ab * 2.0)?)?.broadcast_add(&bb)?)
}

/// Rows scaled to unit L2 norm (norms floored at 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&n)?)
}
