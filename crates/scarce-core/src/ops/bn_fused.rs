//! Training-mode batch norm as fused CPU kernels, first order fused, second order by
//! autodiff of the composed formula.
//!
//! `BnTrain(x, w, b)` normalises with the batch statistics in two passes. Its backward is
//! `BnGrad(dy, x, w)`, one fused kernel returning `(dx, dw, db)` concatenated. `BnGrad`'s own
//! backward (reached only when differentiating a gradient, e.g. MAML) differentiates the
//! textbook formula for `(dx, dw, db)` written with candle ops, so second-order values are
//! exact too (a third derivative through these ops is not supported: the second-order
//! product is returned as a plain tensor). On other devices the composed formula is used
//! throughout.

use super::channel::{channel_expand, channel_sum};
use super::gather::PlaneGather;
use super::linear::apply_adjoint;
use super::pool::{window_max, Win};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor, Var, WithDType};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Per-channel mean and `1/sqrt(var + eps)` and biased variance, from the forward.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub inv: Vec<f64>,
}

impl Stats {
    /// The per-channel affine map of the normalisation: `y = x·scale + shift` with
    /// `scale = w·inv` and `shift = b - mean·scale`.
    fn scale_shift<T: WithDType>(&self, w: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
        let scale: Vec<f64> = self
            .inv
            .iter()
            .zip(w)
            .map(|(i, w)| i * w.to_f64())
            .collect();
        let shift = (0..scale.len())
            .map(|k| T::from_f64(b[k].to_f64() - self.mean[k] * scale[k]))
            .collect();
        (scale.into_iter().map(T::from_f64).collect(), shift)
    }
}

pub(crate) fn dims3(shape: &Shape) -> (usize, usize, usize) {
    let d = shape.dims();
    (d[0], d[1], d[2..].iter().product())
}

/// `Σ f(p[i])`, accumulated in `T` over 8 independent lanes (so that it vectorises) and
/// returned in f64; callers add these per-plane sums in f64.
pub(crate) fn lanes<T: WithDType>(p: &[T], f: impl Fn(T) -> T) -> f64 {
    let mut acc = [T::zero(); 8];
    let chunks = p.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for i in 0..8 {
            acc[i] += f(ch[i]);
        }
    }
    acc.iter().map(|a| a.to_f64()).sum::<f64>() + rest.iter().map(|&v| f(v).to_f64()).sum::<f64>()
}

/// `Σ f(a[i], b[i])`, as [`lanes`].
pub(crate) fn lanes2<T: WithDType>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y).to_f64())
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += f(x[i], y[i]);
        }
    }
    acc.iter().map(|a| a.to_f64()).sum::<f64>() + tail
}

/// Two-pass per-channel statistics (per-plane sums in `T`, totals in f64).
fn stats<T: WithDType>(x: &[T], n: usize, c: usize, inner: usize, eps: f64) -> Stats {
    let count = (n * inner) as f64;
    let per: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |b| &x[(b * c + ch) * inner..][..inner]);
            let mean = planes().map(|p| lanes(p, |v| v)).sum::<f64>() / count;
            let m = T::from_f64(mean);
            let var = planes()
                .map(|p| lanes(p, |v| (v - m) * (v - m)))
                .sum::<f64>()
                / count;
            (mean, var)
        })
        .collect();
    let mean = per.iter().map(|p| p.0).collect();
    let var: Vec<f64> = per.iter().map(|p| p.1).collect();
    let inv = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    Stats { mean, var, inv }
}

/// Runs `f(plane_index, channel)` over every `[inner]` plane of a `[N, C, inner]` buffer.
fn per_plane<T: WithDType>(
    out: &mut [T],
    c: usize,
    inner: usize,
    f: impl Fn(usize, usize, &mut [T]) + Sync,
) {
    out.par_chunks_mut(inner)
        .enumerate()
        .for_each(|(p, o)| f(p, p % c, o));
}

struct BnTrain {
    eps: f64,
    stats: Arc<OnceLock<Stats>>,
}

impl CustomOp3 for BnTrain {
    fn name(&self) -> &'static str {
        "scarce-batch-norm"
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
        fn run<T: WithDType>(op: &BnTrain, x: &[T], w: &[T], b: &[T], shape: &Shape) -> Vec<T> {
            let (n, c, inner) = dims3(shape);
            let st = stats(x, n, c, inner, op.eps);
            let (scale, shift) = st.scale_shift(w, b);
            let _ = op.stats.set(st);
            let mut y = vec![T::zero(); x.len()];
            per_plane(&mut y, c, inner, |p, k, o| {
                for (o, &v) in o.iter_mut().zip(&x[p * inner..][..inner]) {
                    *o = v * scale[k] + shift[k];
                }
            });
            y
        }
        let out = on_floats!(self.name(), s1, l1, s2, l2, s3, l3, |x, w, b| run(
            self,
            x,
            w,
            b,
            l1.shape()
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = BnGrad {
            eps: self.eps,
            stats: self.stats.get().cloned(),
        };
        grads_via(op, dy, x, w)
    }
}

struct BnGrad {
    eps: f64,
    stats: Option<Stats>,
}

impl CustomOp3 for BnGrad {
    fn name(&self) -> &'static str {
        "scarce-batch-norm-grad"
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
        fn run<T: WithDType>(op: &BnGrad, dy: &[T], x: &[T], w: &[T], shape: &Shape) -> Vec<T> {
            let (n, c, inner) = dims3(shape);
            let st = op
                .stats
                .clone()
                .unwrap_or_else(|| stats(x, n, c, inner, op.eps));
            let count = (n * inner) as f64;
            // Per channel: Σ dy and Σ dy·xhat.
            let sums: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|k| {
                    let (m, inv) = (T::from_f64(st.mean[k]), st.inv[k]);
                    let (mut s, mut sx) = (0f64, 0f64);
                    for b in 0..n {
                        let o = (b * c + k) * inner;
                        let (g, v) = (&dy[o..o + inner], &x[o..o + inner]);
                        s += lanes(g, |g| g);
                        sx += lanes2(g, v, |g, v| g * (v - m));
                    }
                    sx *= inv;
                    (s, sx)
                })
                .collect();
            let mut out = vec![T::zero(); x.len() + 2 * c];
            let (dx, rest) = out.split_at_mut(x.len());
            // dx = w·inv·(dy - Σdy/count - xhat·Σ(dy·xhat)/count)
            let a: Vec<T> = (0..c)
                .map(|k| T::from_f64(w[k].to_f64() * st.inv[k]))
                .collect();
            let mdy: Vec<T> = (0..c).map(|k| T::from_f64(sums[k].0 / count)).collect();
            let mx: Vec<T> = (0..c).map(|k| T::from_f64(st.mean[k])).collect();
            let q: Vec<T> = (0..c)
                .map(|k| T::from_f64(sums[k].1 / count * st.inv[k]))
                .collect();
            per_plane(dx, c, inner, |p, k, o| {
                let (g, v) = (&dy[p * inner..][..inner], &x[p * inner..][..inner]);
                for ((o, &g), &v) in o.iter_mut().zip(g).zip(v) {
                    *o = a[k] * (g - mdy[k] - (v - mx[k]) * q[k]);
                }
            });
            for k in 0..c {
                rest[k] = T::from_f64(sums[k].1);
                rest[c + k] = T::from_f64(sums[k].0);
            }
            out
        }
        let out = on_floats!(self.name(), s1, l1, s2, l2, s3, l3, |dy, x, w| run(
            self,
            dy,
            x,
            w,
            l2.shape()
        ));
        let c = l3.shape().elem_count();
        Ok((out, Shape::from(l2.shape().elem_count() + 2 * c)))
    }

    fn bwd(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Vector-Jacobian product of the composed (dx, dw, db) formula, by autodiff.
        composed_vjp(dy, x, w, g, self.eps, |dy| Ok(dy.clone()))
    }
}

/// Runs `$body` with the three storages as `&[f32]` or as `&[f64]` slices and wraps the
/// result back into a `CpuStorage`; mixed or other dtypes are an error naming the op.
macro_rules! on_floats {
    ($name:expr, $s1:ident, $l1:ident, $s2:ident, $l2:ident, $s3:ident, $l3:ident, |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match (slice($s1, $l1)?, slice($s2, $l2)?, slice($s3, $l3)?) {
            (Slice::F32($a), Slice::F32($b), Slice::F32($c)) => CpuStorage::F32($body),
            (Slice::F64($a), Slice::F64($b), Slice::F64($c)) => CpuStorage::F64($body),
            _ => bail!("{}: inputs must all be f32 or all f64", $name),
        }
    };
}
pub(crate) use on_floats;

pub(crate) enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<Slice<'a>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("fused norm: inputs must be contiguous")
    };
    Ok(match s {
        CpuStorage::F32(v) => Slice::F32(&v[a..b]),
        CpuStorage::F64(v) => Slice::F64(&v[a..b]),
        _ => bail!("fused norm: only f32 and f64 are supported on the CPU"),
    })
}

/// Gradients for `(x, w, b)` or `(dy, x, w)`.
type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// Runs a gradient op `(dy, x, w) -> [dx, dw, db]` and splits its flat output.
fn grads_via<C: CustomOp3 + Send + Sync + 'static>(
    op: C,
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
) -> candle_core::Result<Grads3> {
    let (numel, c) = (x.elem_count(), w.elem_count());
    let flat = dy
        .contiguous()?
        .apply_op3(&x.contiguous()?, &w.contiguous()?, op)?;
    Ok((
        Some(flat.narrow(0, 0, numel)?.reshape(x.shape())?),
        Some(flat.narrow(0, numel, c)?),
        Some(flat.narrow(0, numel + c, c)?),
    ))
}

/// The vector-Jacobian product, with `g` (`[dx, dw, db]` flat), of the composed batch-norm
/// gradient formula applied to `(spread(dy), x, w)`, by autodiff; the backward of the fused
/// gradient ops.
fn composed_vjp(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    eps: f64,
    spread: impl Fn(&Tensor) -> crate::Result<Tensor>,
) -> candle_core::Result<Grads3> {
    let wrap = candle_core::Error::wrap;
    let var = |t: &Tensor| -> candle_core::Result<Tensor> {
        Ok(Var::from_tensor(&t.detach())?.as_tensor().clone())
    };
    let (dyv, xv, wv) = (var(dy)?, var(x)?, var(w)?);
    let (dx, dw, db) = composed_grad(&spread(&dyv).map_err(wrap)?, &xv, &wv, eps).map_err(wrap)?;
    let (numel, c) = (x.elem_count(), w.elem_count());
    let g = g.detach();
    let s = ((dx * g.narrow(0, 0, numel)?.reshape(x.shape())?)?.sum_all()?
        + (dw * g.narrow(0, numel, c)?)?.sum_all()?)?
    .add(&(db * g.narrow(0, numel + c, c)?)?.sum_all()?)?;
    let store = s.backward()?;
    let get = |t: &Tensor| store.get(t).cloned();
    Ok((get(&dyv), get(&xv), get(&wv)))
}

/// The batch-norm input, weight and bias gradients written with candle ops.
pub(crate) fn composed_grad(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    eps: f64,
) -> crate::Result<(Tensor, Tensor, Tensor)> {
    let c = x.dim(1)?;
    let count = (x.elem_count() / c) as f64;
    let mean = (channel_sum(x)? / count)?;
    let xc = (x - channel_expand(&mean, x.dims())?)?;
    let inv = ((channel_sum(&xc.sqr()?)? / count)? + eps)?
        .sqrt()?
        .recip()?;
    let xhat = (xc * channel_expand(&inv, x.dims())?)?;
    let db = channel_sum(dy)?;
    let dw = channel_sum(&(dy * &xhat)?)?;
    let centred = ((dy - channel_expand(&(&db / count)?, x.dims())?)?
        - (xhat * channel_expand(&(&dw / count)?, x.dims())?)?)?;
    let dx = (centred * channel_expand(&(w * inv)?, x.dims())?)?;
    Ok((dx, dw, db))
}

/// Fused training-mode batch norm on the CPU: `(y, stats)`. `w`, `b` are `[C]`.
pub(crate) fn bn_train_cpu(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> crate::Result<(Tensor, Stats)> {
    let cell = Arc::new(OnceLock::new());
    let y = x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        BnTrain {
            eps,
            stats: cell.clone(),
        },
    )?;
    let st = cell
        .get()
        .cloned()
        .ok_or_else(|| crate::Error::param("x", "batch norm produced no statistics"))?;
    Ok((y, st))
}

/// Training-mode batch norm followed by a max pool, fused: the normalised tensor is never
/// written. Forward: statistics (two passes), then each window's maximum of `x·scale + shift`.
/// Backward (`BnPoolGrad`): the pooled gradient is sparse (one entry per window), so the
/// per-channel sums read only the window maxima and `dx` is one dense pass plus the
/// scattered entries.
struct BnPool {
    eps: f64,
    wins: [Win; 3],
    out_dims: Vec<usize>,
    stats: Arc<OnceLock<Stats>>,
    argmax: Arc<OnceLock<Arc<Vec<u32>>>>,
}

impl CustomOp3 for BnPool {
    fn name(&self) -> &'static str {
        "scarce-batch-norm-max-pool"
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
        fn run<T: WithDType>(op: &BnPool, x: &[T], w: &[T], b: &[T], shape: &Shape) -> Vec<T> {
            let (n, c, inner) = dims3(shape);
            let st = stats(x, n, c, inner, op.eps);
            let (scale, shift) = st.scale_shift(w, b);
            let (y, idx) = window_max(x, n * c, &op.wins, Some((&scale, &shift)));
            let _ = op.stats.set(st);
            let _ = op.argmax.set(Arc::new(idx));
            y
        }
        let out = on_floats!(self.name(), s1, l1, s2, l2, s3, l3, |x, w, b| run(
            self,
            x,
            w,
            b,
            l1.shape()
        ));
        Ok((out, Shape::from(self.out_dims.clone())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (Some(stats), Some(argmax)) = (self.stats.get(), self.argmax.get()) else {
            bail!("scarce-batch-norm-max-pool: backward before forward")
        };
        let op = BnPoolGrad {
            eps: self.eps,
            stats: stats.clone(),
            argmax: argmax.clone(),
        };
        grads_via(op, dy, x, w)
    }
}

/// `(dy, x, w) -> [dx, dw, db]` for [`BnPool`], the pooled gradient `dy` entering at the
/// stored window maxima.
struct BnPoolGrad {
    eps: f64,
    stats: Stats,
    argmax: Arc<Vec<u32>>,
}

impl CustomOp3 for BnPoolGrad {
    fn name(&self) -> &'static str {
        "scarce-batch-norm-max-pool-grad"
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
        fn run<T: WithDType>(op: &BnPoolGrad, dy: &[T], x: &[T], w: &[T], shape: &Shape) -> Vec<T> {
            let (n, c, inner) = dims3(shape);
            let out_plane = dy.len() / (n * c);
            let (st, idx) = (&op.stats, &op.argmax);
            let count = (n * inner) as f64;
            // Per channel: Σ dy and Σ dy·xhat over the window maxima.
            let sums: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|k| {
                    let (m, inv) = (st.mean[k], st.inv[k]);
                    let (mut s, mut sx) = (0f64, 0f64);
                    for b in 0..n {
                        let p = b * c + k;
                        let (g, ix) = (
                            &dy[p * out_plane..][..out_plane],
                            &idx[p * out_plane..][..out_plane],
                        );
                        let xp = &x[p * inner..][..inner];
                        for (&g, &i) in g.iter().zip(ix) {
                            let g = g.to_f64();
                            s += g;
                            sx += g * (xp[i as usize].to_f64() - m) * inv;
                        }
                    }
                    (s, sx)
                })
                .collect();
            // dx = a·(dy_dense - Σdy/count - xhat·Σ(dy·xhat)/count) = α + β·x, plus a·dy at
            // the maxima.
            let a: Vec<f64> = (0..c).map(|k| w[k].to_f64() * st.inv[k]).collect();
            let beta: Vec<T> = (0..c)
                .map(|k| T::from_f64(-a[k] * st.inv[k] * sums[k].1 / count))
                .collect();
            let alpha: Vec<T> = (0..c)
                .map(|k| {
                    T::from_f64(
                        -a[k] * sums[k].0 / count
                            + a[k] * st.mean[k] * st.inv[k] * sums[k].1 / count,
                    )
                })
                .collect();
            let a_t: Vec<T> = a.iter().map(|&v| T::from_f64(v)).collect();
            let mut out = vec![T::zero(); x.len() + 2 * c];
            let (dx, rest) = out.split_at_mut(x.len());
            per_plane(dx, c, inner, |p, k, o| {
                for (o, &v) in o.iter_mut().zip(&x[p * inner..][..inner]) {
                    *o = alpha[k] + beta[k] * v;
                }
                for (&g, &i) in dy[p * out_plane..][..out_plane]
                    .iter()
                    .zip(&idx[p * out_plane..][..out_plane])
                {
                    o[i as usize] += a_t[k] * g;
                }
            });
            for k in 0..c {
                rest[k] = T::from_f64(sums[k].1);
                rest[c + k] = T::from_f64(sums[k].0);
            }
            out
        }
        let out = on_floats!(self.name(), s1, l1, s2, l2, s3, l3, |dy, x, w| run(
            self,
            dy,
            x,
            w,
            l2.shape()
        ));
        Ok((
            out,
            Shape::from(l2.shape().elem_count() + 2 * l3.shape().elem_count()),
        ))
    }

    fn bwd(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Vector-Jacobian product of the composed formula: scatter dy to the maxima, then
        // batch norm's (dx, dw, db), differentiated by autodiff.
        let scatter = Arc::new(PlaneGather {
            input: x.dims().to_vec(),
            output: dy.dims().to_vec(),
            planes: x.dim(0)? * x.dim(1)?,
            idx: self.argmax.clone(),
        });
        composed_vjp(dy, x, w, g, self.eps, |dy| apply_adjoint(dy, &scatter))
    }
}

/// Fused training-mode batch norm + max pool on the CPU: `(y, stats)`.
pub(crate) fn bn_max_pool_cpu(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    wins: [Win; 3],
    out_dims: Vec<usize>,
) -> crate::Result<(Tensor, Stats)> {
    let cell = Arc::new(OnceLock::new());
    let op = BnPool {
        eps,
        wins,
        out_dims,
        stats: cell.clone(),
        argmax: Arc::new(OnceLock::new()),
    };
    let y = x
        .contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)?;
    let st = cell
        .get()
        .cloned()
        .ok_or_else(|| crate::Error::param("x", "batch norm produced no statistics"))?;
    Ok((y, st))
}
