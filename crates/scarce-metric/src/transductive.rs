//! Methods that fit at test time on the episode's own data, following easyfsl's
//! implementations: a linear probe on frozen support embeddings, BD-CSPN (prototype
//! rectification with pseudo-labelled queries) and TIM (transductive information
//! maximisation). Their logits are computed from detached embeddings: they are evaluation
//! rules for a trained backbone, not training heads.

use candle_core::{DType, Tensor, Var};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::{ops, Params, Result};

use crate::classifier::{
    check_episode, l2_normalize, prototypes, squared_distances, FewShotClassifier,
};
use crate::matching::one_hot_rows;

fn cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(l2_normalize(a)?.matmul(&l2_normalize(b)?.t()?)?)
}

/// BD-CSPN (Liu et al. 2020): queries are shifted by the support–query mean difference;
/// each prototype becomes the `exp(cos)`-weighted mean of its support and of the shifted
/// queries predicted to be in its class; logits are negative squared distances of the
/// (unshifted) queries to the rectified prototypes.
#[derive(Clone, Copy, Debug, Default)]
pub struct BdCspn;

impl FewShotClassifier for BdCspn {
    fn name(&self) -> String {
        "bd-cspn".into()
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
        let (s, q) = (support.detach(), query.detach());
        let protos = prototypes(&s, labels, n_way)?;
        let shift = s.mean_keepdim(0)?.broadcast_sub(&q.mean_keepdim(0)?)?;
        let q_shifted = q.broadcast_add(&shift)?;
        let ys = one_hot_rows(labels, n_way, &s)?;
        let ws = (cosine(&s, &protos)?.exp()? * &ys)?;
        let q_logits = cosine(&q_shifted, &protos)?.exp()?;
        let pred: Vec<u32> = q_logits.argmax(1)?.to_dtype(DType::U32)?.to_vec1()?;
        let yq = one_hot_rows(&pred, n_way, &q)?;
        let wq = (q_logits * &yq)?;
        let norm = (ws.sum_keepdim(0)? + wq.sum_keepdim(0)?)?;
        let (ws, wq) = (ws.broadcast_div(&norm)?, wq.broadcast_div(&norm)?);
        let rectified = (ws.t()?.matmul(&s)? + wq.t()?.matmul(&q_shifted)?)?;
        Ok(squared_distances(&q, &rectified)?.neg()?)
    }
}

/// TIM (Boudiaf et al. 2020), the gradient-descent form: prototypes start at the support
/// means and take `steps` Adam steps on
/// `ce_weight · CE(support) − (marginal_weight · H(ŷ_query) − conditional_weight · H(y|query))`
/// with logits `temperature · cos(x, p)`; the query logits are then
/// `temperature · cos(q, p)`.
#[derive(Clone, Copy, Debug)]
pub struct Tim {
    /// Fine-tuning steps (easyfsl: 50).
    pub steps: usize,
    /// Adam learning rate (easyfsl: 1e-4).
    pub lr: f64,
    /// Cosine temperature (easyfsl: 10).
    pub temperature: f64,
    /// Weight of the support cross-entropy (1).
    pub ce_weight: f64,
    /// Weight of the query marginal entropy (1).
    pub marginal_weight: f64,
    /// Weight of the query conditional entropy (0.1).
    pub conditional_weight: f64,
}

impl Default for Tim {
    fn default() -> Self {
        Tim {
            steps: 50,
            lr: 1e-4,
            temperature: 10.0,
            ce_weight: 1.0,
            marginal_weight: 1.0,
            conditional_weight: 0.1,
        }
    }
}

impl Tim {
    /// The TIM objective for prototypes `p`.
    pub fn objective(
        &self,
        p: &Tensor,
        support: &Tensor,
        ys: &Tensor,
        query: &Tensor,
    ) -> Result<Tensor> {
        let ls = (cosine(support, p)? * self.temperature)?;
        let ce = (ys * ops::log_softmax(&ls, 1)?)?.sum(1)?.mean(0)?.neg()?;
        let pq = ops::softmax(&(cosine(query, p)? * self.temperature)?, 1)?;
        let cond = (&pq * (&pq + 1e-12)?.log()?)?.sum(1)?.mean(0)?.neg()?;
        let marg = pq.mean(0)?;
        let marg_h = (&marg * marg.log()?)?.sum(0)?.neg()?;
        Ok(((ce * self.ce_weight)?
            - ((marg_h * self.marginal_weight)? - (cond * self.conditional_weight)?)?)?)
    }
}

impl FewShotClassifier for Tim {
    fn name(&self) -> String {
        "tim".into()
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
        let (s, q) = (support.detach(), query.detach());
        let ys = one_hot_rows(labels, n_way, &s)?;
        let mut p = Params::new();
        p.insert(
            "prototypes",
            Var::from_tensor(&prototypes(&s, labels, n_way)?)?
                .as_tensor()
                .clone(),
        );
        let mut adam = Adam::new(AdamConfig {
            lr: self.lr,
            ..Default::default()
        })?;
        for _ in 0..self.steps {
            let loss = self.objective(p.require("prototypes")?, &s, &ys, &q)?;
            let g = p.grads(&loss.backward()?)?;
            adam.step(&mut p, &g)?;
        }
        Ok((cosine(&q, &p.require("prototypes")?.detach())? * self.temperature)?)
    }
}

/// A linear probe: logistic regression `W q + b` fitted on the (frozen) support
/// embeddings by `steps` Adam steps on cross-entropy plus `weight_decay · ‖W‖²`, from zero.
#[derive(Clone, Copy, Debug)]
pub struct LinearProbe {
    /// Adam steps.
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 penalty on the weights.
    pub weight_decay: f64,
}

impl Default for LinearProbe {
    fn default() -> Self {
        LinearProbe {
            steps: 100,
            lr: 0.01,
            weight_decay: 1e-3,
        }
    }
}

impl FewShotClassifier for LinearProbe {
    fn name(&self) -> String {
        "linear-probe".into()
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
        let (s, q) = (support.detach(), query.detach());
        let d = s.dim(1)?;
        let y = Tensor::new(labels, s.device())?;
        let mut p = Params::new();
        p.insert(
            "weight",
            Var::zeros((n_way, d), s.dtype(), s.device())?
                .as_tensor()
                .clone(),
        );
        p.insert(
            "bias",
            Var::zeros(n_way, s.dtype(), s.device())?
                .as_tensor()
                .clone(),
        );
        let mut adam = Adam::new(AdamConfig {
            lr: self.lr,
            ..Default::default()
        })?;
        for _ in 0..self.steps {
            let (w, b) = (p.require("weight")?, p.require("bias")?);
            let loss = (ops::cross_entropy(&ops::linear(&s, w, Some(b))?, &y)?
                + (w.sqr()?.sum_all()? * self.weight_decay)?)?;
            let g = p.grads(&loss.backward()?)?;
            adam.step(&mut p, &g)?;
        }
        ops::linear(
            &q,
            &p.require("weight")?.detach(),
            Some(&p.require("bias")?.detach()),
        )
    }
}
