//! Server strategies: a round's client results in, the new global model out, with state
//! carried across rounds (Flower's `aggregate_fit`, legacy strategy API).

use std::collections::BTreeMap;

use crate::aggregate::{bulyan, krum, median, trimmed_mean, weighted_mean};
use crate::weights::{ClientUpdate, Weights};
use crate::{Error, Result};

/// A way to turn a round's results into the next global model.
pub trait Strategy: Send {
    /// Aggregates round `round` (1-based) of results.
    fn aggregate(&mut self, round: u64, results: &[ClientUpdate]) -> Result<Weights>;

    /// What the strategy carries from round to round (server model, momentum, moments,
    /// clipping norm), for checkpoints. Stateless rules return nothing.
    fn state(&self) -> StrategyState {
        StrategyState::default()
    }

    /// Puts back what [`Strategy::state`] returned.
    fn restore(&mut self, state: &StrategyState) -> Result<()> {
        let _ = state;
        Ok(())
    }
}

/// A strategy's state across rounds: named parameter sets and named numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StrategyState {
    /// Parameter-shaped state (`global`, `momentum`, `m`, `v`, …).
    pub weights: BTreeMap<String, Weights>,
    /// Scalar state (`clip_norm`, …).
    pub scalars: BTreeMap<String, f64>,
}

impl StrategyState {
    /// The parameter set `name`, or an error naming it.
    pub fn weights(&self, name: &str) -> Result<&Weights> {
        self.weights
            .get(name)
            .ok_or_else(|| Error::config("state", format!("no `{name}` in the saved state")))
    }

    /// The number `name`, or an error naming it.
    pub fn scalar(&self, name: &str) -> Result<f64> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| Error::config("state", format!("no `{name}` in the saved state")))
    }

    /// `inner`'s entries under `prefix.`, for a strategy that wraps another.
    pub fn insert_prefixed(&mut self, prefix: &str, inner: StrategyState) {
        for (k, v) in inner.weights {
            self.weights.insert(format!("{prefix}.{k}"), v);
        }
        for (k, v) in inner.scalars {
            self.scalars.insert(format!("{prefix}.{k}"), v);
        }
    }

    /// The entries under `prefix.`, with the prefix removed.
    pub fn strip_prefix(&self, prefix: &str) -> StrategyState {
        let p = format!("{prefix}.");
        StrategyState {
            weights: self
                .weights
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), v.clone())))
                .collect(),
            scalars: self
                .scalars
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), *v)))
                .collect(),
        }
    }
}

/// Replaces `target` with a saved set after checking it has the same layout.
fn restore_weights(target: &mut Weights, saved: &Weights) -> Result<()> {
    target.check_same_layout(saved, 0).map_err(|e| {
        Error::config(
            "state",
            format!("the saved model does not fit this one: {e}"),
        )
    })?;
    *target = saved.clone();
    Ok(())
}

/// FedAvg (McMahan et al. 2017): the num_examples-weighted mean.
#[derive(Debug, Clone, Default)]
pub struct FedAvg;

impl Strategy for FedAvg {
    fn aggregate(&mut self, _round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        weighted_mean(results)
    }
}

/// Coordinate-wise median (Yin et al. 2018).
#[derive(Debug, Clone, Default)]
pub struct FedMedian;

impl Strategy for FedMedian {
    fn aggregate(&mut self, _round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        median(results)
    }
}

/// Coordinate-wise trimmed mean (Yin et al. 2018).
#[derive(Debug, Clone)]
pub struct FedTrimmedAvg {
    /// Fraction cut from each end (Flower's `beta`, default 0.2).
    pub proportion: f64,
}

impl Strategy for FedTrimmedAvg {
    fn aggregate(&mut self, _round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        trimmed_mean(results, self.proportion)
    }
}

/// Krum / Multi-Krum (Blanchard et al. 2017).
#[derive(Debug, Clone)]
pub struct Krum {
    /// Assumed Byzantine clients f.
    pub num_malicious: usize,
    /// 0: Krum; k > 0: Multi-Krum over the k best.
    pub to_keep: usize,
}

impl Strategy for Krum {
    fn aggregate(&mut self, _round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        Ok(krum(results, self.num_malicious, self.to_keep)?.weights)
    }
}

/// Bulyan over Krum (El Mhamdi et al. 2018).
#[derive(Debug, Clone)]
pub struct Bulyan {
    /// Assumed Byzantine clients f (n ≥ 4f + 3).
    pub num_malicious: usize,
}

impl Strategy for Bulyan {
    fn aggregate(&mut self, _round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        Ok(bulyan(results, self.num_malicious)?.0)
    }
}

/// FedAvg with server momentum (Hsu et al. 2019): `x ← x − lr · m`,
/// `m ← μ m + (x − avg)` (`m = x − avg` in the first round).
#[derive(Debug, Clone)]
pub struct FedAvgM {
    /// Server learning rate.
    pub lr: f64,
    /// Server momentum μ.
    pub momentum: f64,
    /// The current global model.
    pub global: Weights,
    /// The momentum buffer (after the first round).
    pub buffer: Option<Weights>,
}

impl FedAvgM {
    /// Starts from `initial` with Flower's defaults-free settings.
    pub fn new(initial: Weights, lr: f64, momentum: f64) -> Self {
        FedAvgM {
            lr,
            momentum,
            global: initial,
            buffer: None,
        }
    }
}

impl Strategy for FedAvgM {
    fn aggregate(&mut self, _round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        let avg = weighted_mean(results)?;
        self.global.check_same_layout(&avg, 0)?;
        if self.lr == 1.0 && self.momentum == 0.0 {
            // Flower skips the server step when it is the identity.
            self.global = avg.clone();
            return Ok(avg);
        }
        let mut pseudo = self.global.zip_map(&avg, |x, a| x - a)?;
        if self.momentum > 0.0 {
            pseudo = match &self.buffer {
                Some(m) => m.zip_map(&pseudo, |m, g| self.momentum * m + g)?,
                None => pseudo,
            };
            self.buffer = Some(pseudo.clone());
        }
        self.global = self.global.zip_map(&pseudo, |x, m| x - self.lr * m)?;
        Ok(self.global.clone())
    }

    fn state(&self) -> StrategyState {
        let mut s = StrategyState::default();
        s.weights.insert("global".into(), self.global.clone());
        if let Some(m) = &self.buffer {
            s.weights.insert("momentum".into(), m.clone());
        }
        s
    }

    fn restore(&mut self, state: &StrategyState) -> Result<()> {
        restore_weights(&mut self.global, state.weights("global")?)?;
        self.buffer = state.weights.get("momentum").cloned();
        Ok(())
    }
}

/// Which adaptive server optimiser (Reddi et al. 2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adaptive {
    /// FedAdam, with Flower's bias correction (offset by one round).
    Adam,
    /// FedYogi.
    Yogi,
    /// FedAdagrad (β₁ forced to 0, as Flower does).
    Adagrad,
}

/// FedAdam / FedYogi / FedAdagrad: the FedAvg of the round is a pseudo-gradient
/// `Δ = avg − x` for a server-side adaptive step.
#[derive(Debug, Clone)]
pub struct FedOpt {
    /// Which update.
    pub kind: Adaptive,
    /// Server learning rate η.
    pub eta: f64,
    /// β₁.
    pub beta_1: f64,
    /// β₂.
    pub beta_2: f64,
    /// Adaptivity τ.
    pub tau: f64,
    /// The current global model.
    pub global: Weights,
    /// First moment.
    pub m: Option<Weights>,
    /// Second moment.
    pub v: Option<Weights>,
}

impl FedOpt {
    /// Starts from `initial`.
    pub fn new(
        kind: Adaptive,
        initial: Weights,
        eta: f64,
        beta_1: f64,
        beta_2: f64,
        tau: f64,
    ) -> Self {
        FedOpt {
            kind,
            eta,
            beta_1: if kind == Adaptive::Adagrad {
                0.0
            } else {
                beta_1
            },
            beta_2,
            tau,
            global: initial,
            m: None,
            v: None,
        }
    }
}

impl Strategy for FedOpt {
    fn aggregate(&mut self, round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        let avg = weighted_mean(results)?;
        self.global.check_same_layout(&avg, 0)?;
        let delta = avg.zip_map(&self.global, |a, x| a - x)?;
        let zeros = delta.zeros_like();
        let (b1, b2) = (self.beta_1, self.beta_2);
        let m = self
            .m
            .as_ref()
            .unwrap_or(&zeros)
            .zip_map(&delta, |m, d| b1 * m + (1.0 - b1) * d)?;
        let v_old = self.v.as_ref().unwrap_or(&zeros);
        let v = match self.kind {
            Adaptive::Adam => v_old.zip_map(&delta, |v, d| b2 * v + (1.0 - b2) * d * d)?,
            Adaptive::Yogi => v_old.zip_map(&delta, |v, d| {
                v - (1.0 - b2) * d * d * (v - d * d).signum_or_zero()
            })?,
            Adaptive::Adagrad => v_old.zip_map(&delta, |v, d| v + d * d)?,
        };
        let eta = match self.kind {
            Adaptive::Adam => {
                let r = round as f64 + 1.0;
                self.eta * (1.0 - b2.powf(r)).sqrt() / (1.0 - b1.powf(r))
            }
            _ => self.eta,
        };
        let step = m.zip_map(&v, |m, v| eta * m / (v.sqrt() + self.tau))?;
        self.global = self.global.zip_map(&step, |x, s| x + s)?;
        (self.m, self.v) = (Some(m), Some(v));
        Ok(self.global.clone())
    }

    fn state(&self) -> StrategyState {
        let mut s = StrategyState::default();
        s.weights.insert("global".into(), self.global.clone());
        for (name, w) in [("m", &self.m), ("v", &self.v)] {
            if let Some(w) = w {
                s.weights.insert(name.into(), w.clone());
            }
        }
        s
    }

    fn restore(&mut self, state: &StrategyState) -> Result<()> {
        restore_weights(&mut self.global, state.weights("global")?)?;
        self.m = state.weights.get("m").cloned();
        self.v = state.weights.get("v").cloned();
        Ok(())
    }
}

/// numpy's `sign`: −1, 0 or 1.
trait SignumOrZero {
    fn signum_or_zero(self) -> f64;
}

impl SignumOrZero for f64 {
    fn signum_or_zero(self) -> f64 {
        if self > 0.0 {
            1.0
        } else if self < 0.0 {
            -1.0
        } else {
            0.0
        }
    }
}
