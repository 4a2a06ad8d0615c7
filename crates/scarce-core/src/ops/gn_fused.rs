//! Group norm, optionally followed by SiLU, as fused CPU kernels: first order fused, second
//! order by autodiff of the composed formula (as the fused batch norm).
//!
//! `GnAct(x, [w, b])` computes each (sample, group)'s statistics in two passes and writes
//! `act(x·a + s)` in a third, with `a = w·inv` and `s = b − mean·a` per (sample, channel).
//! Its backward `GnActGrad(dy, x, [w, b])` returns `(dx, dw, db)` in two passes: the first
//! writes `dz = dy · act′(z)` and sums `dz` and `dz·x̂` per plane, the second turns `dz` into
//! `dx` in place. A residual block's `silu(group_norm(x))` is then three passes forward and
//! two backward, where the composed ops take about twenty. Weight and bias travel as one
//! `[2C]` tensor because a custom op takes at most three inputs.

use super::bn_fused::{dims3, lanes, lanes2, on_floats, slice, Slice};
use super::channel::{channel_expand, channel_sum};
use super::direct::vectorised;
use super::par;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, Var, WithDType};
use std::sync::{Arc, OnceLock};

/// The floats the kernels run on, with the activation and its derivative.
trait Float: WithDType + std::ops::Neg<Output = Self> {
    fn exp(self) -> Self;
    /// `z·σ(z)`.
    #[inline(always)]
    fn silu(self) -> Self {
        self / (Self::one() + (-self).exp())
    }
    /// The derivative of [`Float::silu`]: `σ(z)·(1 + z·(1 − σ(z)))`.
    #[inline(always)]
    fn silu_grad(self) -> Self {
        let s = Self::one() / (Self::one() + (-self).exp());
        s * (Self::one() + self * (Self::one() - s))
    }
}

impl Float for f32 {
    #[inline(always)]
    fn exp(self) -> f32 {
        exp_f32(self)
    }
}

impl Float for f64 {
    fn exp(self) -> f64 {
        f64::exp(self)
    }
}

/// `eˣ` in f32 without a library call, so that loops over it vectorise: Cephes' `expf`
/// (range reduction by `n·ln 2`, a degree-6 polynomial, `2ⁿ` from the exponent bits),
/// within 2 ulp of the true value (tested); inputs are clamped to `[-87.3, 88]`, where the
/// result is still a normal float.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // Adding 1.5·2²³ rounds to the nearest integer, branch-free.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // n as an integer, read from t's mantissa (a float-to-int cast saturates lane by lane).
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((ni + 127) << 23) as u32)
}

/// Mean and `1/sqrt(var + eps)` of each (sample, group), biased variance.
#[derive(Debug, Clone)]
struct GroupStats {
    mean: Vec<f64>,
    inv: Vec<f64>,
}

/// The shape of one call: `[N, C, inner]` in `groups` groups.
#[derive(Debug, Clone, Copy)]
struct Spec {
    n: usize,
    c: usize,
    inner: usize,
    groups: usize,
    eps: f64,
    act: bool,
}

impl Spec {
    fn of(shape: &Shape, groups: usize, eps: f64, act: bool) -> Spec {
        let (n, c, inner) = dims3(shape);
        Spec {
            n,
            c,
            inner,
            groups,
            eps,
            act,
        }
    }

    /// Elements of one group of one sample.
    fn group_len(&self) -> usize {
        self.c / self.groups * self.inner
    }

    /// The (sample, group) index of plane `p` (= sample·C + channel).
    fn group_of(&self, p: usize) -> usize {
        let (n, c) = (p / self.c, p % self.c);
        n * self.groups + c / (self.c / self.groups)
    }

    fn stats<T: Float>(&self, x: &[T]) -> GroupStats {
        let m = self.group_len() as f64;
        let (mean, inv) = par::map(self.n * self.groups, |i| {
            let blk = &x[i * self.group_len()..][..self.group_len()];
            let mean = lanes(blk, |v| v) / m;
            let mt = T::from_f64(mean);
            let var = lanes(blk, |v| (v - mt) * (v - mt)) / m;
            (mean, 1.0 / (var + self.eps).sqrt())
        })
        .into_iter()
        .unzip();
        GroupStats { mean, inv }
    }

    /// Per plane `(a, s)` with `z = x·a + s`.
    fn affine<T: Float>(&self, st: &GroupStats, wb: &[T]) -> Vec<(T, T)> {
        (0..self.n * self.c)
            .map(|p| {
                let (g, ch) = (self.group_of(p), p % self.c);
                let a = st.inv[g] * wb[ch].to_f64();
                let s = wb[self.c + ch].to_f64() - st.mean[g] * a;
                (T::from_f64(a), T::from_f64(s))
            })
            .collect()
    }

    fn forward<T: Float>(&self, x: &[T], wb: &[T]) -> (Vec<T>, GroupStats) {
        let st = self.stats(x);
        let ab = self.affine(&st, wb);
        let mut y = par::zeroed::<T>(x.len());
        par::chunks_mut(&mut y, self.inner, |p, y| {
            let (a, s) = ab[p];
            let x = &x[p * self.inner..][..y.len()];
            if self.act {
                vectorised(
                    #[inline(always)]
                    || {
                        for (y, &v) in y.iter_mut().zip(x) {
                            *y = (v * a + s).silu();
                        }
                    },
                );
            } else {
                for (y, &v) in y.iter_mut().zip(x) {
                    *y = v * a + s;
                }
            }
        });
        (y, st)
    }

    /// `[dx, dw, db]` flat.
    fn backward<T: Float>(&self, dy: &[T], x: &[T], wb: &[T], st: &GroupStats) -> Vec<T> {
        let (c, inner) = (self.c, self.inner);
        let ab = self.affine(st, wb);
        let mut out = par::zeroed::<T>(x.len() + 2 * c);
        let (dx, rest) = out.split_at_mut(x.len());
        // Pass 1: dz into dx; per plane Σ dz and Σ dz·x̂.
        let sums: Vec<(f64, f64)> = par::map_chunks_mut(dx, inner, |p, dz| {
            let g = self.group_of(p);
            let (a, s) = ab[p];
            let (mean, inv) = (T::from_f64(st.mean[g]), T::from_f64(st.inv[g]));
            let (gy, xs) = (&dy[p * inner..][..inner], &x[p * inner..][..inner]);
            if self.act {
                vectorised(
                    #[inline(always)]
                    || dz_and_sums::<T, true>(dz, gy, xs, (a, s), (mean, inv)),
                )
            } else {
                dz_and_sums::<T, false>(dz, gy, xs, (a, s), (mean, inv))
            }
        });
        // Per (sample, group): mean over the group of w·dz and of w·dz·x̂.
        let m = self.group_len() as f64;
        let mut gsum = vec![(0f64, 0f64); self.n * self.groups];
        for (p, &(s1, s2)) in sums.iter().enumerate() {
            let w = wb[p % c].to_f64();
            let e = &mut gsum[self.group_of(p)];
            e.0 += w * s1 / m;
            e.1 += w * s2 / m;
        }
        // Pass 2: dx = inv·(w·dz − mean(w·dz) − x̂·mean(w·dz·x̂)), in place.
        par::chunks_mut(dx, inner, |p, dz| {
            let g = self.group_of(p);
            let (inv, mean) = (st.inv[g], st.mean[g]);
            let w = wb[p % c].to_f64();
            let (wi, m1, m2) = (
                T::from_f64(w * inv),
                T::from_f64(gsum[g].0 * inv),
                T::from_f64(gsum[g].1 * inv * inv),
            );
            let mt = T::from_f64(mean);
            for (d, &v) in dz.iter_mut().zip(&x[p * inner..][..inner]) {
                *d = wi * *d - m1 - (v - mt) * m2;
            }
        });
        for (p, &(s1, s2)) in sums.iter().enumerate() {
            let ch = p % c;
            rest[ch] += T::from_f64(s2);
            rest[c + ch] += T::from_f64(s1);
        }
        out
    }
}

/// One plane of the backward's first pass: `dz = dy · act′(x·a + s)` written to `dz`, then
/// `Σ dz` and `Σ dz·x̂` (x̂ = (x − mean)·inv), each loop simple enough to vectorise.
#[inline(always)]
fn dz_and_sums<T: Float, const SILU: bool>(
    dz: &mut [T],
    dy: &[T],
    x: &[T],
    (a, s): (T, T),
    (mean, inv): (T, T),
) -> (f64, f64) {
    if SILU {
        for ((d, &g), &v) in dz.iter_mut().zip(dy).zip(x) {
            *d = g * (v * a + s).silu_grad();
        }
    } else {
        dz.copy_from_slice(dy);
    }
    let s1 = lanes(dz, |d| d);
    let s2 = lanes2(dz, x, |d, v| d * (v - mean)) * inv.to_f64();
    (s1, s2)
}

struct GnAct {
    groups: usize,
    eps: f64,
    act: bool,
    stats: Arc<OnceLock<GroupStats>>,
}

impl CustomOp2 for GnAct {
    fn name(&self) -> &'static str {
        if self.act {
            "scarce-group-norm-silu"
        } else {
            "scarce-group-norm"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let sp = Spec::of(l1.shape(), self.groups, self.eps, self.act);
        let y = match (slice(s1, l1)?, slice(s2, l2)?) {
            (Slice::F32(x), Slice::F32(wb)) => {
                let (y, st) = sp.forward(x, wb);
                let _ = self.stats.set(st);
                CpuStorage::F32(y)
            }
            (Slice::F64(x), Slice::F64(wb)) => {
                let (y, st) = sp.forward(x, wb);
                let _ = self.stats.set(st);
                CpuStorage::F64(y)
            }
            _ => bail!("{}: inputs must both be f32 or both f64", self.name()),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let op = GnActGrad {
            groups: self.groups,
            eps: self.eps,
            act: self.act,
            stats: self.stats.get().cloned(),
        };
        let (numel, c2) = (x.elem_count(), wb.elem_count());
        let flat = dy
            .contiguous()?
            .apply_op3(&x.contiguous()?, &wb.contiguous()?, op)?;
        Ok((
            Some(flat.narrow(0, 0, numel)?.reshape(x.shape())?),
            Some(flat.narrow(0, numel, c2)?),
        ))
    }
}

struct GnActGrad {
    groups: usize,
    eps: f64,
    act: bool,
    stats: Option<GroupStats>,
}

impl CustomOp3 for GnActGrad {
    fn name(&self) -> &'static str {
        "scarce-group-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let sp = Spec::of(l2.shape(), self.groups, self.eps, self.act);
        fn run<T: Float>(
            sp: &Spec,
            st: &Option<GroupStats>,
            dy: &[T],
            x: &[T],
            wb: &[T],
        ) -> Vec<T> {
            match st {
                Some(st) => sp.backward(dy, x, wb, st),
                None => sp.backward(dy, x, wb, &sp.stats(x)),
            }
        }
        let out = on_floats!(self.name(), s1, l1, s2, l2, s3, l3, |dy, x, wb| run(
            &sp,
            &self.stats,
            dy,
            x,
            wb
        ));
        Ok((
            out,
            Shape::from(l2.shape().elem_count() + l3.shape().elem_count()),
        ))
    }

    fn bwd(
        &self,
        dy: &Tensor,
        x: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Vector-Jacobian product of the composed (dx, dw, db) formula, by autodiff.
        let wrap = candle_core::Error::wrap;
        let var = |t: &Tensor| -> candle_core::Result<Tensor> {
            Ok(Var::from_tensor(&t.detach())?.as_tensor().clone())
        };
        let (dyv, xv, wbv) = (var(dy)?, var(x)?, var(wb)?);
        let flat = composed_grad(&dyv, &xv, &wbv, self.groups, self.eps, self.act).map_err(wrap)?;
        let s = (flat * g.detach())?.sum_all()?;
        let store = s.backward()?;
        let get = |t: &Tensor| store.get(t).cloned();
        Ok((get(&dyv), get(&xv), get(&wbv)))
    }
}

/// `[dx, dw, db]` flat for `y = act(group_norm(x)·w + b)`, written with candle ops.
fn composed_grad(
    dy: &Tensor,
    x: &Tensor,
    wb: &Tensor,
    groups: usize,
    eps: f64,
    act: bool,
) -> crate::Result<Tensor> {
    let dims = x.dims();
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    let (w, b) = (wb.narrow(0, 0, c)?, wb.narrow(0, c, c)?);
    let xg = x.reshape((n, groups, ()))?;
    let mean = xg.mean_keepdim(2)?;
    let xc = xg.broadcast_sub(&mean)?;
    let inv = ((xc.sqr()?.mean_keepdim(2)? + eps)?.sqrt()?).recip()?;
    let xhat_g = xc.broadcast_mul(&inv)?;
    let xhat = xhat_g.reshape(dims)?;
    let we = channel_expand(&w, dims)?;
    let dz = if act {
        let z = ((&xhat * &we)? + channel_expand(&b, dims)?)?;
        let s = ((z.neg()?.exp()? + 1.0)?).recip()?;
        let one_minus = (1.0 - &s)?;
        ((dy * &s)? * ((z * one_minus)? + 1.0)?)?
    } else {
        dy.clone()
    };
    let db = channel_sum(&dz)?;
    let dw = channel_sum(&(&dz * &xhat)?)?;
    let u = (&dz * &we)?.reshape((n, groups, ()))?;
    let dx = inv
        .broadcast_mul(
            &(u.broadcast_sub(&u.mean_keepdim(2)?)?
                - xhat_g.broadcast_mul(&(&u * &xhat_g)?.mean_keepdim(2)?)?)?,
        )?
        .reshape(dims)?;
    Ok(Tensor::cat(&[dx.flatten_all()?, dw, db], 0)?)
}

/// Fused `act(group_norm(x)·w + b)` on the CPU (f32 / f64); `w`, `b` are `[C]`.
pub(crate) fn group_norm_cpu(
    x: &Tensor,
    groups: usize,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    silu: bool,
) -> crate::Result<Tensor> {
    let wb = Tensor::cat(&[w, b], 0)?;
    Ok(x.contiguous()?.apply_op2(
        &wb,
        GnAct {
            groups,
            eps,
            act: silu,
            stats: Arc::new(OnceLock::new()),
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64's `exp`, over the range where f32 results are normal: within 2 ulp.
    #[test]
    fn exp_f32_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * i as f64 / 2_000_000.0;
            let got = exp_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            let ulp = (want as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "exp_f32 off by {worst} ulp");
    }
}
