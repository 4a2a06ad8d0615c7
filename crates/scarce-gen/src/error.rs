//! The error type of `scarce-gen`.

use std::path::PathBuf;

/// Everything that can go wrong when building, training, sampling or auditing a generator.
/// Messages name the parameter, file or training step at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From scarce-core (ops, checkpoints, optimisers).
    #[error(transparent)]
    Core(#[from] scarce_core::Error),

    /// From candle's tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// From scarce-eval (Fréchet distance).
    #[error(transparent)]
    Eval(#[from] scarce_eval::Error),

    /// From scarce-episodes (mixing synthetic data into a data set).
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

    /// A loss or gradient became NaN or infinite. Nothing was applied at that step.
    #[error(
        "training diverged at step {step}: {what} is not finite; nothing was applied{}",
        match checkpoint { Some(p) => format!("; the last good checkpoint is {}", p.display()), None => "; no checkpoint was written yet".to_string() }
    )]
    NonFinite {
        /// The 0-based training step.
        step: usize,
        /// Which quantity.
        what: String,
        /// The last checkpoint written before it, if any.
        checkpoint: Option<PathBuf>,
    },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// A checkpoint does not belong to this run (other config or layout).
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
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
