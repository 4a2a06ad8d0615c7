//! Backbones that medical-imaging papers fine-tune, as functional `scarce_core::Model`s
//! under PyTorch's names: torchvision's ResNet-18 / ResNet-34 (ImageNet stem, or the 3×3
//! stem of the MedMNIST v2 benchmark) and timm's Vision Transformer. A state dict converted
//! with `safetensors.torch.save_file` loads by name ([`state_dict::load`]); weights can also
//! be rebuilt from the SplitMix64 formula the fixtures use ([`formula`]).
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod formula;
pub mod resnet;
pub mod state_dict;
pub mod vit;

pub use resnet::{ResNet, ResNetConfig, Stem};
pub use state_dict::{Kind, LoadReport, TensorSpec};
pub use vit::{Vit, VitConfig};

/// The README's examples, compiled and run as documentation tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
