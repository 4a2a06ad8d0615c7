//! The one error type of `scarce-episodes`.

use std::path::PathBuf;

/// Everything that can go wrong while building datasets, sampling episodes or loading them.
/// Messages name the file, row, class or parameter at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `scarce-core` (tensors, devices).
    #[error(transparent)]
    Core(#[from] scarce_core::Error),

    /// An error from candle while building tensors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A parameter is out of its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name, as spelled in the API.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A class has fewer samples than an episode needs from it.
    #[error(
        "class {class} ({name}) has {count} samples but an episode needs {needed} \
         ({what}); ask for sampling with replacement or choose smaller K/Q"
    )]
    ClassTooSmall {
        /// The class id in the dataset.
        class: usize,
        /// The class name.
        name: String,
        /// How many samples it has (that are usable).
        count: usize,
        /// How many were needed.
        needed: usize,
        /// What the samples were needed for.
        what: String,
    },

    /// The dataset has no samples (or no classes) where some are needed.
    #[error("dataset `{0}` is empty")]
    Empty(String),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file's contents are not what was expected.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A row of a CSV manifest is wrong (missing file, bad label, unreadable image).
    #[error("{manifest}, row {row}: {reason}")]
    ManifestRow {
        /// The manifest file.
        manifest: PathBuf,
        /// The 1-based data row (the header is row 0).
        row: usize,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidParam`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParam {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Format`].
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
