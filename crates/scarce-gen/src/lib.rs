#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod audit;
mod cond;
pub mod diffusion;
pub mod error;
pub mod gan;
pub mod grid;
pub mod schedule;
pub mod scheduler;
pub mod synthetic;
pub mod train;
pub mod unet;
pub mod vae;

pub use diffusion::{Diffusion, DiffusionConfig, Sampling};
pub use error::{Error, Result};
pub use gan::{Gan, GanConfig};
pub use schedule::{BetaSchedule, NoiseSchedule, Prediction, Spacing};
pub use scheduler::{Ddim, Ddpm, SamplerConfig, StepOutput};
pub use synthetic::{Provenance, SyntheticDataset};
pub use train::{train, Ema, Generative, ImageSet, TrainConfig, Trained};
pub use unet::{UNet, UNetConfig};
pub use vae::{Vae, VaeConfig};
