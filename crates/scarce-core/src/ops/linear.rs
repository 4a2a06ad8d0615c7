//! Linear maps with hand-written CPU kernels whose autodiff is exact at every order.
//!
//! A [`LinearMap`] supplies a kernel for the map and one for its adjoint (transpose). The
//! candle custom op [`Linear`] runs one of them, and its backward is the *other* one applied
//! to the incoming gradient. Since the backward is again a `Linear` op, backward-of-backward
//! is the original map, and so on: first, second and higher order gradients all come out
//! exact, and at the speed of the kernels. On devices other than the CPU, each map supplies
//! the same linear map written with candle ops.

use crate::Result;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};
use std::sync::Arc;

/// A linear map between two fixed shapes, with kernels for it and its adjoint.
pub(crate) trait LinearMap: Send + Sync + 'static {
    /// Op name for errors (`adjoint` selects the transpose).
    fn name(&self, adjoint: bool) -> &'static str;
    /// The shape the map takes.
    fn in_shape(&self) -> Shape;
    /// The shape it returns.
    fn out_shape(&self) -> Shape;
    /// The map (or its adjoint) on a contiguous buffer.
    fn cpu<T: WithDType>(&self, x: &[T], adjoint: bool) -> Vec<T>;
    /// The same map with candle ops, for other devices.
    fn device(&self, x: &Tensor, adjoint: bool) -> candle_core::Result<Tensor>;
}

/// The candle op that applies `map` (or its adjoint).
pub(crate) struct Linear<M> {
    map: Arc<M>,
    adjoint: bool,
}

impl<M: LinearMap> CustomOp1 for Linear<M> {
    fn name(&self) -> &'static str {
        self.map.name(self.adjoint)
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("{}: input must be contiguous", self.name())
        };
        let (expect, out_shape) = if self.adjoint {
            (self.map.out_shape(), self.map.in_shape())
        } else {
            (self.map.in_shape(), self.map.out_shape())
        };
        if layout.shape() != &expect {
            bail!(
                "{}: expected shape {expect:?}, got {:?}",
                self.name(),
                layout.shape()
            )
        }
        let a = self.adjoint;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.map.cpu(&v[start..end], a)),
            CpuStorage::F64(v) => CpuStorage::F64(self.map.cpu(&v[start..end], a)),
            CpuStorage::BF16(v) => CpuStorage::BF16(self.map.cpu(&v[start..end], a)),
            CpuStorage::F16(v) => CpuStorage::F16(self.map.cpu(&v[start..end], a)),
            other => bail!(
                "{}: unsupported dtype {:?}",
                self.name(),
                candle_core::backend::BackendStorage::dtype(other)
            ),
        };
        Ok((out, out_shape))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(run(grad, &self.map, !self.adjoint)?))
    }
}

fn run<M: LinearMap>(x: &Tensor, map: &Arc<M>, adjoint: bool) -> candle_core::Result<Tensor> {
    if super::cpu_kernels(x) {
        x.contiguous()?.apply_op1(Linear {
            map: map.clone(),
            adjoint,
        })
    } else {
        map.device(x, adjoint)
    }
}

/// Applies `map` to `x`.
pub(crate) fn apply<M: LinearMap>(x: &Tensor, map: &Arc<M>) -> Result<Tensor> {
    Ok(run(x, map, false)?)
}

/// Applies the adjoint of `map` to `y`.
pub(crate) fn apply_adjoint<M: LinearMap>(y: &Tensor, map: &Arc<M>) -> Result<Tensor> {
    Ok(run(y, map, true)?)
}

/// Test support: checks a map's CPU kernels against its candle-op form (the one other
/// devices run) and the adjoint identity `⟨A x, y⟩ = ⟨x, Aᵀ y⟩`, in f64.
#[cfg(test)]
pub(crate) fn check_map<M: LinearMap>(map: M) {
    use crate::rng::Stream;
    use candle_core::{DType, Device};
    let map = Arc::new(map);
    let s = Stream::new(3, "check-map");
    let x = s
        .at(0)
        .normal_tensor(map.in_shape(), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let y = s
        .at(1)
        .normal_tensor(map.out_shape(), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let ax = apply(&x, &map).unwrap();
    let aty = apply_adjoint(&y, &map).unwrap();
    let close = |a: &Tensor, b: &Tensor| scarce_fixtures::rel_err(a, b).unwrap() < 1e-14;
    assert!(
        close(&ax, &map.device(&x, false).unwrap()),
        "{}: forward differs from its candle form",
        map.name(false)
    );
    assert!(
        close(&aty, &map.device(&y, true).unwrap()),
        "{}: adjoint differs from its candle form",
        map.name(true)
    );
    let lhs = (ax * &y)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let rhs = (aty * &x)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(
        (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
        "{}: not adjoint ({lhs} vs {rhs})",
        map.name(false)
    );
}
