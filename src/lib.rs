//! # scarce
//!
//! Machine learning where medical data is scarce. This umbrella crate only re-exports the
//! `scarce-*` crates, each behind a feature of the same name, so an application can depend
//! on `scarce` and pick what it uses, or on the member crates directly.
//!
//! | feature | crate | what it holds |
//! | --- | --- | --- |
//! | `core` (default) | [`core`] = `scarce-core` | `Params`, the functional `Model`, verified differentiable ops, backbones, RNG streams, optimisers, checkpoints, gradcheck |
//! | `cuda` | | candle's CUDA backend for every crate with tensor code |
//! | `full` | | every crate |
#![deny(missing_docs)]

#[cfg(feature = "core")]
pub use scarce_core as core;
