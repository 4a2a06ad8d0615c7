#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod error;
pub mod schedule;
pub mod scheduler;

pub use error::{Error, Result};
pub use schedule::{BetaSchedule, NoiseSchedule, Prediction, Spacing};
pub use scheduler::{Ddim, Ddpm, SamplerConfig, StepOutput};
