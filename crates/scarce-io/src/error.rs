//! The one error type of scarce-io. Every variant names the file it came from.

use std::path::PathBuf;

/// Errors from reading or writing medical images. Match on the variant, not on the text;
/// new variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The bytes are not a DICOM data set the parser can read.
    #[error("{path}: not a readable DICOM file: {reason}")]
    DicomParse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A required attribute is missing.
    #[error("{path}: missing required attribute {name} {tag}")]
    MissingAttribute {
        /// The file.
        path: PathBuf,
        /// Keyword, e.g. `BitsAllocated`.
        name: &'static str,
        /// Tag as `(gggg,eeee)`.
        tag: String,
    },
    /// An attribute holds a value this reader cannot accept.
    #[error("{path}: attribute {name}: {reason}")]
    InvalidAttribute {
        /// The file.
        path: PathBuf,
        /// Keyword of the attribute.
        name: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// The transfer syntax has no decoder in this build.
    #[error("{path}: no decoder for transfer syntax {uid} ({name})")]
    UnsupportedTransferSyntax {
        /// The file.
        path: PathBuf,
        /// The transfer syntax UID.
        uid: String,
        /// Its name, or "unknown".
        name: String,
    },
    /// The transfer syntax's decoder is an optional feature of scarce-io that this build
    /// left out (its C sources are built with CMake).
    #[error(
        "{path}: transfer syntax {uid} ({name}) needs scarce-io's `{feature}` feature \
         (or `all-codecs`; its decoder is built from C sources with CMake)"
    )]
    CodecNotCompiled {
        /// The file.
        path: PathBuf,
        /// The transfer syntax UID.
        uid: String,
        /// Its name.
        name: String,
        /// The cargo feature of scarce-io that enables the decoder.
        feature: &'static str,
    },
    /// A codec failed on the encapsulated pixel data.
    #[error("{path}: decoding {name} ({uid}) failed: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The transfer syntax UID.
        uid: String,
        /// Its name.
        name: String,
        /// What the codec said.
        reason: String,
    },
    /// Fewer bytes than the header declares.
    #[error("{path}: {what} needs {expected} bytes but the file holds {actual}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is short.
        what: String,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The file declares an image larger than it could hold.
    #[error(
        "{path}: declared size {declared} bytes is not justified by {available} bytes of input"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        declared: u64,
        /// Bytes available to justify it.
        available: u64,
    },
    /// A NIfTI / Analyze header is invalid.
    #[error("{path}: invalid NIfTI: {reason}")]
    Nifti {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Slices cannot be assembled into one volume.
    #[error("{path}: cannot assemble series: {reason}")]
    Series {
        /// The folder or DICOMDIR.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A parameter given by the caller is invalid.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
