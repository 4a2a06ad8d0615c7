//! The error type of `scarce-fed`.

/// Everything that can go wrong in aggregation and accounting. Messages name the client,
/// layer or parameter at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From scarce-core (parameter sets, tensors).
    #[error(transparent)]
    Core(#[from] scarce_core::Error),

    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A setting is out of range or does not fit the round (e.g. Bulyan needs n ≥ 4f + 3).
    #[error("invalid configuration `{name}`: {reason}")]
    Config {
        /// The setting, as spelled in the API.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// A client's update does not match the model (layer count, shapes) or is not finite.
    #[error("client {client}: {reason}")]
    Client {
        /// Index of the client in the round's results.
        client: usize,
        /// What is wrong.
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
