//! # scarce-metric
//!
//! Metric-based few-shot learning: one [`FewShotClassifier`] interface (support embeddings
//! and labels in, query logits out) with Prototypical Networks (squared Euclidean, or
//! cosine with a learnable scale), Matching Networks, Relation Networks, SimpleShot, a
//! linear probe, and the transductive BD-CSPN and TIM; an episodic [`trainer`] with
//! validation on fixed episodes, best and last checkpoints, exact resume and a CSV log.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod classifier;
pub mod explain;
pub mod matching;
pub mod protonet;
pub mod relation;
pub mod simpleshot;
pub mod trainer;
pub mod transductive;

pub use classifier::FewShotClassifier;
pub use explain::{explain, explanation_svg, Explanation};
pub use matching::MatchingNet;
pub use protonet::{Metric, ProtoNet};
pub use relation::RelationNet;
pub use simpleshot::SimpleShot;
pub use trainer::{
    evaluate, evaluate_with_progress, train, Learner, Progress, TrainConfig, TrainOutcome,
};
pub use transductive::{BdCspn, LinearProbe, Tim};

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
