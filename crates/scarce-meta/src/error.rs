//! The error type of `scarce-meta`.

use std::path::PathBuf;

/// Everything that can go wrong in meta-learning. Messages name the parameter, task or file
/// at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From scarce-core (ops, models, checkpoints, the second-order guard).
    #[error(transparent)]
    Core(#[from] scarce_core::Error),

    /// From candle's tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// From the episode layer.
    #[error(transparent)]
    Episodes(#[from] scarce_episodes::Error),

    /// A configuration value is out of range or contradicts another.
    #[error("invalid configuration `{name}`: {reason}")]
    Config {
        /// The field, as spelled in the API.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A task cannot be learnt as given (e.g. a query class with no support example).
    #[error("task {task}: {reason}")]
    Task {
        /// The task's index in its meta-batch or set.
        task: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A meta-gradient (or the loss behind it) is NaN or infinite. Training stopped before
    /// applying it.
    #[error(
        "non-finite meta-gradient at meta-step {step}, task {task} of the meta-batch ({what}); \
         nothing was applied{}",
        match checkpoint { Some(p) => format!("; the last good checkpoint is {}", p.display()), None => String::new() }
    )]
    NonFinite {
        /// The meta-step (0-based) being computed.
        step: usize,
        /// The task within the meta-batch.
        task: usize,
        /// Which quantity was not finite.
        what: String,
        /// The last checkpoint written before it, if any.
        checkpoint: Option<PathBuf>,
    },
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub fn config(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
