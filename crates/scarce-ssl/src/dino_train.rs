//! DINO self-distillation training (Caron et al. 2021) of any [`Model`]: a student (encoder
//! → head) on every view — global crops first, then local crops — matches the softmax of an
//! EMA teacher on the global crops, through [`Dino`]'s loss with its centre. The head is
//! lightly's two-layer projection (Linear, BatchNorm, ReLU, Linear) to `output_dim`.

use candle_core::{Device, Tensor};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::rng::Stream;
use scarce_core::{Ctx, Error, Model, Params, Result};

use crate::dino::{Dino, DinoConfig};
use crate::ema::{cosine_schedule, update_momentum};
use crate::encoder::Encoder;
use crate::head::ProjectionHead;

/// DINO training settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DinoTrainConfig {
    /// The loss (temperatures, warm-up, centre momentum, `output_dim`).
    pub loss: DinoConfig,
    /// Head hidden width.
    pub hidden: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Teacher EMA momentum at step 0 and at `total_steps` (lightly: 0.996 → 1).
    pub momentum: (f64, f64),
    /// Steps the momentum schedule spans.
    pub total_steps: usize,
    /// Steps per epoch (the loss's teacher-temperature warm-up counts epochs).
    pub steps_per_epoch: usize,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for DinoTrainConfig {
    fn default() -> Self {
        DinoTrainConfig {
            loss: DinoConfig {
                output_dim: 1024,
                ..DinoConfig::default()
            },
            hidden: 512,
            lr: 1e-3,
            momentum: (0.996, 1.0),
            total_steps: 2000,
            steps_per_epoch: 18,
            seed: 0,
        }
    }
}

/// A DINO learner mid-training.
#[derive(Debug)]
pub struct DinoLearner<M> {
    model: M,
    head: ProjectionHead,
    student: Params,
    teacher: Params,
    buffers: Params,
    teacher_buffers: Params,
    loss: Dino,
    adam: Adam,
    cfg: DinoTrainConfig,
    steps: usize,
}

impl<M: Model + Clone> DinoLearner<M> {
    /// Fresh student weights (encoder output `[B, feature_dim]`); the teacher starts equal.
    pub fn new(
        model: M,
        feature_dim: usize,
        cfg: &DinoTrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let head = ProjectionHead::new(feature_dim, cfg.hidden, cfg.loss.output_dim)?;
        let root = Stream::new(cfg.seed, "dino");
        let mut p = model.init(&root.child("encoder"), device)?;
        p.insert_prefixed("head.", &head.init(&root.child("head"), device)?);
        let mut buffers = model.buffers(device)?;
        buffers.insert_prefixed("head.", &head.buffers(device)?);
        let like = Tensor::zeros(1, candle_core::DType::F32, device)?;
        Ok(DinoLearner {
            teacher: p.detach(),
            student: p.to_vars()?,
            teacher_buffers: buffers.clone(),
            buffers,
            loss: Dino::new(cfg.loss, &like)?,
            adam: Adam::new(AdamConfig {
                lr: cfg.lr,
                ..Default::default()
            })?,
            model,
            head,
            cfg: cfg.clone(),
            steps: 0,
        })
    }

    fn outputs(&self, p: &Params, buffers: &mut Params, views: &[&Tensor]) -> Result<Tensor> {
        let mut outs = Vec::with_capacity(views.len());
        for x in views {
            let mut ctx = Ctx::train(std::mem::take(buffers));
            let h = self.model.forward(p, x, &mut ctx)?;
            let mut hctx = Ctx::train(ctx.buffers.strip_prefix("head."));
            let z = self.head.forward(&p.strip_prefix("head."), &h, &mut hctx)?;
            let mut merged = Params::new();
            for (n, t) in ctx.buffers.iter().filter(|(n, _)| !n.starts_with("head.")) {
                merged.insert(n.to_string(), t.clone());
            }
            merged.insert_prefixed("head.", &hctx.buffers);
            *buffers = merged;
            outs.push(z);
        }
        Ok(Tensor::stack(&outs, 0)?)
    }

    /// One update: the teacher sees `global` views, the student `global` then `local` ones
    /// (all normalised, all of one batch size). Returns the loss.
    pub fn step(&mut self, global: &[Tensor], local: &[Tensor]) -> Result<f64> {
        if global.len() < 2 && local.is_empty() {
            return Err(Error::param(
                "global",
                "DINO needs two global views, or one and a local view",
            ));
        }
        let g: Vec<&Tensor> = global.iter().collect();
        let all: Vec<&Tensor> = global.iter().chain(local).collect();
        let mut tb = std::mem::take(&mut self.teacher_buffers);
        let teacher = self.outputs(&self.teacher.clone(), &mut tb, &g)?.detach();
        self.teacher_buffers = tb;
        let mut sb = std::mem::take(&mut self.buffers);
        let student = self.outputs(&self.student.clone(), &mut sb, &all)?;
        self.buffers = sb;
        let epoch = self.steps / self.cfg.steps_per_epoch.max(1);
        let loss = self.loss.loss(&teacher, &student, epoch)?;
        let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let grads = self.student.grads(&loss.backward()?)?;
        self.adam.step(&mut self.student, &grads)?;
        let (m0, m1) = self.cfg.momentum;
        let m = cosine_schedule(self.steps, self.cfg.total_steps, m0, m1, None);
        self.teacher = update_momentum(&self.teacher, &self.student.detach(), m)?;
        self.steps += 1;
        Ok(value)
    }

    /// The teacher's encoder (DINO evaluates the teacher), heads left behind.
    pub fn encoder(&self) -> Encoder<M> {
        let keep = |n: &str| !n.starts_with("head.");
        let mut params = Params::new();
        for (n, t) in self.teacher.iter().filter(|(n, _)| keep(n)) {
            params.insert(n.to_string(), t.clone());
        }
        let mut buffers = Params::new();
        for (n, t) in self.teacher_buffers.iter().filter(|(n, _)| keep(n)) {
            buffers.insert(n.to_string(), t.clone());
        }
        Encoder {
            model: self.model.clone(),
            params,
            buffers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scarce_core::backbone::{Mlp, MlpConfig};
    use scarce_core::DType;

    #[test]
    fn a_step_moves_the_centre_and_the_teacher_by_the_ema_rule() {
        let dev = Device::Cpu;
        let model = Mlp::new(MlpConfig::new(&[6, 8, 4])).unwrap();
        let cfg = DinoTrainConfig {
            loss: DinoConfig {
                output_dim: 10,
                warmup_teacher_temp_epochs: 0,
                ..DinoConfig::default()
            },
            hidden: 8,
            momentum: (0.5, 0.5),
            total_steps: 4,
            ..DinoTrainConfig::default()
        };
        let mut d = DinoLearner::new(model, 4, &cfg, &dev).unwrap();
        let v = |i: u64| {
            Stream::new(i, "v")
                .normal_tensor((8, 6), 0.0, 1.0, DType::F32, &dev)
                .unwrap()
        };
        let before = d
            .teacher
            .require("net.0.weight")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let loss = d.step(&[v(0), v(1)], &[v(2)]).unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{loss}");
        let centre = d
            .loss
            .center
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(centre > 0.0, "the centre did not move");
        let online = d
            .student
            .require("net.0.weight")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let after = d
            .teacher
            .require("net.0.weight")
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for i in 0..before.len() {
            assert!((after[i] - (0.5 * before[i] + 0.5 * online[i])).abs() < 1e-6);
        }
        assert!(d
            .step(&[v(0)], &[])
            .unwrap_err()
            .to_string()
            .contains("global"));
    }
}
