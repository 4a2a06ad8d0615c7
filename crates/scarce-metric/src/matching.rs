//! Matching Networks (Vinyals et al. 2016), without full-context embeddings: a query
//! attends to every support embedding with `softmax(scale · cos)`, and its class
//! probability is the attention mass on that class's support. Logits are the log of those
//! probabilities (floored at 1e-12), so cross-entropy on them is the paper's loss.

use candle_core::Tensor;
use scarce_core::{ops, Params, Result};

use crate::classifier::{check_episode, l2_normalize, FewShotClassifier};

/// Cosine-attention Matching Network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatchingNet {
    /// Multiplies the cosines before the softmax (1 in the paper).
    pub scale: f64,
}

impl Default for MatchingNet {
    fn default() -> Self {
        MatchingNet { scale: 1.0 }
    }
}

impl FewShotClassifier for MatchingNet {
    fn name(&self) -> String {
        "matching".into()
    }

    fn logits(
        &self,
        _head: &Params,
        support: &Tensor,
        labels: &[u32],
        n_way: usize,
        query: &Tensor,
    ) -> Result<Tensor> {
        check_episode(support, labels, n_way, query)?;
        let cos = l2_normalize(query)?.matmul(&l2_normalize(support)?.t()?)?;
        let attention = ops::softmax(&(cos * self.scale)?, 1)?;
        let one_hot = one_hot_rows(labels, n_way, support)?;
        Ok(attention.matmul(&one_hot)?.maximum(1e-12)?.log()?)
    }
}

/// `[n, n_way]` one-hot rows of `labels`, in the dtype and device of `like`.
pub(crate) fn one_hot_rows(labels: &[u32], n_way: usize, like: &Tensor) -> Result<Tensor> {
    let mut v = vec![0f64; labels.len() * n_way];
    for (i, &l) in labels.iter().enumerate() {
        v[i * n_way + l as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (labels.len(), n_way), like.device())?.to_dtype(like.dtype())?)
}
