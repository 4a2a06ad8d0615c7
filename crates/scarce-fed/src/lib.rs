#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod accountant;
pub mod aggregate;
pub mod error;
pub mod flat;
pub mod secagg;
pub mod shamir;
pub mod strategy;
pub mod weights;

pub use error::{Error, Result};
pub use strategy::{
    Adaptive, Bulyan, DpFixedClipping, FedAvg, FedAvgM, FedMedian, FedOpt, FedTrimmedAvg, Krum,
    Strategy,
};
pub use weights::{screen, ClientUpdate, Weights};
