//! Reverse-process steps: DDPM (Ho et al. 2020, eq. 7, `fixed_small` variance) and DDIM
//! (Song et al. 2021, with η), as diffusers' `DDPMScheduler.step` / `DDIMScheduler.step`.
//!
//! A step is a pure function of the model output, the sample, the timestep and — when it
//! adds noise — the standard-normal `noise` the caller passes in, so sampling reproduces
//! from a seed on any device and thread count.

use crate::schedule::{check_float, NoiseSchedule, Prediction, Spacing};
use crate::{Error, Result};
use candle_core::Tensor;

/// What one step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// `x_{t_prev}`.
    pub prev_sample: Tensor,
    /// The model's estimate of `x₀` (after clipping, if on).
    pub pred_original_sample: Tensor,
}

/// Settings shared by both samplers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplerConfig {
    /// What the model predicts.
    pub prediction: Prediction,
    /// Clamp the predicted `x₀` to `[-r, r]` (diffusers' `clip_sample` with
    /// `clip_sample_range = r`); `None` leaves it.
    pub clip_sample: Option<f64>,
    /// Inference steps; `None` = every training step (DDPM only).
    pub num_inference_steps: Option<usize>,
    /// How inference steps are spread.
    pub spacing: Spacing,
    /// Added to every inference timestep (`steps_offset`).
    pub steps_offset: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            prediction: Prediction::Epsilon,
            clip_sample: None,
            num_inference_steps: None,
            spacing: Spacing::Leading,
            steps_offset: 0,
        }
    }
}

/// Predicted `x₀` and `ε` from a model output.
fn predict(
    prediction: Prediction,
    output: &Tensor,
    sample: &Tensor,
    a_t: f64,
) -> Result<(Tensor, Tensor)> {
    let b_t = 1.0 - a_t;
    Ok(match prediction {
        Prediction::Epsilon => (
            ((sample - (output * b_t.sqrt())?)? / a_t.sqrt())?,
            output.clone(),
        ),
        Prediction::V => (
            ((sample * a_t.sqrt())? - (output * b_t.sqrt())?)?,
            ((output * a_t.sqrt())? + (sample * b_t.sqrt())?)?,
        ),
    })
}

fn clip(x0: Tensor, range: Option<f64>) -> Result<Tensor> {
    Ok(match range {
        Some(r) => x0.clamp(-r, r)?,
        None => x0,
    })
}

fn check_step(output: &Tensor, sample: &Tensor, noise: Option<&Tensor>) -> Result<()> {
    check_float("sample", sample)?;
    if output.dims() != sample.dims() || noise.is_some_and(|n| n.dims() != sample.dims()) {
        return Err(Error::config(
            "model_output",
            format!(
                "shape {:?} (noise {:?}) differs from the sample's {:?}",
                output.dims(),
                noise.map(|n| n.dims().to_vec()),
                sample.dims()
            ),
        ));
    }
    Ok(())
}

/// The inference timesteps of a sampler config over `schedule`.
fn inference_timesteps(schedule: &NoiseSchedule, cfg: &SamplerConfig) -> Result<Vec<usize>> {
    match cfg.num_inference_steps {
        None => Ok((0..schedule.len()).rev().collect()),
        Some(n) => schedule.timesteps(n, cfg.spacing, cfg.steps_offset),
    }
}

/// DDPM ancestral sampling with the `fixed_small` variance `β̃_t`.
#[derive(Debug, Clone)]
pub struct Ddpm {
    /// The noise schedule.
    pub schedule: NoiseSchedule,
    /// Prediction type, clipping, inference steps.
    pub config: SamplerConfig,
}

impl Ddpm {
    /// A DDPM sampler over `schedule`.
    pub fn new(schedule: NoiseSchedule, config: SamplerConfig) -> Result<Self> {
        inference_timesteps(&schedule, &config)?;
        Ok(Ddpm { schedule, config })
    }

    /// The timesteps a full sampling run visits, descending.
    pub fn timesteps(&self) -> Result<Vec<usize>> {
        inference_timesteps(&self.schedule, &self.config)
    }

    /// The step `t` goes to: `t − 1` over all training steps, else the next inference
    /// timestep (diffusers' `previous_timestep`); −1 after the last. A `t` that is not an
    /// inference timestep is an error.
    pub fn prev_timestep(&self, t: usize) -> Result<i64> {
        if self.config.num_inference_steps.is_none() {
            return Ok(t as i64 - 1);
        }
        let ts = self.timesteps()?;
        let i = ts.iter().position(|&s| s == t).ok_or_else(|| {
            Error::config(
                "timestep",
                format!("{t} is not one of the inference timesteps"),
            )
        })?;
        Ok(ts.get(i + 1).map_or(-1, |&p| p as i64))
    }

    /// The `fixed_small` variance `max(b_p/b_t · (1 − a_t/a_p), 1e-20)` used at `t`; 0 at
    /// `t = 0`.
    pub fn variance(&self, t: usize) -> Result<f64> {
        if t == 0 {
            return Ok(0.0);
        }
        let a_t = self.schedule.alpha_bar(t as i64)?;
        let a_p = self.schedule.alpha_bar(self.prev_timestep(t)?)?;
        let beta = 1.0 - a_t / a_p;
        Ok(((1.0 - a_p) / (1.0 - a_t) * beta).max(1e-20))
    }

    /// One reverse step from `t`. `noise` (standard normal, the sample's shape) is required
    /// for `t > 0` and ignored at `t = 0`.
    pub fn step(
        &self,
        model_output: &Tensor,
        t: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<StepOutput> {
        check_step(model_output, sample, noise)?;
        let a_t = self.schedule.alpha_bar(t as i64)?;
        let a_p = self.schedule.alpha_bar(self.prev_timestep(t)?)?;
        let (b_t, b_p) = (1.0 - a_t, 1.0 - a_p);
        let alpha = a_t / a_p;
        let beta = 1.0 - alpha;
        let (x0, _) = predict(self.config.prediction, model_output, sample, a_t)?;
        let x0 = clip(x0, self.config.clip_sample)?;
        let mean = ((&x0 * (a_p.sqrt() * beta / b_t))? + (sample * (alpha.sqrt() * b_p / b_t))?)?;
        let prev = if t > 0 {
            let noise = noise.ok_or_else(|| {
                Error::config("noise", format!("DDPM step at t = {t} > 0 needs noise"))
            })?;
            (mean + (noise * self.variance(t)?.sqrt())?)?
        } else {
            mean
        };
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
        })
    }
}

/// DDIM sampling with stochasticity `η` (0 = deterministic, 1 = DDPM-like variance).
#[derive(Debug, Clone)]
pub struct Ddim {
    /// The noise schedule.
    pub schedule: NoiseSchedule,
    /// Prediction type, clipping, inference steps (required).
    pub config: SamplerConfig,
    /// `η`.
    pub eta: f64,
}

impl Ddim {
    /// A DDIM sampler; `config.num_inference_steps` must be set and `eta` non-negative.
    pub fn new(schedule: NoiseSchedule, config: SamplerConfig, eta: f64) -> Result<Self> {
        if config.num_inference_steps.is_none() {
            return Err(Error::config(
                "num_inference_steps",
                "DDIM needs a number of inference steps",
            ));
        }
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(Error::config("eta", format!("{eta}: need eta >= 0")));
        }
        inference_timesteps(&schedule, &config)?;
        Ok(Ddim {
            schedule,
            config,
            eta,
        })
    }

    /// The timesteps a sampling run visits, descending.
    pub fn timesteps(&self) -> Result<Vec<usize>> {
        inference_timesteps(&self.schedule, &self.config)
    }

    /// The step `t` goes to: `t − T/n` whatever the spacing, as diffusers computes it;
    /// negative means the end, where `ᾱ = 1` (`set_alpha_to_one`).
    pub fn prev_timestep(&self, t: usize) -> i64 {
        let n = self.config.num_inference_steps.unwrap_or(1).max(1);
        t as i64 - (self.schedule.len() / n) as i64
    }

    /// One DDIM step from `t`. `noise` is required when `η > 0`.
    pub fn step(
        &self,
        model_output: &Tensor,
        t: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<StepOutput> {
        check_step(model_output, sample, noise)?;
        let a_t = self.schedule.alpha_bar(t as i64)?;
        let a_p = self.schedule.alpha_bar(self.prev_timestep(t))?;
        let (b_t, b_p) = (1.0 - a_t, 1.0 - a_p);
        let (x0, eps) = predict(self.config.prediction, model_output, sample, a_t)?;
        // diffusers clips x0 but keeps ε from the unclipped prediction.
        let x0 = clip(x0, self.config.clip_sample)?;
        let var = b_p / b_t * (1.0 - a_t / a_p);
        let std = self.eta * var.sqrt();
        let dir = (eps * (1.0 - a_p - std * std).sqrt())?;
        let mut prev = ((&x0 * a_p.sqrt())? + dir)?;
        if self.eta > 0.0 {
            let noise = noise.ok_or_else(|| {
                Error::config(
                    "noise",
                    format!("DDIM step with eta = {} needs noise", self.eta),
                )
            })?;
            prev = (prev + (noise * std)?)?;
        }
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
        })
    }
}
