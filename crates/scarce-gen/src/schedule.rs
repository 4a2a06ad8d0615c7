//! Noise schedules of denoising diffusion: `β_t`, `ᾱ_t = Π(1 − β_s)`, the forward process
//! (`add_noise`), the v-prediction target, and the inference timestep lists.
//!
//! Everything is computed in f64, as diffusers' formulas with a float64 schedule (diffusers
//! itself builds `betas` in float32; see the crate README for what that changes).

use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// How `β_t` grows over the `T` training steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum BetaSchedule {
    /// `linspace(start, end, T)` (Ho et al. 2020: 1e-4 .. 0.02).
    Linear {
        /// `β_0`.
        start: f64,
        /// `β_{T-1}`.
        end: f64,
    },
    /// `linspace(√start, √end, T)²` (latent diffusion's `scaled_linear`).
    ScaledLinear {
        /// `β_0`.
        start: f64,
        /// `β_{T-1}`.
        end: f64,
    },
    /// Nichol & Dhariwal's cosine schedule (`squaredcos_cap_v2`), β capped at 0.999.
    Cosine,
}

impl BetaSchedule {
    /// The schedule by its diffusers name (`linear`, `scaled_linear`, `squaredcos_cap_v2`, or
    /// `cosine`); `start` and `end` are ignored by the cosine schedule.
    pub fn from_name(name: &str, start: f64, end: f64) -> Result<Self> {
        match name {
            "linear" => Ok(BetaSchedule::Linear { start, end }),
            "scaled_linear" => Ok(BetaSchedule::ScaledLinear { start, end }),
            "squaredcos_cap_v2" | "cosine" => Ok(BetaSchedule::Cosine),
            other => Err(Error::config(
                "beta_schedule",
                format!(
                    "unknown schedule `{other}` (known: linear, scaled_linear, squaredcos_cap_v2)"
                ),
            )),
        }
    }
}

/// What the denoiser is trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Prediction {
    /// The noise `ε` (Ho et al.).
    Epsilon,
    /// The velocity `v = √ᾱ ε − √(1−ᾱ) x₀` (Salimans & Ho 2022).
    V,
}

impl Prediction {
    /// By diffusers' name: `epsilon` or `v_prediction`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "epsilon" => Ok(Prediction::Epsilon),
            "v_prediction" | "v" => Ok(Prediction::V),
            other => Err(Error::config(
                "prediction_type",
                format!("unknown `{other}` (known: epsilon, v_prediction)"),
            )),
        }
    }
}

/// How inference timesteps are spread over `0..T` (diffusers' `timestep_spacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Spacing {
    /// `arange(n)·(T/n)`, reversed (DDIM's original choice).
    Leading,
    /// `round(arange(T, 0, −T/n)) − 1`: always includes `T − 1`.
    Trailing,
    /// `round(linspace(0, T−1, n))`, reversed.
    Linspace,
}

impl Spacing {
    /// By diffusers' name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "leading" => Ok(Spacing::Leading),
            "trailing" => Ok(Spacing::Trailing),
            "linspace" => Ok(Spacing::Linspace),
            other => Err(Error::config(
                "timestep_spacing",
                format!("unknown `{other}` (known: leading, trailing, linspace)"),
            )),
        }
    }
}

/// A noise schedule of `T` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    /// `β_t`, `t = 0..T`.
    pub betas: Vec<f64>,
    /// `ᾱ_t = Π_{s ≤ t}(1 − β_s)`.
    pub alphas_cumprod: Vec<f64>,
}

/// numpy's `linspace`: `start + i·step`, with the last value exactly `end`.
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
    v[n - 1] = end;
    v
}

impl NoiseSchedule {
    /// The schedule of `kind` over `steps` training timesteps.
    pub fn new(kind: BetaSchedule, steps: usize) -> Result<Self> {
        if steps < 2 {
            return Err(Error::config(
                "num_train_timesteps",
                format!("{steps}: need at least 2"),
            ));
        }
        let check = |start: f64, end: f64| {
            if !(start > 0.0 && end >= start && end < 1.0) {
                return Err(Error::config(
                    "beta_start/beta_end",
                    format!("{start}..{end}: need 0 < start <= end < 1"),
                ));
            }
            Ok(())
        };
        let betas = match kind {
            BetaSchedule::Linear { start, end } => {
                check(start, end)?;
                linspace(start, end, steps)
            }
            BetaSchedule::ScaledLinear { start, end } => {
                check(start, end)?;
                linspace(start.sqrt(), end.sqrt(), steps)
                    .into_iter()
                    .map(|b| b * b)
                    .collect()
            }
            BetaSchedule::Cosine => {
                let f = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..steps)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
                        (1.0 - f(t2) / f(t1)).min(0.999)
                    })
                    .collect()
            }
        };
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        Ok(NoiseSchedule {
            betas,
            alphas_cumprod,
        })
    }

    /// `T`, the number of training timesteps.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Never true: a schedule has at least two steps.
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// `ᾱ_t`, with `ᾱ = 1` for `t < 0` (the step before the first).
    pub fn alpha_bar(&self, t: i64) -> Result<f64> {
        if t < 0 {
            return Ok(1.0);
        }
        self.alphas_cumprod
            .get(t as usize)
            .copied()
            .ok_or_else(|| Error::config("timestep", format!("{t} outside 0..{}", self.len())))
    }

    /// Per-sample coefficients as a `[B, 1, 1, …]` tensor broadcastable against `like`.
    fn coef(&self, t: &[usize], like: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor> {
        if like.rank() < 1 || like.dim(0)? != t.len() {
            return Err(Error::config(
                "timesteps",
                format!(
                    "{} timesteps for a batch of shape {:?}",
                    t.len(),
                    like.dims()
                ),
            ));
        }
        let v = t
            .iter()
            .map(|&t| self.alpha_bar(t as i64).map(&f))
            .collect::<Result<Vec<f64>>>()?;
        let mut shape = vec![1usize; like.rank()];
        shape[0] = t.len();
        Ok(Tensor::from_vec(v, shape, like.device())?.to_dtype(like.dtype())?)
    }

    /// The forward process: `x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε`, one `t` per batch element.
    pub fn add_noise(&self, x0: &Tensor, noise: &Tensor, t: &[usize]) -> Result<Tensor> {
        let a = self.coef(t, x0, f64::sqrt)?;
        let b = self.coef(t, x0, |a| (1.0 - a).sqrt())?;
        Ok((x0.broadcast_mul(&a)? + noise.broadcast_mul(&b)?)?)
    }

    /// The v-prediction target `v = √ᾱ_t ε − √(1−ᾱ_t) x₀` (diffusers' `get_velocity`).
    pub fn velocity(&self, x0: &Tensor, noise: &Tensor, t: &[usize]) -> Result<Tensor> {
        let a = self.coef(t, x0, f64::sqrt)?;
        let b = self.coef(t, x0, |a| (1.0 - a).sqrt())?;
        Ok((noise.broadcast_mul(&a)? - x0.broadcast_mul(&b)?)?)
    }

    /// The training target of `prediction` for `x₀` noised with `noise` at `t`.
    pub fn target(
        &self,
        prediction: Prediction,
        x0: &Tensor,
        noise: &Tensor,
        t: &[usize],
    ) -> Result<Tensor> {
        match prediction {
            Prediction::Epsilon => Ok(noise.clone()),
            Prediction::V => self.velocity(x0, noise, t),
        }
    }

    /// `n` inference timesteps in descending order (diffusers' `set_timesteps`), shifted by
    /// `offset` (`steps_offset`).
    pub fn timesteps(&self, n: usize, spacing: Spacing, offset: usize) -> Result<Vec<usize>> {
        let big_t = self.len();
        if n == 0 || n > big_t {
            return Err(Error::config(
                "num_inference_steps",
                format!("{n}: need 1..={big_t} (the training timesteps)"),
            ));
        }
        let ts: Vec<i64> = match spacing {
            Spacing::Leading => {
                let r = big_t / n;
                (0..n)
                    .rev()
                    .map(|i| (i * r + offset) as i64)
                    .collect::<Vec<_>>()
            }
            Spacing::Trailing => {
                // np.arange(T, 0, -T/n): numpy's length ceil((stop - start)/step) and values
                // start + i·step, so a rounding in T/n gives numpy's count, not a guess.
                let step = -(big_t as f64 / n as f64);
                let len = ((0.0 - big_t as f64) / step).ceil() as usize;
                (0..len)
                    .map(|i| {
                        (big_t as f64 + i as f64 * step).round_ties_even() as i64 - 1
                            + offset as i64
                    })
                    .collect()
            }
            Spacing::Linspace => linspace(0.0, (big_t - 1) as f64, n)
                .into_iter()
                .rev()
                .map(|v| v.round_ties_even() as i64 + offset as i64)
                .collect(),
        };
        ts.into_iter()
            .map(|t| {
                usize::try_from(t)
                    .ok()
                    .filter(|&t| t < big_t)
                    .ok_or_else(|| {
                        Error::config(
                            "steps_offset",
                            format!("{offset} moves timestep {t} outside 0..{big_t}"),
                        )
                    })
            })
            .collect()
    }
}

/// Sinusoidal embedding of timesteps (as in MONAI / diffusers UNets): `[cos(t·f), sin(t·f)]`
/// with `f_i = 10000^(−i/half)`, shape `[B, dim]`.
pub fn timestep_embedding(t: &[f64], dim: usize, like: &Tensor) -> Result<Tensor> {
    if dim < 2 || !dim.is_multiple_of(2) {
        return Err(Error::config(
            "time embedding dim",
            format!("{dim}: need an even dimension of at least 2"),
        ));
    }
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| (-(10000f64.ln()) * i as f64 / half as f64).exp())
        .collect();
    let mut v = Vec::with_capacity(t.len() * dim);
    for &t in t {
        v.extend(freqs.iter().map(|f| (t * f).cos()));
        v.extend(freqs.iter().map(|f| (t * f).sin()));
    }
    Ok(Tensor::from_vec(v, (t.len(), dim), like.device())?.to_dtype(like.dtype())?)
}

/// Checks that `x` is floating point (schedules scale samples).
pub(crate) fn check_float(name: &str, x: &Tensor) -> Result<()> {
    match x.dtype() {
        DType::F16 | DType::BF16 | DType::F32 | DType::F64 => Ok(()),
        d => Err(Error::config(
            name,
            format!("dtype {d:?} is not floating point"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestep lists for settings beside the fixtures' T = 1000, from numpy 2
    /// (`np.round(np.arange(T, 0, -T/n)) - 1` and `np.linspace(0, T-1, n).round()[::-1]`).
    #[test]
    fn trailing_and_linspace_match_numpy_for_other_t() {
        let cases: [(usize, usize, &[usize], &[usize]); 3] = [
            (
                500,
                7,
                &[499, 428, 356, 285, 213, 142, 70],
                &[499, 416, 333, 250, 166, 83, 0],
            ),
            (1000, 3, &[999, 666, 332], &[999, 500, 0]),
            (
                400,
                20,
                &[
                    399, 379, 359, 339, 319, 299, 279, 259, 239, 219, 199, 179, 159, 139, 119, 99,
                    79, 59, 39, 19,
                ],
                &[
                    399, 378, 357, 336, 315, 294, 273, 252, 231, 210, 189, 168, 147, 126, 105, 84,
                    63, 42, 21, 0,
                ],
            ),
        ];
        for (t, n, trailing, lin) in cases {
            let s = NoiseSchedule::new(
                BetaSchedule::Linear {
                    start: 1e-4,
                    end: 0.02,
                },
                t,
            )
            .unwrap();
            assert_eq!(
                s.timesteps(n, Spacing::Trailing, 0).unwrap(),
                trailing,
                "T={t} n={n}"
            );
            assert_eq!(
                s.timesteps(n, Spacing::Linspace, 0).unwrap(),
                lin,
                "T={t} n={n}"
            );
        }
    }
}
