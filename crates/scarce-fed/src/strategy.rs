//! Server strategies: a round's client results in, the new global model out, with state
//! carried across rounds (Flower's `aggregate_fit`, legacy strategy API).

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::aggregate::{bulyan, krum, median, trimmed_mean, weighted_mean};
use crate::weights::{check_round, ClientUpdate, Weights};
use crate::{Error, Result};

/// A way to turn a round's results into the next global model.
pub trait Strategy: Send {
    /// Aggregates round `round` (1-based) of results.
    fn aggregate(&mut self, round: u64, results: &[ClientUpdate]) -> Result<Weights>;
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
        let mut pseudo = self.global.zip_map(&avg, |x, a| x - a);
        if self.momentum > 0.0 {
            pseudo = match &self.buffer {
                Some(m) => m.zip_map(&pseudo, |m, g| self.momentum * m + g),
                None => pseudo,
            };
            self.buffer = Some(pseudo.clone());
        }
        self.global = self.global.zip_map(&pseudo, |x, m| x - self.lr * m);
        Ok(self.global.clone())
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
        let delta = avg.zip_map(&self.global, |a, x| a - x);
        let zeros = delta.zeros_like();
        let (b1, b2) = (self.beta_1, self.beta_2);
        let m = self
            .m
            .as_ref()
            .unwrap_or(&zeros)
            .zip_map(&delta, |m, d| b1 * m + (1.0 - b1) * d);
        let v_old = self.v.as_ref().unwrap_or(&zeros);
        let v = match self.kind {
            Adaptive::Adam => v_old.zip_map(&delta, |v, d| b2 * v + (1.0 - b2) * d * d),
            Adaptive::Yogi => v_old.zip_map(&delta, |v, d| {
                v - (1.0 - b2) * d * d * (v - d * d).signum_or_zero()
            }),
            Adaptive::Adagrad => v_old.zip_map(&delta, |v, d| v + d * d),
        };
        let eta = match self.kind {
            Adaptive::Adam => {
                let r = round as f64 + 1.0;
                self.eta * (1.0 - b2.powf(r)).sqrt() / (1.0 - b1.powf(r))
            }
            _ => self.eta,
        };
        let step = m.zip_map(&v, |m, v| eta * m / (v.sqrt() + self.tau));
        self.global = self.global.zip_map(&step, |x, s| x + s);
        (self.m, self.v) = (Some(m), Some(v));
        Ok(self.global.clone())
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

/// The update norm `‖client − global‖₂` over all layers, and the clipped client
/// `global + min(1, C / norm) · (client − global)` (Flower's `compute_clip_model_update`).
pub fn clip_update(client: &Weights, global: &Weights, clip: f64) -> (f64, f64, Weights) {
    let norm = client.squared_distance(global).sqrt();
    let factor = if norm > 0.0 {
        (clip / norm).min(1.0)
    } else {
        1.0
    };
    (
        norm,
        factor,
        global.zip_map(client, |g, c| g + factor * (c - g)),
    )
}

/// Client-level DP-FedAvg with server-side fixed clipping (McMahan et al. 2018; Flower's
/// `DifferentialPrivacyServerSideFixedClipping`): each update is clipped to norm `clip`
/// around the current global model, the inner strategy aggregates, and Gaussian noise of
/// standard deviation `noise_multiplier · clip / n` is added to every coordinate, drawn from
/// ChaCha20 seeded by the operating system.
#[derive(Debug)]
pub struct DpFixedClipping<S> {
    /// The strategy that aggregates the clipped updates.
    pub inner: S,
    /// Clipping norm C.
    pub clip: f64,
    /// Noise multiplier z (the accountant's σ).
    pub noise_multiplier: f64,
    /// The current global model (updated to each round's result).
    pub global: Weights,
    rng: ChaCha20Rng,
}

impl<S: Strategy> DpFixedClipping<S> {
    /// Wraps `inner`; `initial` is the round-1 global model.
    pub fn new(inner: S, initial: Weights, clip: f64, noise_multiplier: f64) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) {
            return Err(Error::config(
                "clip",
                format!("{clip}: must be finite and positive"),
            ));
        }
        if !(noise_multiplier.is_finite() && noise_multiplier >= 0.0) {
            return Err(Error::config(
                "noise_multiplier",
                format!("{noise_multiplier}: must be finite and non-negative"),
            ));
        }
        Ok(DpFixedClipping {
            inner,
            clip,
            noise_multiplier,
            global: initial,
            rng: ChaCha20Rng::from_os_rng(),
        })
    }

    /// A standard normal value (Box–Muller on 53-bit uniforms).
    fn normal(&mut self) -> f64 {
        let u = |r: &mut ChaCha20Rng| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let (a, b) = (u(&mut self.rng), u(&mut self.rng));
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

impl<S: Strategy> Strategy for DpFixedClipping<S> {
    fn aggregate(&mut self, round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        check_round(results)?;
        let clipped: Vec<ClientUpdate> = results
            .iter()
            .map(|r| ClientUpdate {
                weights: clip_update(&r.weights, &self.global, self.clip).2,
                num_examples: r.num_examples,
            })
            .collect();
        let mut out = self.inner.aggregate(round, &clipped)?;
        let std = self.noise_multiplier * self.clip / results.len() as f64;
        if std > 0.0 {
            for layer in &mut out.layers {
                for v in layer.iter_mut() {
                    *v += std * self.normal();
                }
            }
        }
        self.global = out.clone();
        Ok(out)
    }
}
