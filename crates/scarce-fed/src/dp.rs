//! Differential privacy: client-level DP-FedAvg on the server (fixed or adaptive clipping
//! norm) and DP-SGD with per-example clipping for a client's own training.
//!
//! All noise comes from [`SecureGaussian`]: ChaCha20 seeded by the operating system. A
//! user seed is deliberately not offered: anyone holding it could regenerate the noise and
//! subtract it.

use candle_core::{DType, Tensor};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use scarce_core::Params;

use crate::strategy::{Strategy, StrategyState};
use crate::weights::{check_round, ClientUpdate, Weights};
use crate::{Error, Result};

/// Standard normal values from a cryptographically secure generator.
#[derive(Debug)]
pub struct SecureGaussian {
    rng: ChaCha20Rng,
}

impl Default for SecureGaussian {
    fn default() -> Self {
        Self::new()
    }
}

impl SecureGaussian {
    /// A generator seeded by the operating system.
    pub fn new() -> Self {
        SecureGaussian {
            rng: ChaCha20Rng::from_os_rng(),
        }
    }

    /// A uniform value in (0, 1), from 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal value (Box–Muller on 53-bit uniforms in (0, 1)).
    pub fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform(), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }

    /// Adds N(0, std²) to every value.
    pub fn perturb(&mut self, values: &mut [f64], std: f64) {
        if std > 0.0 {
            for v in values {
                *v += std * self.normal();
            }
        }
    }
}

/// The update norm `‖client − global‖₂` over all layers, the clipping factor
/// `min(1, C / norm)`, and the clipped client `global + factor · (client − global)`
/// (Flower's `compute_clip_model_update`). An error when the layouts differ.
pub fn clip_update(client: &Weights, global: &Weights, clip: f64) -> Result<(f64, f64, Weights)> {
    let norm = global.squared_distance(client)?.sqrt();
    let factor = if norm > 0.0 {
        (clip / norm).min(1.0)
    } else {
        1.0
    };
    Ok((
        norm,
        factor,
        global.zip_map(client, |g, c| g + factor * (c - g))?,
    ))
}

/// Adaptive clipping (Andrew et al. 2021, "Differentially private learning with adaptive
/// clipping"): the norm follows a target quantile of the update norms, learnt from a noised
/// count of unclipped clients.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveClip {
    /// The clipping norm of the first round (Flower's default 0.1).
    pub initial: f64,
    /// The fraction γ of updates that should fall within the norm (default 0.5).
    pub target_quantile: f64,
    /// Geometric step η_C (default 0.2): `C ← C · exp(−η_C (b̄ − γ))`.
    pub lr: f64,
    /// Standard deviation σ_b of the noise on the unclipped count (default: clients / 20).
    pub count_stddev: f64,
}

impl AdaptiveClip {
    /// Flower's defaults for `clients` sampled per round.
    pub fn defaults(clients: usize) -> Self {
        AdaptiveClip {
            initial: 0.1,
            target_quantile: 0.5,
            lr: 0.2,
            count_stddev: clients as f64 / 20.0,
        }
    }
}

/// How the clipping norm is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum ClipNorm {
    /// One norm for every round.
    Fixed(f64),
    /// A norm that tracks a quantile of the update norms.
    Adaptive(AdaptiveClip),
}

/// Client-level DP-FedAvg with server-side clipping (McMahan et al. 2018): each update is
/// clipped around the current global model, the inner strategy aggregates, and Gaussian
/// noise of standard deviation `z_Δ · C · w_max` is added to every coordinate, where
/// `w_max = max_i n_i / Σ n_i` is the largest share of the round's examples one client holds.
///
/// Why `w_max`: the guarantee is for one client's update, clipped to norm `C`; in an
/// example-weighted mean (FedAvg) that client moves the result by up to `w_i · C`, so the
/// sensitivity is `C · w_max`, not `C / n`. With equal example counts `w_max = 1 / n` and the
/// noise is Flower's `z · C / n` exactly; with unequal counts it is larger, so the ε the
/// accountant reports for `z` holds whatever the weighting. The bound assumes the inner
/// strategy is a weighted or plain mean of the clipped updates (FedAvg, [`crate::aggregate::mean`]);
/// for a plain mean `w_max` over-covers. With a fixed norm
/// `z_Δ = z` (Flower's `DifferentialPrivacyServerSideFixedClipping`); with adaptive
/// clipping part of the privacy budget goes to the count, so
/// `z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)` (Andrew et al., Theorem 1) and the pair of releases
/// has the privacy of one Gaussian mechanism with multiplier `z`: the accountant's σ.
#[derive(Debug)]
pub struct DpFedAvg<S> {
    /// The strategy that aggregates the clipped updates.
    pub inner: S,
    /// The clipping rule.
    pub clip: ClipNorm,
    /// The clipping norm of the next round.
    pub norm: f64,
    /// The noise multiplier z (what the accountant is given).
    pub noise_multiplier: f64,
    /// The current global model (updated to each round's result).
    pub global: Weights,
    noise: SecureGaussian,
}

impl<S: Strategy> DpFedAvg<S> {
    /// Wraps `inner`; `initial` is the round-1 global model.
    pub fn new(inner: S, initial: Weights, clip: ClipNorm, noise_multiplier: f64) -> Result<Self> {
        if !(noise_multiplier.is_finite() && noise_multiplier >= 0.0) {
            return Err(Error::config(
                "noise_multiplier",
                format!("{noise_multiplier}: must be finite and non-negative"),
            ));
        }
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    name,
                    format!("{v}: must be finite and positive"),
                ))
            }
        };
        let norm = match &clip {
            ClipNorm::Fixed(c) => {
                positive("clip", *c)?;
                *c
            }
            ClipNorm::Adaptive(a) => {
                positive("initial", a.initial)?;
                positive("lr", a.lr)?;
                positive("count_stddev", a.count_stddev)?;
                if !(0.0..=1.0).contains(&a.target_quantile) {
                    return Err(Error::config(
                        "target_quantile",
                        format!("{}: must be in [0, 1]", a.target_quantile),
                    ));
                }
                if noise_multiplier > 0.0 && noise_multiplier >= 2.0 * a.count_stddev {
                    return Err(Error::config(
                        "count_stddev",
                        format!(
                            "{}: the count noise must exceed z / 2 = {} to leave noise for the update",
                            a.count_stddev,
                            noise_multiplier / 2.0
                        ),
                    ));
                }
                a.initial
            }
        };
        Ok(DpFedAvg {
            inner,
            clip,
            norm,
            noise_multiplier,
            global: initial,
            noise: SecureGaussian::new(),
        })
    }

    /// The standard deviation of the noise added to every coordinate for a round with these
    /// clients: `z_Δ · C · max_i n_i / Σ n_i` (see the type's docs).
    pub fn noise_stddev(&self, results: &[ClientUpdate]) -> f64 {
        let total: u64 = results.iter().map(|r| r.num_examples).sum();
        let largest = results.iter().map(|r| r.num_examples).max().unwrap_or(0);
        let share = if total == 0 {
            1.0
        } else {
            largest as f64 / total as f64
        };
        self.update_noise_multiplier() * self.norm * share
    }

    /// The multiplier of the noise on the update, `z_Δ`.
    pub fn update_noise_multiplier(&self) -> f64 {
        let z = self.noise_multiplier;
        match &self.clip {
            ClipNorm::Adaptive(a) if z > 0.0 => {
                (z.powi(-2) - (2.0 * a.count_stddev).powi(-2)).powf(-0.5)
            }
            _ => z,
        }
    }
}

impl<S: Strategy> Strategy for DpFedAvg<S> {
    fn aggregate(&mut self, round: u64, results: &[ClientUpdate]) -> Result<Weights> {
        check_round(results)?;
        let norm = self.norm;
        let std = self.noise_stddev(results);
        let mut unclipped = 0usize;
        let clipped: Vec<ClientUpdate> = results
            .iter()
            .map(|r| {
                let (update_norm, _, weights) = clip_update(&r.weights, &self.global, norm)?;
                unclipped += usize::from(update_norm <= norm);
                Ok(ClientUpdate {
                    weights,
                    num_examples: r.num_examples,
                })
            })
            .collect::<Result<_>>()?;
        let mut out = self.inner.aggregate(round, &clipped)?;
        for layer in &mut out.layers {
            self.noise.perturb(layer, std);
        }
        if let ClipNorm::Adaptive(a) = &self.clip {
            let noised = unclipped as f64 + a.count_stddev * self.noise.normal();
            let fraction = noised / results.len() as f64;
            self.norm *= (-a.lr * (fraction - a.target_quantile)).exp();
        }
        self.global = out.clone();
        Ok(out)
    }

    fn state(&self) -> StrategyState {
        let mut s = StrategyState::default();
        s.weights.insert("global".into(), self.global.clone());
        s.scalars.insert("clip_norm".into(), self.norm);
        s.insert_prefixed("inner", self.inner.state());
        s
    }

    fn restore(&mut self, state: &StrategyState) -> Result<()> {
        let saved = state.weights("global")?;
        self.global.check_same_layout(saved, 0)?;
        self.global = saved.clone();
        self.norm = state.scalar("clip_norm")?;
        self.inner.restore(&state.strip_prefix("inner"))
    }
}

/// DP-SGD (Abadi et al. 2016) for a client's local training: per-example gradients, each
/// clipped to L2 norm `clip` over all parameters, summed, Gaussian noise of standard
/// deviation `noise_multiplier · clip` added, divided by the batch size (Opacus's
/// `DPOptimizer` with `loss_reduction = "mean"`). With Poisson sampling (each example in a
/// batch with probability q, which is what the accountant assumes) set
/// [`DpSgd::expected_batch`]: the sum is divided by the expected size `q · N`, as Opacus
/// does, and an empty batch is allowed (its step is noise alone).
///
/// Per-example gradients come from one backward pass per example (Opacus vectorises them
/// with hooks); the result is exact and works for any model candle can differentiate.
#[derive(Debug)]
pub struct DpSgd {
    /// Per-example clipping norm C.
    pub clip: f64,
    /// Noise multiplier σ (the accountant's).
    pub noise_multiplier: f64,
    /// For Poisson-sampled batches: the expected batch size `q · N` to divide by.
    pub expected_batch: Option<f64>,
    noise: SecureGaussian,
}

/// What one DP-SGD step saw.
#[derive(Debug, Clone)]
pub struct DpSgdStep {
    /// The noised mean gradient, by parameter name.
    pub gradient: Params,
    /// Examples whose gradient norm exceeded the clip.
    pub clipped: usize,
    /// Mean per-example gradient norm before clipping.
    pub mean_norm: f64,
}

impl DpSgd {
    /// Checks the settings.
    pub fn new(clip: f64, noise_multiplier: f64) -> Result<Self> {
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
        Ok(DpSgd {
            clip,
            noise_multiplier,
            expected_batch: None,
            noise: SecureGaussian::new(),
        })
    }

    /// Divides by `expected` (`q · N`) instead of the drawn batch's size, for Poisson
    /// sampling.
    pub fn poisson(mut self, expected: f64) -> Result<Self> {
        if !(expected.is_finite() && expected > 0.0) {
            return Err(Error::config(
                "expected_batch",
                format!("{expected}: must be finite and positive"),
            ));
        }
        self.expected_batch = Some(expected);
        Ok(self)
    }

    /// A Poisson sample of `0..n`: each index kept with probability `q`, independently, drawn
    /// from the same OS-seeded secure generator as the noise. Amplification by sampling (the
    /// accountant's rate `q`) assumes nobody can predict the sample, so it must not come from
    /// a seeded, reproducible stream.
    pub fn poisson_sample(&mut self, n: usize, q: f64) -> Result<Vec<usize>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(Error::config(
                "q",
                format!("{q}: a sampling rate is in [0, 1]"),
            ));
        }
        Ok((0..n).filter(|_| self.noise.uniform() < q).collect())
    }

    /// The private gradient of a batch of `batch` examples at `params` (candle `Var`s);
    /// `loss_of(i)` is example i's loss, a scalar built from `params`.
    pub fn gradient(
        &mut self,
        params: &Params,
        batch: usize,
        mut loss_of: impl FnMut(usize) -> Result<Tensor>,
    ) -> Result<DpSgdStep> {
        let divide_by = match self.expected_batch {
            Some(e) => e,
            None if batch > 0 => batch as f64,
            None => return Err(Error::config("batch", "an empty batch")),
        };
        let mut sum: Vec<Vec<f64>> = params
            .iter()
            .map(|(_, t)| vec![0.0; t.elem_count()])
            .collect();
        let (mut clipped, mut norms) = (0usize, 0f64);
        for i in 0..batch {
            let loss = loss_of(i)?;
            let store = loss.backward()?;
            let mut grads = Vec::with_capacity(params.len());
            for (name, t) in params.iter() {
                // A parameter the loss does not reach has no entry; that is a zero gradient
                // only if the parameter is a Var at all.
                let g = match store.get(t) {
                    Some(g) => g.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                    None if t.is_variable() => vec![0.0; t.elem_count()],
                    None => {
                        return Err(Error::config(
                            "params",
                            format!("`{name}` is not a candle Var: it would get no gradient"),
                        ))
                    }
                };
                grads.push(g);
            }
            let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
            if !norm.is_finite() {
                return Err(Error::config(
                    "loss",
                    format!("example {i} of the batch has a non-finite gradient"),
                ));
            }
            norms += norm;
            let factor = if norm > self.clip {
                clipped += 1;
                self.clip / norm
            } else {
                1.0
            };
            for (s, g) in sum.iter_mut().zip(&grads) {
                for (s, g) in s.iter_mut().zip(g) {
                    *s += factor * g;
                }
            }
        }
        let std = self.noise_multiplier * self.clip;
        let mut gradient = Params::new();
        for ((name, t), mut s) in params.iter().zip(sum) {
            self.noise.perturb(&mut s, std);
            for v in &mut s {
                *v /= divide_by;
            }
            gradient.insert(
                name.to_string(),
                Tensor::from_vec(s, t.dims(), t.device())?.to_dtype(t.dtype())?,
            );
        }
        Ok(DpSgdStep {
            gradient,
            clipped,
            mean_norm: norms / batch.max(1) as f64,
        })
    }
}
