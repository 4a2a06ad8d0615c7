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
mod direct;
mod gate;
mod gather;
mod gn_fused;
mod grid_sample;
mod im2col;
mod interp;
mod linear;
mod norm;
mod par;
mod pool;
mod repeat;
mod softmax;
mod taps;
#[cfg(target_arch = "x86_64")]
mod winograd;

pub use channel::{channel_expand, channel_sum, sample_channel_sum};
pub use conv::{
    conv, conv2d, conv3d, conv_transpose, conv_transpose2d, conv_transpose3d, ConvOpts,
};
pub use grid_sample::{grid_sample, Padding, SampleMode};
pub use interp::{interpolate, InterpMode, Resize};
pub use norm::{
    batch_norm_eval, batch_norm_train, batch_norm_train_max_pool, group_norm, group_norm_silu,
    layer_norm, BatchStats,
};
pub use pool::{
    adaptive_avg_pool, adaptive_avg_pool2d, adaptive_avg_pool3d, avg_pool, avg_pool2d, avg_pool3d,
    max_pool, max_pool2d, max_pool3d, PoolOpts,
};
pub use softmax::{cross_entropy, log_softmax, one_hot, softmax};

use crate::Result;
use candle_core::Tensor;
use std::cell::Cell;

thread_local! {
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every op called on this thread in its portable form — the composition of
/// candle ops that CUDA and other devices run — even for CPU tensors. The device-parity tests
/// use it so that a machine without a GPU still checks the GPU path's arithmetic and
/// gradients against the fixtures (all of it but candle's own kernels). Scoped to the calling
/// thread, where ops and their backward passes are dispatched; restored on return or panic.
pub fn with_portable_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PORTABLE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PORTABLE.with(|p| p.replace(true)));
    f()
}

/// True when `t` takes scarce-core's hand-written CPU kernels: it lives on the CPU and the
/// thread is not inside [`with_portable_ops`].
pub(crate) fn cpu_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && !PORTABLE.with(Cell::get)
}

/// Leaky ReLU, `x` for `x > 0` else `slope·x`; exact at every order, one pass each way.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    gate::leaky(x, slope)
}

/// ReLU with PyTorch's gradient convention (0 at x = 0; candle's own `relu` passes the
/// gradient at 0 and takes four passes to do it).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    gate::leaky(x, 0.0)
}

/// GELU in its exact erf form, `x·Φ(x) = 0.5·x·(1 + erf(x/√2))` (PyTorch's `nn.GELU()`).
///
/// Composed from candle's `erf`, whose gradient is exact, rather than candle's `gelu_erf`,
/// whose gradient rounds 1/√(2π) to 0.398942 (a relative error near 1e-6 that a float64
/// check against PyTorch finds); the composition also differentiates twice.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let e = (x / std::f64::consts::SQRT_2)?.erf()?;
    Ok(((x * 0.5)? * (e + 1.0)?)?)
}

/// `x @ w^T + b` for `x` `[..., in]`, `w` `[out, in]`, `b` `[out]` (`nn.Linear`).
///
/// The leading axes of `x` fold into the rows of one matmul, and the bias goes through
/// [`channel_expand`]: neither gradient is then a candle reduction over a broadcast axis
/// (a serial strided loop on the CPU).
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let &[out, inp] = w.dims() else {
        return Err(crate::Error::shape("w", "[out, in]", w.dims()));
    };
    let mut dims = x.dims().to_vec();
    if dims.last() != Some(&inp) {
        return Err(crate::Error::shape("x", format!("[..., {inp}]"), x.dims()));
    }
    let rows = x.elem_count() / inp;
    let mut y = x.reshape((rows, inp))?.matmul(&w.t()?)?;
    if let Some(b) = b {
        if b.dims() != [out] {
            return Err(crate::Error::shape("b", format!("[{out}]"), b.dims()));
        }
        y = (channel_expand(b, &[rows, out])? + y)?;
    }
    if let Some(last) = dims.last_mut() {
        *last = out;
    }
    Ok(y.reshape(dims)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use candle_core::{DType, Device};

    fn zeros(shape: &[usize]) -> Tensor {
        Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn portable_scope_is_per_thread_and_restored() {
        let x = zeros(&[1, 1, 2, 2]);
        assert!(cpu_kernels(&x));
        with_portable_ops(|| {
            assert!(!cpu_kernels(&x));
            // Another thread keeps the kernels.
            std::thread::scope(|s| s.spawn(|| assert!(cpu_kernels(&x))).join().unwrap());
        });
        assert!(cpu_kernels(&x));
        let panicked = std::panic::catch_unwind(|| with_portable_ops(|| panic!("inside")));
        assert!(panicked.is_err());
        assert!(cpu_kernels(&x), "the scope is restored after a panic");
    }

    /// Bad shapes and settings are errors that name the argument at fault, never panics.
    #[test]
    fn bad_input_is_a_named_error() {
        let name = |r: Result<Tensor>| match r {
            Err(Error::InvalidParam { name, .. }) | Err(Error::Shape { name, .. }) => name,
            other => panic!("expected a parameter or shape error, got {other:?}"),
        };
        let x = zeros(&[2, 4, 5, 5]);
        assert_eq!(
            name(conv2d(
                &x,
                &zeros(&[6, 3, 3, 3]),
                None,
                &ConvOpts::default()
            )),
            "w"
        );
        assert_eq!(
            name(conv2d(
                &x,
                &zeros(&[6, 4, 3, 3]),
                Some(&zeros(&[5])),
                &ConvOpts::default()
            )),
            "bias"
        );
        assert_eq!(
            name(conv2d(
                &x,
                &zeros(&[6, 2, 3, 3]),
                None,
                &ConvOpts::default().groups(0)
            )),
            "groups"
        );
        assert_eq!(
            name(conv2d(
                &x,
                &zeros(&[6, 4, 9, 9]),
                None,
                &ConvOpts::default()
            )),
            "x"
        );
        assert_eq!(
            name(conv3d(
                &x,
                &zeros(&[6, 4, 3, 3, 3]),
                None,
                &ConvOpts::default()
            )),
            "x"
        );
        assert_eq!(
            name(max_pool2d(&x, &PoolOpts::new(2).padding(2))),
            "padding"
        );
        assert_eq!(name(avg_pool2d(&zeros(&[2, 4, 5]), &PoolOpts::new(2))), "x");
        assert_eq!(
            name(interpolate(&x, &Resize::Size(vec![3]), InterpMode::Nearest)),
            "target"
        );
        assert_eq!(
            name(interpolate(
                &x,
                &Resize::Scale(vec![0.0, 1.0]),
                InterpMode::Nearest
            )),
            "scale_factor"
        );
        let logits = zeros(&[3, 4]);
        let bad = Tensor::new(&[0u32, 4, 1], &Device::Cpu).unwrap();
        assert_eq!(name(cross_entropy(&logits, &bad)), "target");
        assert_eq!(name(cross_entropy(&logits, &zeros(&[2]))), "target");
        assert_eq!(name(group_norm(&x, 3, None, None, 1e-5)), "groups");
        assert_eq!(name(softmax(&logits, 2)), "dim");
    }
}
