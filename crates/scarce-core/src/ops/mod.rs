//! Differentiable ops, exact at first AND second order, on every device.
//!
//! Ops that candle lacks or differentiates wrongly live here and nowhere else in the
//! workspace: candle's pooling, upsampling, fused softmax and fused norms have wrong or
//! missing gradients, and its CPU convolution backward is a slow direct loop. Each op is
//! built from a small set of primitives whose gradients are correct at every order: matmul,
//! elementwise arithmetic, reductions, `index_select`/`index_add`, and the `im2col`/`col2im`
//! pair. Every op is checked against PyTorch (`shared/fixtures/ops`) and by f64 gradcheck.

mod bn_fused;
mod channel;
mod conv;
mod conv_cpu;
mod gate;
mod gather;
mod grid_sample;
mod im2col;
mod interp;
mod linear;
mod norm;
mod pool;
mod softmax;
mod taps;

pub use channel::{channel_expand, channel_sum};
pub use conv::{
    conv, conv2d, conv3d, conv_transpose, conv_transpose2d, conv_transpose3d, ConvOpts,
};
pub use grid_sample::{grid_sample, Padding, SampleMode};
pub use interp::{interpolate, InterpMode, Resize};
pub use norm::{
    batch_norm_eval, batch_norm_train, batch_norm_train_max_pool, group_norm, layer_norm,
    BatchStats,
};
pub use pool::{
    adaptive_avg_pool, adaptive_avg_pool2d, adaptive_avg_pool3d, avg_pool, avg_pool2d, avg_pool3d,
    max_pool, max_pool2d, max_pool3d, PoolOpts,
};
pub use softmax::{cross_entropy, log_softmax, one_hot, softmax};

use crate::Result;
use candle_core::Tensor;

/// Leaky ReLU, `x` for `x > 0` else `slope·x`; exact at every order, one pass each way.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    gate::leaky(x, slope)
}

/// ReLU with PyTorch's gradient convention (0 at x = 0; candle's own `relu` passes the
/// gradient at 0 and takes four passes to do it).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    gate::leaky(x, 0.0)
}

/// `x @ w^T + b` for `x` `[..., in]`, `w` `[out, in]`, `b` `[out]` (`nn.Linear`).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.broadcast_matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}
