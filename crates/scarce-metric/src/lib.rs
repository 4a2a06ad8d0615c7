//! # scarce-metric
//!
//! Metric-based few-shot learning: one [`FewShotClassifier`] interface (support embeddings
//! and labels in, query logits out) with Prototypical Networks (squared Euclidean, or
//! cosine with a learnable scale) and SimpleShot; an episodic [`trainer`] with validation
//! on fixed episodes, best and last checkpoints, exact resume and a CSV log.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod classifier;
pub mod protonet;
pub mod simpleshot;
pub mod trainer;

pub use classifier::FewShotClassifier;
pub use protonet::{Metric, ProtoNet};
pub use simpleshot::SimpleShot;
pub use trainer::{evaluate, train, Learner, TrainConfig, TrainOutcome};
