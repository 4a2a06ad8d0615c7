#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
// Denied except where a module allows it: ops::conv_cpu (gemm's raw pointers and strides),
// ops::direct and ops::winograd (SIMD intrinsics, register-tile pointers, disjoint output
// writes) and ops::par (disjoint writes through a shared pointer).
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod backbone;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod gradcheck;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod rng;
pub mod runlog;
pub mod second_order;

/// The candle scarce-core is built on, for programs that need more of it than the
/// re-exported `Tensor`, `Device` and `DType`.
pub use candle_core;
pub use candle_core::{DType, Device, Tensor};
/// The candle-nn scarce-core is built with: its layers can be brought in as a [`Model`]
/// (see the getting-started guide).
pub use candle_nn;
pub use device::{device, Pref};
pub use error::{Error, Result};
pub use model::{Ctx, Mode, Model};
pub use params::Params;
pub use rng::Stream;

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<crate::Params>();
        send_sync::<crate::Ctx>();
        send_sync::<crate::Stream>();
        send_sync::<crate::backbone::Conv4>();
        send_sync::<crate::backbone::ResNet12>();
        send_sync::<crate::optim::Adam>();
        send_sync::<crate::Error>();
    }
}
