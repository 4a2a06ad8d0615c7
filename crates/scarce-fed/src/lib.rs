#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod accountant;
pub mod aggregate;
pub mod dp;
pub mod error;
pub mod fedprox;
pub mod flat;
pub mod partition;
pub mod secagg;
pub mod server;
pub mod shamir;
pub mod simulation;
pub mod strategy;
pub mod weights;

pub use dp::{AdaptiveClip, ClipNorm, DpFedAvg, DpSgd};
pub use error::{Error, Result};
pub use strategy::{
    Adaptive, Bulyan, FedAvg, FedAvgM, FedMedian, FedOpt, FedTrimmedAvg, Krum, Strategy,
    StrategyState,
};
pub use weights::{screen, ClientUpdate, Weights};
