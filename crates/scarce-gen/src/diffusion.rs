//! A denoising diffusion model: a [`UNet`] and a [`NoiseSchedule`] together, its training loss
//! (with label dropout for classifier-free guidance) and sampling with DDPM or DDIM.

use crate::schedule::{BetaSchedule, NoiseSchedule, Prediction, Spacing};
use crate::scheduler::{Ddim, Ddpm, SamplerConfig};
use crate::train::{Generative, Update};
use crate::unet::{UNet, UNetConfig};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use scarce_core::{Params, Stream};

/// Everything that defines a diffusion model (saved in its checkpoints).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiffusionConfig {
    /// The denoiser.
    pub unet: UNetConfig,
    /// The β schedule.
    pub schedule: BetaSchedule,
    /// Training timesteps `T`.
    pub train_timesteps: usize,
    /// What the UNet predicts.
    pub prediction: Prediction,
    /// Probability of dropping the class label during training (classifier-free guidance);
    /// must be 0 for an unconditional UNet.
    pub p_uncond: f64,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        DiffusionConfig {
            unet: UNetConfig::default(),
            schedule: BetaSchedule::Linear {
                start: 1e-4,
                end: 0.02,
            },
            train_timesteps: 1000,
            prediction: Prediction::Epsilon,
            p_uncond: 0.0,
        }
    }
}

/// How to sample.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Sampling {
    /// Ancestral DDPM over `steps` inference steps (`None`: all `T`).
    Ddpm {
        /// Inference steps.
        steps: Option<usize>,
    },
    /// DDIM over `steps` with stochasticity `eta`.
    Ddim {
        /// Inference steps.
        steps: usize,
        /// η (0: deterministic).
        eta: f64,
    },
}

/// A UNet and its noise schedule.
#[derive(Debug, Clone)]
pub struct Diffusion {
    /// The settings.
    pub config: DiffusionConfig,
    /// The denoiser.
    pub unet: UNet,
    /// The noise schedule.
    pub schedule: NoiseSchedule,
}

impl Diffusion {
    /// Checks the config and builds the model description.
    pub fn new(config: DiffusionConfig) -> Result<Self> {
        let unet = UNet::new(config.unet.clone())?;
        let schedule = NoiseSchedule::new(config.schedule, config.train_timesteps)?;
        if !(0.0..1.0).contains(&config.p_uncond) {
            return Err(Error::config(
                "p_uncond",
                format!("{}: need 0 <= p < 1", config.p_uncond),
            ));
        }
        if config.p_uncond > 0.0 && config.unet.num_classes.is_none() {
            return Err(Error::config(
                "p_uncond",
                "label dropout needs a class-conditional UNet (num_classes is None)",
            ));
        }
        Ok(Diffusion {
            config,
            unet,
            schedule,
        })
    }

    /// Fresh UNet weights.
    pub fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        self.unet.init(rng, device)
    }

    /// The denoising loss on a batch `x0` (in the model's data range, e.g. `[-1, 1]`):
    /// `t` uniform on `0..T`, `ε` standard normal, labels dropped with `p_uncond`, MSE of the
    /// prediction against its target. All draws come from `rng`.
    pub fn loss(
        &self,
        p: &Params,
        x0: &Tensor,
        classes: Option<&[usize]>,
        rng: &Stream,
    ) -> Result<Tensor> {
        let b = x0.dim(0)?;
        let big_t = self.schedule.len() as u64;
        let t: Vec<usize> = (0..b as u64)
            .map(|i| rng.child("t").below(i, big_t) as usize)
            .collect();
        let noise =
            rng.child("noise")
                .normal_tensor(x0.shape(), 0.0, 1.0, x0.dtype(), x0.device())?;
        let xt = self.schedule.add_noise(x0, &noise, &t)?;
        let target = self
            .schedule
            .target(self.config.prediction, x0, &noise, &t)?;
        let dropped: Option<Vec<usize>> = match (classes, self.config.unet.num_classes) {
            (Some(c), Some(n)) => Some(
                c.iter()
                    .enumerate()
                    .map(|(i, &c)| {
                        if rng.child("uncond").uniform(i as u64) < self.config.p_uncond {
                            n
                        } else {
                            c
                        }
                    })
                    .collect(),
            ),
            _ => classes.map(<[usize]>::to_vec),
        };
        let tf: Vec<f64> = t.iter().map(|&t| t as f64).collect();
        let pred = self.unet.forward(p, &xt, &tf, dropped.as_deref())?;
        Ok((pred - target)?.sqr()?.mean_all()?)
    }

    /// Draws `classes.len()` samples (or `n` unconditional ones when `classes` is `None`) of
    /// spatial `size`, starting from noise drawn from `rng`. `guidance` `w` applies
    /// classifier-free guidance (`w = 1`: plain conditional); it needs class labels and a
    /// class-conditional model. Returns `[n, C, …size]` in the data range.
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        p: &Params,
        n: usize,
        size: &[usize],
        classes: Option<&[usize]>,
        guidance: Option<f64>,
        sampling: Sampling,
        rng: &Stream,
        device: &Device,
    ) -> Result<Tensor> {
        if let Some(c) = classes {
            if c.len() != n {
                return Err(Error::config(
                    "classes",
                    format!("{} labels for {n} samples", c.len()),
                ));
            }
        }
        if guidance.is_some() && classes.is_none() {
            return Err(Error::config("guidance", "guidance needs class labels"));
        }
        let mut shape = vec![n, self.config.unet.in_channels];
        shape.extend_from_slice(size);
        self.unet.check_input(&shape)?;
        let cfg = |steps| SamplerConfig {
            prediction: self.config.prediction,
            clip_sample: Some(1.0),
            num_inference_steps: steps,
            spacing: Spacing::Leading,
            steps_offset: 0,
        };
        enum S {
            P(Ddpm),
            I(Ddim),
        }
        let sampler = match sampling {
            Sampling::Ddpm { steps } => S::P(Ddpm::new(self.schedule.clone(), cfg(steps))?),
            Sampling::Ddim { steps, eta } => {
                S::I(Ddim::new(self.schedule.clone(), cfg(Some(steps)), eta)?)
            }
        };
        let ts = match &sampler {
            S::P(s) => s.timesteps()?,
            S::I(s) => s.timesteps()?,
        };
        let mut x = rng
            .child("x_T")
            .normal_tensor(shape.clone(), 0.0, 1.0, DType::F32, device)?;
        for (k, &t) in ts.iter().enumerate() {
            let tf = vec![t as f64; n];
            let out = match (guidance, classes) {
                (Some(w), Some(c)) => self.unet.forward_guided(p, &x, &tf, c, w)?,
                _ => self.unet.forward(p, &x, &tf, classes)?,
            };
            // Draw noise only for steps that add it (not DDPM's last, not DDIM with η = 0).
            let needs_noise = match &sampler {
                S::P(_) => t > 0,
                S::I(s) => s.eta > 0.0,
            };
            let noise = if needs_noise {
                Some(rng.child("step").at(k as u64).normal_tensor(
                    shape.clone(),
                    0.0,
                    1.0,
                    DType::F32,
                    device,
                )?)
            } else {
                None
            };
            x = match &sampler {
                S::P(s) => s.step(&out, t, &x, noise.as_ref())?,
                S::I(s) => s.step(&out, t, &x, noise.as_ref())?,
            }
            .prev_sample;
        }
        Ok(x.clamp(-1.0, 1.0)?)
    }
}

impl Generative for Diffusion {
    fn kind(&self) -> &'static str {
        "scarce-gen/diffusion"
    }
    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
    fn groups(&self) -> &'static [&'static str] {
        &["model"]
    }
    fn init(&self, rng: &Stream, device: &Device) -> Result<Vec<Params>> {
        Ok(vec![self.unet.init(rng, device)?])
    }
    fn num_classes(&self) -> Option<usize> {
        self.config.unet.num_classes
    }
    fn check_batch(&self, dims: &[usize]) -> Result<()> {
        self.unet.check_input(dims)
    }
    fn step(
        &self,
        u: &mut Update<'_>,
        x: &Tensor,
        y: Option<&[usize]>,
        rng: &Stream,
    ) -> Result<()> {
        let loss = self.loss(u.params(0), x, y, rng)?;
        u.apply(0, "denoising", &loss)
    }
    fn sample(
        &self,
        p: &Params,
        n: usize,
        size: &[usize],
        classes: Option<&[usize]>,
        rng: &Stream,
        device: &Device,
    ) -> Result<Tensor> {
        Diffusion::sample(
            self,
            p,
            n,
            size,
            classes,
            None,
            Sampling::Ddim {
                steps: 50,
                eta: 0.0,
            },
            rng,
            device,
        )
    }
}

impl Diffusion {
    /// A diffusion model and its sampling (EMA) weights from a checkpoint written by
    /// [`crate::train::train`].
    pub fn load(path: &std::path::Path, device: &Device) -> Result<(Self, Params)> {
        let (cfg, p) = crate::train::load_sampling_weights(path, "scarce-gen/diffusion", device)?;
        let cfg = serde_json::from_value(cfg).map_err(|e| Error::Checkpoint {
            path: path.into(),
            reason: format!("model config: {e}"),
        })?;
        Ok((Diffusion::new(cfg)?, p))
    }
}
