#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod error;
pub mod field;
pub mod filter;
pub mod interp;
pub mod kspace;
#[cfg(feature = "tensor")]
pub mod mix;
pub mod ops;
pub mod rng;
pub mod sample;
#[cfg(feature = "tensor")]
pub mod tensor;
pub mod transforms;
pub mod views;
pub mod warp;

pub use error::{Error, Result};
pub use interp::{Mode, Order};
pub use ops::{invert, replay, Op};
pub use rng::Rand;
pub use sample::{Image, Sample};
pub use transforms::{augment, augment_batch, Transform};
