#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod error;
pub mod filter;
pub mod interp;

pub use error::{Error, Result};
