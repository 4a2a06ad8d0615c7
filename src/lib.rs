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
//! | `io` | [`io`] = `scarce-io` | DICOM (every common transfer syntax, series -> volume) and NIfTI-1/2 read and write, no tensor library; with `episodes`, DICOM / NIfTI files in folders and manifests |
//! | `meta` | [`meta`] = `scarce-meta` | MAML (second order), first-order MAML, Meta-SGD, ANIL, Reptile, MAML++, iMAML, the meta-trainer, sinusoid tasks |
//! | `fed` | [`fed`] = `scarce-fed` | Flower-exact strategies, DP-FedAvg and DP-SGD, the Opacus-exact RDP accountant, secure aggregation, partitioners, a checkpointed server and simulation |
//! | `augment` | [`augment`] = `scarce-augment` | 2D/3D spatial and intensity augmentation of image and label map together, scipy-exact resampling, replayable and invertible; DiffAugment on tensors |
//! | `gen` | [`gen`] = `scarce-gen` | DDPM / DDIM, the UNet denoiser, conditional VAE and DCGAN, audits, synthetic data sets with provenance |
//! | `models` | [`models`] = `scarce-models` | ResNet-18 / ResNet-34 (torchvision) and the Vision Transformer (timm) under PyTorch's names; safetensors state dicts in and out |
//! | `ssl` | [`ssl`] = `scarce-ssl`, [`label_efficiency`] | SimCLR, BYOL / SimSiam, DINO, Barlow Twins, VICReg and MAE losses, EMA teachers, FixMatch, SimCLR pretraining, the logistic-regression probe; the label-efficiency benchmark |
//! | `full` | | every crate above |
//! | `all-codecs` | | scarce-io's JPEG-LS and 12-bit JPEG decoders (built with CMake) |
//! | `cuda`, `cudnn`, `metal`, `mkl`, `accelerate` | | candle's backends, under candle's names |
//!
//! [`prelude`] gathers the names most programs use, and [`candle_core`] is re-exported so a
//! program uses the same candle as scarce.
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
#[cfg(feature = "models")]
pub use scarce_models as models;
#[cfg(feature = "ssl")]
pub use scarce_ssl as ssl;

#[cfg(feature = "ssl")]
pub mod label_efficiency;

/// The candle version scarce is built on (its tensors are scarce's tensors).
#[cfg(feature = "core")]
pub use scarce_core::candle_core;

/// The guide from your own images to a trained classifier (`docs/getting-started.md`; its
/// code is compiled as documentation tests).
#[cfg(feature = "metric")]
#[doc = include_str!("../docs/getting-started.md")]
pub mod getting_started {}

/// The names most programs use: `use scarce::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "core")]
    pub use scarce_core::{device, Ctx, DType, Device, Model, Params, Pref, Stream, Tensor};
    #[cfg(feature = "episodes")]
    pub use scarce_episodes::{Dataset, EpisodeConfig, EpisodeSampler};
    #[cfg(feature = "metric")]
    pub use scarce_metric::{FewShotClassifier, ProtoNet};
}
