//! ReLU and leaky ReLU as one fused op: `gate(a, b) = a · (b > 0 ? 1 : slope)`.
//!
//! `relu(x) = gate(x, x)`. The gate is linear in `a` for a fixed `b`, and piecewise constant
//! in `b`, so its backward is `gate(grad, b)` for `a` and nothing for `b`: exact at every order
//! (with PyTorch's convention of zero gradient at 0), in one pass each way. candle's `relu`
//! backward takes four passes and passes the gradient at 0.

use crate::Result;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};

struct Gate {
    slope: f64,
}

fn kernel<T: WithDType>(a: &[T], b: &[T], slope: f64) -> Vec<T> {
    let s = T::from_f64(slope);
    let zero = T::zero();
    a.iter()
        .zip(b)
        .map(|(&a, &b)| if b > zero { a } else { a * s })
        .collect()
}

/// The same for f32 and f64, written so that LLVM vectorises the select.
macro_rules! float_kernel {
    ($name:ident, $t:ty) => {
        fn $name(a: &[$t], b: &[$t], slope: f64) -> Vec<$t> {
            let s = slope as $t;
            a.iter()
                .zip(b)
                .map(|(&a, &b)| a * if b > 0.0 { 1.0 } else { s })
                .collect()
        }
    };
}
float_kernel!(kernel_f32, f32);
float_kernel!(kernel_f64, f64);

impl CustomOp2 for Gate {
    fn name(&self) -> &'static str {
        "scarce-gate"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("scarce-gate: inputs must be contiguous")
        };
        if l1.shape() != l2.shape() {
            bail!(
                "scarce-gate: shapes {:?} and {:?} differ",
                l1.shape(),
                l2.shape()
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32(kernel_f32(&a[a0..a1], &b[b0..b1], self.slope))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64(kernel_f64(&a[a0..a1], &b[b0..b1], self.slope))
            }
            (CpuStorage::BF16(a), CpuStorage::BF16(b)) => {
                CpuStorage::BF16(kernel(&a[a0..a1], &b[b0..b1], self.slope))
            }
            (CpuStorage::F16(a), CpuStorage::F16(b)) => {
                CpuStorage::F16(kernel(&a[a0..a1], &b[b0..b1], self.slope))
            }
            _ => bail!("scarce-gate: unsupported or mixed dtypes"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(gate(grad, b, self.slope)?), None))
    }
}

fn gate(a: &Tensor, b: &Tensor, slope: f64) -> candle_core::Result<Tensor> {
    if super::cpu_kernels(a) {
        a.contiguous()?
            .apply_op2(&b.detach().contiguous()?, Gate { slope })
    } else {
        let factor = b
            .gt(0.0)?
            .where_cond(&b.ones_like()?, &(b.ones_like()? * slope)?)?
            .detach();
        a.mul(&factor)
    }
}

/// `x · (x > 0 ? 1 : slope)`; `slope = 0` is ReLU.
pub(crate) fn leaky(x: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(gate(x, x, slope)?)
}
