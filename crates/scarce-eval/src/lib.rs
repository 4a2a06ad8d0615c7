//! # scarce-eval
//!
//! The numbers a few-shot or medical classifier is judged by, on plain slices (no tensor
//! library): mean accuracy with a 95% confidence interval over test episodes; confusion
//! matrix, per-class sensitivity / specificity and balanced accuracy; AUROC (binary,
//! one-vs-rest, one-vs-one); expected calibration error and temperature scaling; the
//! Fréchet distance between feature sets (FID's formula); reliability diagrams, charts
//! and figures as SVG.
//! AUROC, the confusion matrix, recall and balanced accuracy are checked against
//! scikit-learn's values and the Fréchet distance against scipy's (`shared/fixtures/metrics`);
//! accuracy and specificity against their definitions evaluated on scikit-learn's matrix;
//! ECE (Guo et al. 2017) and temperature scaling against hand-worked closed forms.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod calibration;
pub mod classification;
pub mod frechet;
pub mod plot;
pub mod roc;
pub mod summary;

pub use calibration::{expected_calibration_error, fit_temperature, ReliabilityBin};
pub use classification::ConfusionMatrix;
pub use frechet::frechet_distance;
pub use roc::{auroc, auroc_ovo, auroc_ovr, OvrAuc};
pub use summary::{mean_ci95, MeanCi};

/// Errors: inputs that cannot give a meaningful number, named.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An argument is unusable (empty, mismatched lengths, out-of-range label, NaN).
    #[error("invalid `{name}`: {reason}")]
    Invalid {
        /// The argument.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        name,
        reason: reason.into(),
    }
}

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
