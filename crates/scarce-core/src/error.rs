//! The one error type of `scarce-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `scarce-core`. Messages name the parameter, tensor or
/// file at fault; match on the variant, not on the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from candle's tensor library.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A parameter of an op, model or optimiser is out of its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name, as spelled in the API.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor had a shape the operation cannot take.
    #[error("shape mismatch for `{name}`: expected {expected}, got {got:?}")]
    Shape {
        /// The argument or parameter name.
        name: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },

    /// A named parameter or buffer was asked for and is not there.
    #[error("missing tensor `{name}` in {what}")]
    Missing {
        /// The tensor's name.
        name: String,
        /// Where it was looked up (params, buffers, checkpoint file, ...).
        what: String,
    },

    /// Second-order gradients were required but candle would compute them partially.
    #[error("second-order gradients are not live on this thread: {0}")]
    SecondOrderOff(String),

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

    /// Shorthand for [`Error::Shape`].
    pub fn shape(name: impl Into<String>, expected: impl Into<String>, got: &[usize]) -> Self {
        Error::Shape {
            name: name.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }
}
