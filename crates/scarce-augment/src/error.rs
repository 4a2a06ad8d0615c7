//! The error type of `scarce-augment`.

/// Everything that can go wrong. Messages name the parameter or the array at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is out of range (a negative sigma, a probability outside [0, 1], …).
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// The parameter, as spelled in the API.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// Arrays that must agree in shape do not.
    #[error("shape mismatch for `{name}`: expected {expected}, got {got:?}")]
    Shape {
        /// Which array.
        name: String,
        /// What was expected.
        expected: String,
        /// What was given.
        got: Vec<usize>,
    },

    /// From the tensor side (candle, through scarce-core's error), with its source kept.
    #[cfg(feature = "tensor")]
    #[error("tensor: {0}")]
    Tensor(#[from] scarce_core::Error),
}

impl Error {
    /// Shorthand for [`Error::Param`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Param {
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

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
