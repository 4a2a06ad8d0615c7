//! # scarce
//!
//! Machine learning where medical data is scarce. This umbrella crate only re-exports the
//! `scarce-*` crates, each behind a feature of the same name, so an application can depend
//! on `scarce` and pick what it uses, or on the member crates directly.
//!
//! | feature | crate | what it holds |
//! | --- | --- | --- |
//! | `core` (default) | [`core`] = `scarce-core` | `Params`, the functional `Model`, verified differentiable ops, backbones, RNG streams, optimisers, checkpoints, gradcheck |
//! | `episodes` (default) | [`episodes`] = `scarce-episodes` | datasets (Omniglot, MedMNIST, folders, manifests), splits, N-way K-shot episodes, loaders |
//! | `metric` (default) | [`metric`] = `scarce-metric` | ProtoNet, SimpleShot, the episodic trainer |
//! | `eval` (default) | [`eval`] = `scarce-eval` | accuracy ± 95% CI, confusion matrix, AUROC, calibration, Fréchet distance |
//! | `io` (default) | [`io`] = `scarce-io` | DICOM (every common transfer syntax, series -> volume) and NIfTI-1/2 read and write, no tensor library |
//! | `meta` (default) | [`meta`] = `scarce-meta` | MAML (second order), first-order MAML, Meta-SGD, ANIL, Reptile, MAML++, iMAML, the meta-trainer, sinusoid tasks |
//! | `fed` (default) | [`fed`] = `scarce-fed` | Flower-exact strategies, DP-FedAvg and DP-SGD, the Opacus-exact RDP accountant, secure aggregation, partitioners, a checkpointed server and simulation |
//! | `augment` (default) | [`augment`] = `scarce-augment` | 2D/3D spatial and intensity augmentation of image and label map together, scipy-exact resampling, replayable and invertible, no tensor library |
//! | `cuda` | | candle's CUDA backend for every crate with tensor code |
//! | `full` | | every crate |
#![deny(missing_docs)]

#[cfg(feature = "augment")]
pub use scarce_augment as augment;
#[cfg(feature = "core")]
pub use scarce_core as core;
#[cfg(feature = "episodes")]
pub use scarce_episodes as episodes;
#[cfg(feature = "eval")]
pub use scarce_eval as eval;
#[cfg(feature = "fed")]
pub use scarce_fed as fed;
#[cfg(feature = "gen")]
pub use scarce_gen as gen;
#[cfg(feature = "io")]
pub use scarce_io as io;
#[cfg(feature = "meta")]
pub use scarce_meta as meta;
#[cfg(feature = "metric")]
pub use scarce_metric as metric;
