#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod error;
pub mod head;
pub mod inner;
pub mod learner;
pub mod sinusoid;
pub mod task;
pub mod trainer;

pub use error::{Error, Result};
pub use head::WithHead;
pub use inner::{adapt, Adapted, InnerLoop, InnerLr, Order};
pub use learner::{Algorithm, MamlPlusPlus, MetaGradient, MetaLearner, MetaState, Score};
pub use sinusoid::Sinusoid;
pub use task::{EpisodeTasks, Loss, Task, TaskSource};
pub use trainer::{meta_train, BatchNorm, MetaOutcome, MetaProgress, MetaTrainConfig, Outer};
