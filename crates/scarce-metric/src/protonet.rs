//! Prototypical Networks (Snell et al. 2017): a class is the mean of its support
//! embeddings; a query's logits are negative squared Euclidean distances to the prototypes,
//! or scaled cosine similarities with a learnable scale.

use candle_core::{DType, Device, Tensor};
use scarce_core::{Error, Params, Result};

use crate::classifier::{
    check_episode, l2_normalize, prototypes, squared_distances, FewShotClassifier,
};

/// The distance a ProtoNet compares with.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// `-‖q − p‖²`.
    SquaredEuclidean,
    /// `s · cos(q, p)` with `s` the head parameter `scale`, starting at `init_scale`;
    /// `learnable: false` keeps it fixed.
    Cosine {
        /// Initial (or fixed) scale.
        init_scale: f64,
        /// Train the scale with the backbone.
        learnable: bool,
    },
}

/// A Prototypical Network head.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProtoNet {
    /// The comparison.
    pub metric: Metric,
}

impl ProtoNet {
    /// Squared Euclidean ProtoNet (the paper's).
    pub fn euclidean() -> Self {
        ProtoNet {
            metric: Metric::SquaredEuclidean,
        }
    }
}

impl FewShotClassifier for ProtoNet {
    fn name(&self) -> String {
        match self.metric {
            Metric::SquaredEuclidean => "protonet-euclidean".into(),
            Metric::Cosine { .. } => "protonet-cosine".into(),
        }
    }

    fn init_head(&self, device: &Device, dtype: DType) -> Result<Params> {
        let mut p = Params::new();
        if let Metric::Cosine {
            init_scale,
            learnable: true,
        } = self.metric
        {
            p.insert(
                "scale",
                Tensor::new(&[init_scale], device)?.to_dtype(dtype)?,
            );
        }
        Ok(p)
    }

    fn logits(
        &self,
        head: &Params,
        support: &Tensor,
        labels: &[u32],
        n_way: usize,
        query: &Tensor,
    ) -> Result<Tensor> {
        check_episode(support, labels, n_way, query)?;
        let protos = prototypes(support, labels, n_way)?;
        match self.metric {
            Metric::SquaredEuclidean => Ok(squared_distances(query, &protos)?.neg()?),
            Metric::Cosine {
                init_scale,
                learnable,
            } => {
                let cos = l2_normalize(query)?.matmul(&l2_normalize(&protos)?.t()?)?;
                if learnable {
                    let s = head.get("scale").ok_or_else(|| Error::Missing {
                        name: "scale".into(),
                        what: "the cosine ProtoNet head (call init_head)".into(),
                    })?;
                    Ok(cos.broadcast_mul(s)?)
                } else {
                    Ok((cos * init_scale)?)
                }
            }
        }
    }
}
