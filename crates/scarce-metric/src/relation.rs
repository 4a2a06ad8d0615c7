//! Relation Networks (Sung et al. 2018) on embedding vectors: a learned relation module
//! `g([q, p_k]) = W2 · relu(W1 · [q, p_k] + b1) + b2` scores each query against each class
//! prototype (the sum of its support embeddings in the paper; the mean here, so the scale
//! does not depend on K). The scores are the logits; the paper squashes them with a sigmoid
//! and trains with MSE, the trainer here uses cross-entropy on them.

use candle_core::{DType, Device, Tensor};
use scarce_core::{ops, Error, Params, Result, Stream};

use crate::classifier::{check_episode, prototypes, FewShotClassifier};

/// A relation module over `embedding_dim`-wide embeddings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelationNet {
    /// Width of the embeddings it compares.
    pub embedding_dim: usize,
    /// Hidden units of the relation module.
    pub hidden: usize,
    /// Seed of the module's initial weights.
    pub seed: u64,
}

impl FewShotClassifier for RelationNet {
    fn name(&self) -> String {
        format!("relation-{}x{}", self.embedding_dim, self.hidden)
    }

    /// `relation.0.{weight,bias}` `[hidden, 2d]`, `relation.2.{weight,bias}` `[1, hidden]`,
    /// uniform in ±1/√fan_in as PyTorch's `nn.Linear`.
    fn init_head(&self, device: &Device, dtype: DType) -> Result<Params> {
        if self.embedding_dim == 0 || self.hidden == 0 {
            return Err(Error::param("embedding_dim, hidden", "must be positive"));
        }
        let s = Stream::new(self.seed, "relation-init");
        let b1 = 1.0 / ((2 * self.embedding_dim) as f64).sqrt();
        let b2 = 1.0 / (self.hidden as f64).sqrt();
        let mut p = Params::new();
        p.insert(
            "relation.0.weight",
            s.at(0).uniform_tensor(
                (self.hidden, 2 * self.embedding_dim),
                -b1,
                b1,
                dtype,
                device,
            )?,
        );
        p.insert(
            "relation.0.bias",
            s.at(1)
                .uniform_tensor(self.hidden, -b1, b1, dtype, device)?,
        );
        p.insert(
            "relation.2.weight",
            s.at(2)
                .uniform_tensor((1, self.hidden), -b2, b2, dtype, device)?,
        );
        p.insert(
            "relation.2.bias",
            s.at(3).uniform_tensor(1, -b2, b2, dtype, device)?,
        );
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
        let d = support.dim(1)?;
        if d != self.embedding_dim {
            return Err(Error::shape(
                "support",
                format!("[n, {}] (the relation module's width)", self.embedding_dim),
                support.dims(),
            ));
        }
        let protos = prototypes(support, labels, n_way)?;
        let nq = query.dim(0)?;
        // W1 · [q, p] = W1q · q + W1p · p: the pairs are never materialised.
        let w1 = head.require("relation.0.weight")?;
        let (w1q, w1p) = (w1.narrow(1, 0, d)?, w1.narrow(1, d, d)?);
        let hq = query.matmul(&w1q.t()?)?; // [nq, h]
        let hp = protos.matmul(&w1p.t()?)?; // [n_way, h]
        let h = hq
            .unsqueeze(1)?
            .broadcast_add(&hp.unsqueeze(0)?)?
            .broadcast_add(head.require("relation.0.bias")?)?;
        let h = ops::relu(&h)?.reshape((nq * n_way, self.hidden))?;
        let out = ops::linear(
            &h,
            head.require("relation.2.weight")?,
            Some(head.require("relation.2.bias")?),
        )?;
        Ok(out.reshape((nq, n_way))?)
    }
}
