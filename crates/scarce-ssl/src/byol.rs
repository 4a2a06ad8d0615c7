//! BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021) pretraining of any [`Model`]: an
//! online branch (encoder → projector → predictor) regresses a target branch (encoder →
//! projector) on the other view, with the symmetric negative cosine. BYOL's target is an EMA
//! of the online weights, its momentum rising along lightly's cosine schedule; SimSiam's
//! target is the online branch itself behind a stop-gradient (momentum 0).

use candle_core::{Device, Tensor};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::rng::Stream;
use scarce_core::{Ctx, Error, Model, Params, Result};

use crate::ema::{cosine_schedule, update_momentum};
use crate::encoder::Encoder;
use crate::head::ProjectionHead;
use crate::loss::negative_cosine;

/// BYOL's settings (lightly's BYOL example: projection 4096 → 256, prediction 4096 → 256,
/// momentum 0.99 → 1; narrower heads suit a narrow encoder).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ByolConfig {
    /// Adam's learning rate.
    pub lr: f64,
    /// Projector and predictor hidden width.
    pub hidden: usize,
    /// Projector and predictor output width.
    pub out: usize,
    /// EMA momentum at step 0 (0 with `momentum_end` 0 gives SimSiam).
    pub momentum_start: f64,
    /// EMA momentum at the last step.
    pub momentum_end: f64,
    /// Steps the momentum schedule spans.
    pub total_steps: usize,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for ByolConfig {
    fn default() -> Self {
        ByolConfig {
            lr: 1e-3,
            hidden: 512,
            out: 128,
            momentum_start: 0.99,
            momentum_end: 1.0,
            total_steps: 2000,
            seed: 0,
        }
    }
}

/// A BYOL / SimSiam learner mid-training.
#[derive(Debug)]
pub struct Byol<M> {
    model: M,
    projector: ProjectionHead,
    predictor: ProjectionHead,
    online: Params,
    target: Params,
    buffers: Params,
    target_buffers: Params,
    adam: Adam,
    cfg: ByolConfig,
    steps: usize,
}

impl<M: Model + Clone> Byol<M> {
    /// Fresh weights for `model` (output `[B, feature_dim]`), projector and predictor; the
    /// target starts as a copy of the online branch.
    pub fn new(model: M, feature_dim: usize, cfg: &ByolConfig, device: &Device) -> Result<Self> {
        if !(0.0..=1.0).contains(&cfg.momentum_start) || !(0.0..=1.0).contains(&cfg.momentum_end) {
            return Err(Error::param("ByolConfig.momentum", "must lie in [0, 1]"));
        }
        let projector = ProjectionHead::new(feature_dim, cfg.hidden, cfg.out)?;
        let predictor = ProjectionHead::new(cfg.out, cfg.hidden, cfg.out)?;
        let root = Stream::new(cfg.seed, "byol");
        let mut p = model.init(&root.child("encoder"), device)?;
        p.insert_prefixed(
            "projector.",
            &projector.init(&root.child("projector"), device)?,
        );
        p.insert_prefixed(
            "predictor.",
            &predictor.init(&root.child("predictor"), device)?,
        );
        let mut buffers = model.buffers(device)?;
        buffers.insert_prefixed("projector.", &projector.buffers(device)?);
        buffers.insert_prefixed("predictor.", &predictor.buffers(device)?);
        let target = target_part(&p);
        let target_buffers = buffers.clone();
        Ok(Byol {
            model,
            projector,
            predictor,
            online: p.to_vars()?,
            target,
            buffers,
            target_buffers,
            adam: Adam::new(AdamConfig {
                lr: cfg.lr,
                ..Default::default()
            })?,
            cfg: cfg.clone(),
            steps: 0,
        })
    }

    /// Encoder then projector (then predictor when `predict`) in train mode on `buffers`.
    fn branch(
        &self,
        p: &Params,
        buffers: &mut Params,
        x: &Tensor,
        predict: bool,
    ) -> Result<Tensor> {
        let mut ctx = Ctx::train(std::mem::take(buffers));
        let h = self.model.forward(p, x, &mut ctx)?;
        let mut pctx = Ctx::train(ctx.buffers.strip_prefix("projector."));
        let z = self
            .projector
            .forward(&p.strip_prefix("projector."), &h, &mut pctx)?;
        let mut out = Params::new();
        for (n, t) in ctx
            .buffers
            .iter()
            .filter(|(n, _)| !n.starts_with("projector."))
        {
            out.insert(n.to_string(), t.clone());
        }
        out.insert_prefixed("projector.", &pctx.buffers);
        let y = if predict {
            let mut qctx = Ctx::train(out.strip_prefix("predictor."));
            let q = self
                .predictor
                .forward(&p.strip_prefix("predictor."), &z, &mut qctx)?;
            let mut merged = Params::new();
            for (n, t) in out.iter().filter(|(n, _)| !n.starts_with("predictor.")) {
                merged.insert(n.to_string(), t.clone());
            }
            merged.insert_prefixed("predictor.", &qctx.buffers);
            out = merged;
            q
        } else {
            z
        };
        *buffers = out;
        Ok(y)
    }

    /// One update on two normalised views; returns the symmetric loss
    /// `½ (−cos(p0, z1) − cos(p1, z0))`, the target outputs behind a stop-gradient.
    pub fn step(&mut self, view0: &Tensor, view1: &Tensor) -> Result<f64> {
        let online = self.online.clone();
        let mut b = std::mem::take(&mut self.buffers);
        let p0 = self.branch(&online, &mut b, view0, true)?;
        let p1 = self.branch(&online, &mut b, view1, true)?;
        self.buffers = b;
        let m = cosine_schedule(
            self.steps,
            self.cfg.total_steps,
            self.cfg.momentum_start,
            self.cfg.momentum_end,
            None,
        );
        // SimSiam (momentum 0): the target is the online branch itself, detached.
        let target = if m == 0.0 {
            target_part(&online.detach())
        } else {
            self.target.clone()
        };
        let mut tb = std::mem::take(&mut self.target_buffers);
        let z0 = self.branch(&target, &mut tb, view0, false)?.detach();
        let z1 = self.branch(&target, &mut tb, view1, false)?.detach();
        self.target_buffers = tb;
        let loss = ((negative_cosine(&p0, &z1)? + negative_cosine(&p1, &z0)?)? * 0.5)?;
        let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let g = self.online.grads(&loss.backward()?)?;
        self.adam.step(&mut self.online, &g)?;
        self.target = update_momentum(&self.target, &target_part(&self.online.detach()), m)?;
        self.steps += 1;
        Ok(value)
    }

    /// The online encoder as it stands (heads left behind).
    pub fn encoder(&self) -> Encoder<M> {
        let keep = |n: &str| !n.starts_with("projector.") && !n.starts_with("predictor.");
        let mut params = Params::new();
        for (n, t) in self.online.iter().filter(|(n, _)| keep(n)) {
            params.insert(n.to_string(), t.detach());
        }
        let mut buffers = Params::new();
        for (n, t) in self.buffers.iter().filter(|(n, _)| keep(n)) {
            buffers.insert(n.to_string(), t.clone());
        }
        Encoder {
            model: self.model.clone(),
            params,
            buffers,
        }
    }
}

/// The tensors the target branch has: everything but the predictor.
fn target_part(p: &Params) -> Params {
    let mut t = Params::new();
    for (n, v) in p.iter().filter(|(n, _)| !n.starts_with("predictor.")) {
        t.insert(n.to_string(), v.detach());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use scarce_core::backbone::{Mlp, MlpConfig};
    use scarce_core::DType;

    /// With momentum 1 the target never moves; with momentum 0.5 it moves half way to the
    /// online weights after each step (the EMA rule, checked on the first weight).
    #[test]
    fn the_target_follows_the_online_weights_by_the_ema_rule() {
        let dev = Device::Cpu;
        let model = Mlp::new(MlpConfig::new(&[6, 8, 4])).unwrap();
        let x0 = Stream::new(1, "x")
            .normal_tensor((16, 6), 0.0, 1.0, DType::F32, &dev)
            .unwrap();
        let x1 = (&x0 + 0.1).unwrap();
        for m in [1.0, 0.5] {
            let cfg = ByolConfig {
                hidden: 8,
                out: 4,
                momentum_start: m,
                momentum_end: m,
                total_steps: 3,
                ..ByolConfig::default()
            };
            let mut byol = Byol::new(model.clone(), 4, &cfg, &dev).unwrap();
            let before = byol
                .target
                .require("net.0.weight")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let loss = byol.step(&x0, &x1).unwrap();
            assert!(loss.is_finite() && (-1.0..=1.0).contains(&loss), "{loss}");
            let online = byol
                .online
                .require("net.0.weight")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let after = byol
                .target
                .require("net.0.weight")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for i in 0..before.len() {
                let want = m as f32 * before[i] + (1.0 - m as f32) * online[i];
                assert!(
                    (after[i] - want).abs() < 1e-6,
                    "m {m}: {} vs {want}",
                    after[i]
                );
            }
        }
    }
}
