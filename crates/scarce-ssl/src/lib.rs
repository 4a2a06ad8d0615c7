//! Learning from unlabelled images: the self-supervised objectives (SimCLR's NT-Xent,
//! BYOL / SimSiam's negative cosine, DINO, Barlow Twins, VICReg, MAE), EMA teachers and their
//! cosine momentum schedule, SimCLR, BYOL / SimSiam and DINO learners over any
//! `scarce_core::Model`, FixMatch, conformal pseudo-labels, and the logistic-regression
//! probe that reads an encoder out.
#![deny(missing_docs)]
#![deny(unsafe_code)]

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod byol;
pub mod dino;
pub mod dino_train;
pub mod ema;
pub mod loss;
pub mod mae;

pub use byol::{Byol, ByolConfig};
pub use dino::{Dino, DinoConfig};
pub use dino_train::{DinoLearner, DinoTrainConfig};
pub use ema::{cosine_schedule, update_momentum};
pub use loss::{
    barlow_twins, fixmatch_unlabelled, negative_cosine, nt_xent, soft_cross_entropy, vicreg,
    VicRegConfig,
};
pub use mae::{mae_loss, patchify};
pub mod encoder;
pub mod fixmatch;
pub mod head;
pub mod probe;
pub mod pseudo;
pub mod simclr;

pub use encoder::Encoder;
pub use fixmatch::{fixmatch, FixMatchConfig, Labelled};
pub use head::ProjectionHead;
pub use probe::LogisticRegression;
pub use simclr::{pretrain, Pretrained, SimClr, SimClrConfig, Unlabelled};
