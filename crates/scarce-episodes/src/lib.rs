//! # scarce-episodes
//!
//! The few-shot data layer: [`Dataset`]s from Omniglot, MedMNIST-style files, image
//! folders, CSV manifests and in-memory arrays; class and patient splits; reproducible
//! N-way K-shot episodes ([`EpisodeSampler`], saved [`EpisodeSet`]s); mini-batch samplers;
//! and an [`EpisodeLoader`] that collates episodes to candle tensors on a background
//! thread.
//!
//! ```no_run
//! use scarce_episodes::{Collator, EpisodeConfig, EpisodeLoader, EpisodeSampler, Episodes};
//! use scarce_episodes::omniglot::{Omniglot, OmniglotSet};
//! # fn main() -> scarce_episodes::Result<()> {
//! let train = Omniglot::load(&scarce_episodes::data_dir().join("omniglot"), OmniglotSet::Background, 28)?;
//! let sampler = EpisodeSampler::new(&train.dataset, EpisodeConfig::new(5, 5, 15), 42)?;
//! let collator = Collator::new(&train.dataset, &candle_core::Device::Cpu);
//! let loader = EpisodeLoader::new(Episodes::Sampled { sampler, start: 0, count: Some(100) }, collator, 4)?;
//! for batch in loader {
//!     let batch = batch?;
//!     assert_eq!(batch.support.dims(), &[25, 1, 28, 28]);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod augment;
pub mod batch;
pub mod dataset;
pub mod error;
pub mod folder;
pub mod loader;
pub mod medmnist;
pub mod npy;
pub mod omniglot;
pub mod resize;
pub mod sampler;
pub mod split;

pub use augment::Pipeline;
pub use batch::{ClassBalancedSampler, ShuffledBatches};
pub use dataset::Dataset;
pub use error::{Error, Result};
pub use loader::{Augment, Collator, EpisodeBatch, EpisodeLoader, Episodes};
pub use sampler::{Episode, EpisodeConfig, EpisodeSampler, EpisodeSet};
pub use split::{group_split, ClassSplit};

use std::path::PathBuf;

/// The folder of bundled data (`data/` at the repository root, holding `omniglot/`):
/// `SCARCE_DATA` when set, else `data/` in the current directory or an ancestor, else the
/// repository this crate was built in when that has one (not a crates.io download, which
/// ships no data), else `data` relative to the current directory, so that a loader's error
/// names where it looked. A program using scarce from crates.io sets `SCARCE_DATA`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SCARCE_DATA") {
        return PathBuf::from(d);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("data").join("omniglot").is_dir() {
                return dir.join("data");
            }
        }
    }
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    if built_in.join("omniglot").is_dir() {
        return built_in;
    }
    PathBuf::from("data")
}

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
