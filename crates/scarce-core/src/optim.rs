//! Optimisers over [`Params`] (PyTorch's update rules) and learning-rate schedules.
//!
//! An optimiser reads gradients by name and replaces each parameter with a fresh candle
//! `Var` holding the updated value, so the next forward/backward differentiates with respect
//! to it. The update itself is computed on detached tensors.

use crate::{Error, Params, Result};
use candle_core::{Tensor, Var};

/// Something that turns gradients into a parameter update.
pub trait Optimizer: std::fmt::Debug {
    /// Updates `params` in place from `grads` (same names). Names missing from `grads` are
    /// an error.
    fn step(&mut self, params: &mut Params, grads: &Params) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (schedules call this each step).
    fn set_lr(&mut self, lr: f64);
}

fn as_var(t: Tensor) -> Result<Tensor> {
    Ok(Var::from_tensor(&t)?.as_tensor().clone())
}

fn check_lr(lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::param(
            "lr",
            format!("{lr} must be finite and non-negative"),
        ));
    }
    Ok(())
}

/// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 = plain SGD).
    pub momentum: f64,
    /// Dampening of the momentum buffer's new term.
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-2,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD, PyTorch's `torch.optim.SGD` rule.
#[derive(Debug)]
pub struct Sgd {
    cfg: SgdConfig,
    momentum: Params,
}

impl Sgd {
    /// Checks the config and builds the optimiser.
    pub fn new(cfg: SgdConfig) -> Result<Self> {
        check_lr(cfg.lr)?;
        if cfg.momentum < 0.0 || cfg.weight_decay < 0.0 {
            return Err(Error::param(
                "momentum/weight_decay",
                "must be non-negative",
            ));
        }
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            return Err(Error::param(
                "nesterov",
                "needs momentum > 0 and dampening = 0",
            ));
        }
        Ok(Sgd {
            cfg,
            momentum: Params::new(),
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut Params, grads: &Params) -> Result<()> {
        let c = self.cfg.clone();
        let names: Vec<String> = params.names().to_vec();
        for n in names {
            let p = params.require(&n)?.detach();
            let mut g = grads.require(&n)?.detach();
            if c.weight_decay != 0.0 {
                g = (g + (&p * c.weight_decay)?)?;
            }
            if c.momentum != 0.0 {
                let buf = match self.momentum.get(&n) {
                    None => g.clone(),
                    Some(b) => ((b * c.momentum)? + (&g * (1.0 - c.dampening))?)?,
                };
                g = if c.nesterov {
                    (g + (&buf * c.momentum)?)?
                } else {
                    buf.clone()
                };
                self.momentum.insert(n.clone(), buf);
            }
            params.insert(n, as_var((p - (g * c.lr)?)?)?);
        }
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.cfg.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }
}

/// Adam and AdamW settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay: an L2 term in the gradient (Adam) or decoupled shrinkage (AdamW).
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter) instead of L2.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

impl AdamConfig {
    /// AdamW defaults (PyTorch's: weight decay 0.01, decoupled).
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            decoupled: true,
            ..Default::default()
        }
    }
}

/// Adam / AdamW, PyTorch's `torch.optim.Adam` / `AdamW` rules.
#[derive(Debug)]
pub struct Adam {
    cfg: AdamConfig,
    t: i32,
    m: Params,
    v: Params,
}

impl Adam {
    /// Checks the config and builds the optimiser.
    pub fn new(cfg: AdamConfig) -> Result<Self> {
        check_lr(cfg.lr)?;
        for (name, b) in [("beta1", cfg.beta1), ("beta2", cfg.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::param(name, format!("{b} not in [0, 1)")));
            }
        }
        if cfg.eps <= 0.0 || cfg.weight_decay < 0.0 {
            return Err(Error::param(
                "eps/weight_decay",
                "eps must be positive, weight_decay non-negative",
            ));
        }
        Ok(Adam {
            cfg,
            t: 0,
            m: Params::new(),
            v: Params::new(),
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> i32 {
        self.t
    }

    /// The moment estimates (`m`, `v`) by parameter name, for checkpoints.
    pub fn moments(&self) -> (&Params, &Params) {
        (&self.m, &self.v)
    }

    /// Restores a state saved from [`Adam::steps`] and [`Adam::moments`], so that training
    /// resumes exactly where it stopped.
    pub fn restore(&mut self, steps: i32, m: Params, v: Params) -> Result<()> {
        if steps < 0 || m.names() != v.names() {
            return Err(Error::param(
                "adam state",
                "steps must be non-negative and m, v hold the same names",
            ));
        }
        self.t = steps;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut Params, grads: &Params) -> Result<()> {
        self.t += 1;
        let c = self.cfg.clone();
        let bc1 = 1.0 - c.beta1.powi(self.t);
        let bc2 = 1.0 - c.beta2.powi(self.t);
        let names: Vec<String> = params.names().to_vec();
        for n in names {
            let mut p = params.require(&n)?.detach();
            let mut g = grads.require(&n)?.detach();
            if c.weight_decay != 0.0 {
                if c.decoupled {
                    p = (p * (1.0 - c.lr * c.weight_decay))?;
                } else {
                    g = (g + (&p * c.weight_decay)?)?;
                }
            }
            let m = match self.m.get(&n) {
                None => (&g * (1.0 - c.beta1))?,
                Some(m) => ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?,
            };
            let v = match self.v.get(&n) {
                None => (g.sqr()? * (1.0 - c.beta2))?,
                Some(v) => ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?,
            };
            let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
            let update = (m.div(&denom)? * (c.lr / bc1))?;
            params.insert(n.clone(), as_var((p - update)?)?);
            self.m.insert(n.clone(), m);
            self.v.insert(n, v);
        }
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.cfg.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }
}

/// A learning-rate schedule: the rate at a step as a function of the base rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` steps (`StepLR`).
    Step {
        /// Steps between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Linear warm-up from 0 over `warmup` steps, then half-cosine decay to `min_lr` at
    /// `total` steps (and `min_lr` after).
    Cosine {
        /// Warm-up steps.
        warmup: usize,
        /// Total steps.
        total: usize,
        /// Final rate.
        min_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate for 0-based `step`.
    pub fn lr_at(&self, base: f64, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((step / every.max(1)) as i32),
            LrSchedule::Cosine {
                warmup,
                total,
                min_lr,
            } => {
                if step < warmup {
                    base * (step + 1) as f64 / warmup as f64
                } else if step >= total {
                    min_lr
                } else {
                    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                    min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn one(v: f64) -> Params {
        [("w".to_string(), Tensor::new(&[v], &Device::Cpu).unwrap())]
            .into_iter()
            .collect()
    }
    fn val(p: &Params) -> f64 {
        p.require("w").unwrap().to_vec1::<f64>().unwrap()[0]
    }

    #[test]
    fn adam_first_steps_follow_the_closed_form() {
        // Constant gradient g: m_t/(1-b1^t) = g and v_t/(1-b2^t) = g², so every step moves
        // by lr·g/(|g| + eps) exactly.
        let mut p = one(1.0);
        let mut opt = Adam::new(AdamConfig {
            lr: 0.1,
            ..Default::default()
        })
        .unwrap();
        for t in 1..=3 {
            opt.step(&mut p, &one(0.5)).unwrap();
            let expect = 1.0 - t as f64 * 0.1 * 0.5 / (0.5 + 1e-8);
            assert!((val(&p) - expect).abs() < 1e-12, "{t}: {}", val(&p));
        }
    }

    #[test]
    fn sgd_momentum_and_nesterov() {
        // Constant gradient 1, lr 1, momentum 0.5: buffers 1, 1.5, 1.75.
        let mut p = one(0.0);
        let mut opt = Sgd::new(SgdConfig {
            lr: 1.0,
            momentum: 0.5,
            ..Default::default()
        })
        .unwrap();
        for _ in 0..3 {
            opt.step(&mut p, &one(1.0)).unwrap();
        }
        assert!((val(&p) + 4.25).abs() < 1e-12);
        let mut p = one(0.0);
        let mut opt = Sgd::new(SgdConfig {
            lr: 1.0,
            momentum: 0.5,
            nesterov: true,
            ..Default::default()
        })
        .unwrap();
        opt.step(&mut p, &one(1.0)).unwrap();
        assert!((val(&p) + 1.5).abs() < 1e-12);
        assert!(Sgd::new(SgdConfig {
            nesterov: true,
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn adamw_decouples_decay() {
        // Zero gradient: Adam's update is 0/(0+eps) = 0, so only the shrink p·(1 - lr·wd) acts.
        let mut p = one(2.0);
        let mut opt = Adam::new(AdamConfig {
            lr: 0.1,
            weight_decay: 0.5,
            decoupled: true,
            ..Default::default()
        })
        .unwrap();
        opt.step(&mut p, &one(0.0)).unwrap();
        assert!((val(&p) - 2.0 * 0.95).abs() < 1e-12);
    }

    #[test]
    fn schedules() {
        let s = LrSchedule::Cosine {
            warmup: 2,
            total: 12,
            min_lr: 0.0,
        };
        assert_eq!(s.lr_at(1.0, 0), 0.5);
        assert_eq!(s.lr_at(1.0, 2), 1.0);
        assert!((s.lr_at(1.0, 7) - 0.5).abs() < 1e-12);
        assert_eq!(s.lr_at(1.0, 20), 0.0);
        assert_eq!(
            LrSchedule::Step {
                every: 10,
                gamma: 0.5
            }
            .lr_at(1.0, 25),
            0.25
        );
    }
}
