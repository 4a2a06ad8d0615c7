//! SimpleShot (Wang et al. 2019): centre embeddings by a mean (of the base classes, or of
//! the support when none is given), L2-normalise, and classify by the nearest centroid.
//! No learnable head: it is an evaluation rule on a trained backbone.

use candle_core::Tensor;
use scarce_core::{Params, Result};

use crate::classifier::{
    check_episode, l2_normalize, prototypes, squared_distances, FewShotClassifier,
};

/// Centred, L2-normalised nearest centroid.
#[derive(Clone, Debug, Default)]
pub struct SimpleShot {
    /// The mean embedding of the base (training) classes, `[d]`; `None` centres on the
    /// support mean.
    pub base_mean: Option<Tensor>,
}

impl FewShotClassifier for SimpleShot {
    fn name(&self) -> String {
        "simpleshot".into()
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
        let mean = match &self.base_mean {
            Some(m) => m.reshape((1, ()))?,
            None => support.mean_keepdim(0)?,
        };
        let s = l2_normalize(&support.broadcast_sub(&mean)?)?;
        let q = l2_normalize(&query.broadcast_sub(&mean)?)?;
        let protos = prototypes(&s, labels, n_way)?;
        Ok(squared_distances(&q, &protos)?.neg()?)
    }
}
