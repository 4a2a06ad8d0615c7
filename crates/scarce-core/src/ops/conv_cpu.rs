//! Convolution on the CPU: per-sample `im2col` into a cache-sized buffer and a direct `gemm`
//! call, for the forward and both gradients.
//!
//! The three ops are the partial derivatives of one trilinear form
//! `T(dy, w, x) = Σ dy[n,o,l] · w[o,c,k] · x[n,c,pos(l,k)]`:
//! `Forward(x, w) = ∂T/∂dy`, `InputGrad(dy, w) = ∂T/∂x`, `WeightGrad(dy, x) = ∂T/∂w`. The
//! backward of each is two of the others, so differentiation is closed over the three and
//! exact at every order, while each runs as fused kernels: no `[C·k, N·L]` column matrix, no
//! transpose, nothing but the output allocated.

#![allow(unsafe_code)] // gemm takes raw pointers and strides; each call is bounds-reasoned below.

use super::channel::{channel_sum, sample_channel_sum};
use super::direct;
use super::im2col::{col2im_into, im2col_into, Geom};
use super::par;
#[cfg(target_arch = "x86_64")]
use super::winograd;
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};
use gemm::{gemm, Parallelism};
use std::sync::Arc;

/// A convolution's full shape: geometry (for all `N` samples), output channels, groups.
#[derive(Debug, Clone)]
pub(crate) struct ConvSpec {
    pub geom: Geom,
    pub out_channels: usize,
    pub groups: usize,
}

impl ConvSpec {
    /// The same geometry for one sample.
    fn one(&self) -> Geom {
        Geom {
            n: 1,
            ..self.geom.clone()
        }
    }
    fn x_shape(&self) -> Shape {
        let g = &self.geom;
        Shape::from(vec![g.n, g.c, g.input[0], g.input[1], g.input[2]])
    }
    fn y_shape(&self) -> Shape {
        let g = &self.geom;
        Shape::from(vec![
            g.n,
            self.out_channels,
            g.output[0],
            g.output[1],
            g.output[2],
        ])
    }
    fn w_shape(&self) -> Shape {
        let g = &self.geom;
        Shape::from(vec![
            self.out_channels,
            g.c / self.groups,
            g.kernel[0],
            g.kernel[1],
            g.kernel[2],
        ])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `(x, w) -> y`
    Forward,
    /// `(dy, w) -> dx`
    InputGrad,
    /// `(dy, x) -> dw`
    WeightGrad,
}

struct ConvOp {
    spec: Arc<ConvSpec>,
    kind: Kind,
}

/// `dst (m×n) [+]= lhs (m×k) · rhs (k×n)`, all given by pointer and (row, column) strides.
///
/// # Safety
/// Every pointer must be valid for the elements its shape and strides address.
#[allow(clippy::too_many_arguments)]
unsafe fn mm<T: 'static + WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: (*mut T, isize, isize),
    accumulate: bool,
    lhs: (*const T, isize, isize),
    rhs: (*const T, isize, isize),
) {
    // gemm computes dst = alpha·dst + beta·lhs·rhs and takes column stride before row stride.
    gemm(
        m,
        n,
        k,
        dst.0,
        dst.2,
        dst.1,
        accumulate,
        lhs.0,
        lhs.2,
        lhs.1,
        rhs.0,
        rhs.2,
        rhs.1,
        T::one(),
        T::one(),
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// Sample `n`'s bias: `b` holds `o` values shared by every sample, or `[N, o]`, a row each.
pub(crate) fn bias_row<T>(b: &[T], n: usize, o: usize) -> &[T] {
    if b.len() == o {
        b
    } else {
        &b[n * o..][..o]
    }
}

impl ConvSpec {
    /// `y[n] = W_g · cols_g(x[n]) (+ b)` for every sample and group.
    fn forward<T: WithDType>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        let one = self.one();
        let (o, groups, l) = (self.out_channels, self.groups, one.out_len());
        let (og, kg) = (o / groups, one.rows() / groups);
        let mut y = vec![T::zero(); self.geom.n * o * l];
        par::chunks_mut(&mut y, o * l, |n, yn| {
            let mut cols = vec![T::zero(); one.rows() * l];
            im2col_into(
                &one,
                &x[n * one.c * one.in_len()..][..one.c * one.in_len()],
                &mut cols,
                false,
            );
            if let Some(b) = b {
                yn.chunks_mut(l)
                    .zip(bias_row(b, n, o))
                    .for_each(|(row, &b)| row.fill(b));
            }
            for gi in 0..groups {
                // SAFETY: yn holds o·l, w holds o·kg, cols holds groups·kg·l elements.
                unsafe {
                    mm(
                        (og, l, kg),
                        (yn.as_mut_ptr().add(gi * og * l), l as isize, 1),
                        b.is_some(),
                        (w.as_ptr().add(gi * og * kg), kg as isize, 1),
                        (cols.as_ptr().add(gi * kg * l), l as isize, 1),
                    )
                }
            }
        });
        y
    }

    /// For stride 1, the input gradient is itself a correlation: of `dy`, padded by
    /// `d(k-1) - p`, with the kernel flipped and its channel axes swapped. Returns that
    /// correlation's single-sample geometry when it applies.
    fn flipped_geom(&self) -> Option<Geom> {
        let g = &self.geom;
        let mut pad = [0; 3];
        for (a, p) in pad.iter_mut().enumerate() {
            let reach = g.dil[a] * (g.kernel[a] - 1);
            if g.stride[a] != 1 || g.pad[a] > reach {
                return None;
            }
            *p = reach - g.pad[a];
        }
        Some(Geom {
            n: 1,
            c: self.out_channels,
            input: g.output,
            kernel: g.kernel,
            stride: [1; 3],
            pad,
            dil: g.dil,
            output: g.input,
        })
    }

    /// `W'_g[ci, (oo, k)] = W[g·Og + oo, ci, K-1-k]`: the kernel of [`Self::flipped_geom`].
    fn flipped_kernel<T: WithDType>(&self, w: &[T]) -> Vec<T> {
        let (o, groups) = (self.out_channels, self.groups);
        let (og, cg) = (o / groups, self.geom.c / groups);
        let kk = self.geom.kernel_len();
        let mut wf = vec![T::zero(); w.len()];
        for gi in 0..groups {
            for ci in 0..cg {
                for oo in 0..og {
                    let src = &w[((gi * og + oo) * cg + ci) * kk..][..kk];
                    let dst = &mut wf[((gi * cg + ci) * og + oo) * kk..][..kk];
                    // Reversing the flat kernel index reverses every kernel axis at once.
                    dst.iter_mut()
                        .zip(src.iter().rev())
                        .for_each(|(d, &s)| *d = s);
                }
            }
        }
        wf
    }

    /// Stride 1: `dx_g[n] = W'_g · cols'_g(dy[n])`, a gemm with the long inner dimension
    /// `O/g·k` and no scatter-add.
    fn input_grad_by_correlation<T: WithDType>(&self, dy: &[T], w: &[T], fg: &Geom) -> Vec<T> {
        let (groups, cg) = (self.groups, self.geom.c / self.groups);
        let (l_in, l_out) = (fg.out_len(), fg.in_len());
        let kg = fg.rows() / groups;
        let wf = self.flipped_kernel(w);
        let yn_len = self.out_channels * l_out;
        let mut dx = vec![T::zero(); self.geom.n * self.geom.c * l_in];
        par::chunks_mut(&mut dx, self.geom.c * l_in, |n, dxn| {
            let mut cols = vec![T::zero(); fg.rows() * l_in];
            im2col_into(fg, &dy[n * yn_len..][..yn_len], &mut cols, false);
            for gi in 0..groups {
                // SAFETY: dxn holds c·l_in, wf holds c·kg, cols holds groups·kg·l_in.
                unsafe {
                    mm(
                        (cg, l_in, kg),
                        (dxn.as_mut_ptr().add(gi * cg * l_in), l_in as isize, 1),
                        false,
                        (wf.as_ptr().add(gi * cg * kg), kg as isize, 1),
                        (cols.as_ptr().add(gi * kg * l_in), l_in as isize, 1),
                    )
                }
            }
        });
        dx
    }

    /// `dx[n] = col2im(W_gᵀ · dy_g[n])`, or for stride 1 the equivalent correlation.
    fn input_grad<T: WithDType>(&self, dy: &[T], w: &[T]) -> Vec<T> {
        if let Some(fg) = self.flipped_geom() {
            return self.input_grad_by_correlation(dy, w, &fg);
        }
        let one = self.one();
        let (o, groups, l) = (self.out_channels, self.groups, one.out_len());
        let (og, kg) = (o / groups, one.rows() / groups);
        let xn_len = one.c * one.in_len();
        let mut dx = vec![T::zero(); self.geom.n * xn_len];
        par::chunks_mut(&mut dx, xn_len, |n, dxn| {
            let mut cols = vec![T::zero(); one.rows() * l];
            let dyn_ = &dy[n * o * l..][..o * l];
            for gi in 0..groups {
                // SAFETY: cols holds groups·kg·l, w holds o·kg, dyn_ holds o·l elements.
                unsafe {
                    mm(
                        (kg, l, og),
                        (cols.as_mut_ptr().add(gi * kg * l), l as isize, 1),
                        false,
                        (w.as_ptr().add(gi * og * kg), 1, kg as isize),
                        (dyn_.as_ptr().add(gi * og * l), l as isize, 1),
                    )
                }
            }
            col2im_into(&one, &cols, dxn, false);
        });
        dx
    }

    /// `dW_g = Σ_n dy_g[n] · cols_g(x[n])ᵀ`, in fixed partial sums ([`par::partial_sums`]).
    fn weight_grad<T: WithDType>(&self, dy: &[T], x: &[T]) -> Vec<T> {
        let one = self.one();
        let (o, groups, l) = (self.out_channels, self.groups, one.out_len());
        let (og, kg) = (o / groups, one.rows() / groups);
        let xn_len = one.c * one.in_len();
        par::partial_sums(
            self.geom.n,
            par::SAMPLES_PER_PARTIAL,
            o * kg,
            |samples, dw: &mut [T]| {
                let mut cols = vec![T::zero(); one.rows() * l];
                for n in samples {
                    im2col_into(&one, &x[n * xn_len..][..xn_len], &mut cols, false);
                    for gi in 0..groups {
                        // SAFETY: dw holds o·kg, dy holds n·o·l, cols holds groups·kg·l.
                        unsafe {
                            mm(
                                (og, kg, l),
                                (dw.as_mut_ptr().add(gi * og * kg), kg as isize, 1),
                                true,
                                (dy.as_ptr().add(n * o * l + gi * og * l), l as isize, 1),
                                (cols.as_ptr().add(gi * kg * l), 1, l as isize),
                            )
                        }
                    }
                }
            },
        )
    }
}

/// An f32 stride-1 convolution on the fastest kernel that takes it: Winograd F(2×2, 3×3)
/// for 3×3 kernels on wide enough maps, else the direct kernel (`None` for other strides).
fn fast_forward(
    k: direct::Avx2,
    g: &Geom,
    out_channels: usize,
    groups: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if let Some(y) = winograd::forward(k, g, out_channels, groups, x, w, b) {
        return Some(y);
    }
    direct::forward(k, g, out_channels, groups, x, w, b)
}

impl ConvOp {
    /// The f32 op on the direct stride-1 kernels, where the CPU and geometry allow.
    fn direct(&self, a: &[f32], b: &[f32]) -> Option<Vec<f32>> {
        let k = direct::Avx2::detect()?;
        let sp = &self.spec;
        match self.kind {
            Kind::Forward => fast_forward(k, &sp.geom, sp.out_channels, sp.groups, a, b, None),
            Kind::InputGrad => {
                let fg = Geom {
                    n: sp.geom.n,
                    ..sp.flipped_geom()?
                };
                let wf = sp.flipped_kernel(b);
                fast_forward(k, &fg, sp.geom.c, sp.groups, a, &wf, None)
            }
            Kind::WeightGrad => {
                #[cfg(target_arch = "x86_64")]
                if let Some(dw) =
                    winograd::weight_grad(k, &sp.geom, sp.out_channels, sp.groups, a, b)
                {
                    return Some(dw);
                }
                direct::weight_grad(k, &sp.geom, sp.out_channels, sp.groups, a, b)
            }
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Forward => "scarce-conv",
            Kind::InputGrad => "scarce-conv-input-grad",
            Kind::WeightGrad => "scarce-conv-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let sp = &self.spec;
        let (shape1, shape2, out) = match self.kind {
            Kind::Forward => (sp.x_shape(), sp.w_shape(), sp.y_shape()),
            Kind::InputGrad => (sp.y_shape(), sp.w_shape(), sp.x_shape()),
            Kind::WeightGrad => (sp.y_shape(), sp.x_shape(), sp.w_shape()),
        };
        if l1.shape() != &shape1 || l2.shape() != &shape2 {
            bail!(
                "{}: expected shapes {shape1:?} and {shape2:?}, got {:?} and {:?}",
                self.name(),
                l1.shape(),
                l2.shape()
            )
        }
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("{}: inputs must be contiguous", self.name())
        };
        fn run<T: WithDType>(op: &ConvOp, a: &[T], b: &[T]) -> Vec<T> {
            match op.kind {
                Kind::Forward => op.spec.forward(a, b, None),
                Kind::InputGrad => op.spec.input_grad(a, b),
                Kind::WeightGrad => op.spec.weight_grad(a, b),
            }
        }
        let y = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let (a, b) = (&a[a0..a1], &b[b0..b1]);
                CpuStorage::F32(self.direct(a, b).unwrap_or_else(|| run(self, a, b)))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64(run(self, &a[a0..a1], &b[b0..b1]))
            }
            _ => bail!("{}: inputs must both be f32 or both f64", self.name()),
        };
        Ok((y, out))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // A gradient is only computed for an argument that autodiff tracks (data inputs
        // such as the images of a first layer need none).
        let op = |needed: &Tensor,
                  kind,
                  p: &Tensor,
                  q: &Tensor|
         -> candle_core::Result<Option<Tensor>> {
            if needed.track_op() {
                run(&self.spec, kind, p, q).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(match self.kind {
            // (x, w): dx = ∂T/∂x(g, w), dw = ∂T/∂w(g, x)
            Kind::Forward => (
                op(a, Kind::InputGrad, g, b)?,
                op(b, Kind::WeightGrad, g, a)?,
            ),
            // (dy, w): d dy = ∂T/∂dy(x := g, w), dw = ∂T/∂w(dy, x := g)
            Kind::InputGrad => (op(a, Kind::Forward, g, b)?, op(b, Kind::WeightGrad, a, g)?),
            // (dy, x): d dy = ∂T/∂dy(x, w := g), dx = ∂T/∂x(dy, w := g)
            Kind::WeightGrad => (op(a, Kind::Forward, b, g)?, op(b, Kind::InputGrad, a, g)?),
        })
    }
}

/// The forward with a bias added in place (the output starts as the bias and the product
/// accumulates onto it): `(x, w, b) -> y`, backward `(∂T/∂x(g, w), ∂T/∂w(g, x), Σ g)`. The
/// bias is `[O]`, or `[N, O]` for a bias per sample (its gradient then sums `g` over space
/// only).
struct ConvBiasOp {
    spec: Arc<ConvSpec>,
}

impl CustomOp3 for ConvBiasOp {
    fn name(&self) -> &'static str {
        "scarce-conv-bias"
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
        let sp = &self.spec;
        let o = sp.out_channels;
        if l1.shape() != &sp.x_shape()
            || l2.shape() != &sp.w_shape()
            || (l3.dims() != [o] && l3.dims() != [sp.geom.n, o])
        {
            bail!(
                "scarce-conv-bias: shapes {:?}, {:?}, {:?} do not fit",
                l1.shape(),
                l2.shape(),
                l3.shape()
            )
        }
        let (Some((a0, a1)), Some((b0, b1)), Some((c0, c1))) = (
            l1.contiguous_offsets(),
            l2.contiguous_offsets(),
            l3.contiguous_offsets(),
        ) else {
            bail!("scarce-conv-bias: inputs must be contiguous")
        };
        let y = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (x, w, b) = (&x[a0..a1], &w[b0..b1], Some(&b[c0..c1]));
                let fast = direct::Avx2::detect()
                    .and_then(|k| fast_forward(k, &sp.geom, sp.out_channels, sp.groups, x, w, b));
                CpuStorage::F32(fast.unwrap_or_else(|| sp.forward(x, w, b)))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(sp.forward(&x[a0..a1], &w[b0..b1], Some(&b[c0..c1])))
            }
            _ => bail!("scarce-conv-bias: inputs must all be f32 or all f64"),
        };
        Ok((y, sp.y_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = if x.track_op() {
            Some(run(&self.spec, Kind::InputGrad, g, w)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(run(&self.spec, Kind::WeightGrad, g, x)?)
        } else {
            None
        };
        let db = if b.rank() == 2 {
            sample_channel_sum(g)
        } else {
            channel_sum(g)
        };
        Ok((dx, dw, Some(db.map_err(candle_core::Error::wrap)?)))
    }
}

fn run(spec: &Arc<ConvSpec>, kind: Kind, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    a.contiguous()?.apply_op2(
        &b.contiguous()?,
        ConvOp {
            spec: spec.clone(),
            kind,
        },
    )
}

/// `y = conv(x, w) + b` with `x` `[N, C, D, H, W]`, `w` `[O, C/groups, kD, kH, kW]`, `b` `[O]`
/// or `[N, O]`.
pub(crate) fn conv_forward(
    spec: ConvSpec,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> crate::Result<Tensor> {
    let spec = Arc::new(spec);
    Ok(match b {
        None => run(&spec, Kind::Forward, x, w)?,
        Some(b) => {
            x.contiguous()?
                .apply_op3(&w.contiguous()?, &b.contiguous()?, ConvBiasOp { spec })?
        }
    })
}

/// The transposed convolution `dx = ∂T/∂x(y, w)`: `y` `[N, O, Do, Ho, Wo]` → `[N, C, D, H, W]`.
pub(crate) fn conv_input_grad(spec: ConvSpec, y: &Tensor, w: &Tensor) -> crate::Result<Tensor> {
    Ok(run(&Arc::new(spec), Kind::InputGrad, y, w)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in (-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&v| v as f32).collect()
    }

    /// Largest difference relative to the largest reference magnitude.
    fn rel_err(got: &[f32], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max)
            / scale
    }

    /// Winograd F(2×2, 3×3), forward and weight gradient, against the f64 column-matrix
    /// path: odd and even sizes (a last
    /// tile row or column half outside), paddings 0–2, channel counts off the tile's
    /// multiples, shared and per-sample biases, and more tiles than one task holds.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn winograd_matches_the_column_path() {
        let Some(k) = direct::Avx2::detect() else {
            eprintln!("no AVX2 + FMA here: the Winograd kernel does not run");
            return;
        };
        // (n, c, o, [h, w], pad)
        let cases: &[(usize, usize, usize, [usize; 2], usize)] = &[
            (2, 8, 8, [16, 16], 1),
            (3, 13, 11, [9, 17], 1),
            (1, 32, 20, [34, 18], 0),
            (2, 9, 37, [7, 21], 2),
            (2, 64, 64, [32, 32], 1),
        ];
        for (i, &(n, c, o, [h, w], pad)) in cases.iter().enumerate() {
            let geom = Geom {
                n,
                c,
                input: [1, h, w],
                kernel: [1, 3, 3],
                stride: [1; 3],
                pad: [0, pad, pad],
                dil: [1; 3],
                output: [1, h + 2 * pad - 2, w + 2 * pad - 2],
            };
            assert!(
                winograd::applies(&geom, o, 1),
                "case {i} must take Winograd"
            );
            let spec = ConvSpec {
                geom: geom.clone(),
                out_channels: o,
                groups: 1,
            };
            let x = values(n * c * h * w, 400 + i as u64);
            let wt = values(o * c * 9, 500 + i as u64);
            let b = values(if i % 2 == 1 { n * o } else { o }, 600 + i as u64);
            let y = winograd::forward(k, &geom, o, 1, &f32s(&x), &f32s(&wt), Some(&f32s(&b)));
            let e = rel_err(&y.unwrap(), &spec.forward(&x, &wt, Some(&b)));
            let dy = values(n * o * geom.out_len(), 700 + i as u64);
            let dw = winograd::weight_grad(k, &geom, o, 1, &f32s(&dy), &f32s(&x));
            let ew = rel_err(&dw.unwrap(), &spec.weight_grad(&dy, &x));
            eprintln!("winograd case {i}: forward {e:e}, weight gradient {ew:e}");
            assert!(e < 1e-5, "case {i}: Winograd forward off by {e:e}");
            assert!(
                ew < 1e-5,
                "case {i}: Winograd weight gradient off by {ew:e}"
            );
        }
        // Grouped, strided, dilated, 3D and narrow convolutions are not its to take.
        let mut g = Geom {
            n: 1,
            c: 8,
            input: [1, 16, 16],
            kernel: [1, 3, 3],
            stride: [1; 3],
            pad: [0, 1, 1],
            dil: [1; 3],
            output: [1, 16, 16],
        };
        assert!(!winograd::applies(&g, 8, 2));
        assert!(!winograd::applies(&g, 4, 1));
        g.dil = [1, 2, 2];
        assert!(!winograd::applies(&g, 8, 1));
        g.dil = [1; 3];
        g.output = [1, 16, 8];
        assert!(!winograd::applies(&g, 8, 1));
    }

    /// The direct f32 kernels against the f64 column-matrix path (itself checked against
    /// PyTorch by the ops fixtures) on every stride-1 shape the UNets and backbones use,
    /// plus groups, dilation, odd sizes, a single sample and 3D.
    #[test]
    fn direct_kernels_match_the_column_path() {
        let Some(_) = direct::Avx2::detect() else {
            eprintln!("no AVX2 + FMA here: the direct kernels do not run");
            return;
        };
        // (n, c, o, groups, input [d, h, w], kernel, pad, dil)
        type Case = (
            usize,
            usize,
            usize,
            usize,
            [usize; 3],
            [usize; 3],
            [usize; 3],
            [usize; 3],
        );
        let cases: &[Case] = &[
            (3, 5, 7, 1, [1, 9, 11], [1, 3, 3], [0, 1, 1], [1; 3]),
            (2, 32, 32, 1, [1, 8, 8], [1, 3, 3], [0, 1, 1], [1; 3]),
            (1, 3, 13, 1, [1, 17, 5], [1, 3, 3], [0, 0, 2], [1; 3]),
            (2, 6, 4, 2, [1, 7, 7], [1, 3, 3], [0, 2, 2], [1, 2, 2]),
            (2, 8, 3, 1, [1, 6, 6], [1, 1, 1], [0; 3], [1; 3]),
            (2, 4, 6, 1, [1, 5, 9], [1, 5, 2], [0, 2, 1], [1; 3]),
            (2, 3, 5, 1, [4, 5, 6], [3, 3, 3], [1, 1, 1], [1; 3]),
            (1, 1, 1, 1, [1, 4, 4], [1, 3, 3], [0, 1, 1], [1; 3]),
            // Rows of 16 outputs and 11 output channels: 8×8 transposes and a tail.
            (2, 3, 11, 1, [1, 4, 16], [1, 3, 3], [0, 1, 1], [1; 3]),
            // More kernel rows than one packed panel (direct::KC) and more grid positions
            // than one stretch of the weight gradient.
            (2, 40, 20, 1, [1, 12, 20], [1, 3, 3], [0, 1, 1], [1; 3]),
        ];
        for (i, &(n, c, o, groups, input, kernel, pad, dil)) in cases.iter().enumerate() {
            let output = std::array::from_fn(|a| input[a] + 2 * pad[a] - dil[a] * (kernel[a] - 1));
            let spec = Arc::new(ConvSpec {
                geom: Geom {
                    n,
                    c,
                    input,
                    kernel,
                    stride: [1; 3],
                    pad,
                    dil,
                    output,
                },
                out_channels: o,
                groups,
            });
            let g = &spec.geom;
            let x = values(n * c * g.in_len(), 1 + i as u64);
            let w = values(o * (c / groups) * g.kernel_len(), 100 + i as u64);
            // Odd cases take a bias row per sample.
            let b = values(if i % 2 == 1 { n * o } else { o }, 200 + i as u64);
            let dy = values(n * o * g.out_len(), 300 + i as u64);
            let k = direct::Avx2::detect().unwrap();

            let y = direct::forward(k, g, o, groups, &f32s(&x), &f32s(&w), Some(&f32s(&b)));
            let want = spec.forward(&x, &w, Some(&b));
            let e = rel_err(&y.unwrap(), &want);
            assert!(e < 1e-5, "case {i}: forward off by {e:e}");

            let op = |kind| ConvOp {
                spec: spec.clone(),
                kind,
            };
            let dx = op(Kind::InputGrad).direct(&f32s(&dy), &f32s(&w)).unwrap();
            let e = rel_err(&dx, &spec.input_grad(&dy, &w));
            assert!(e < 1e-5, "case {i}: input gradient off by {e:e}");

            let dw = op(Kind::WeightGrad).direct(&f32s(&dy), &f32s(&x)).unwrap();
            let e = rel_err(&dw, &spec.weight_grad(&dy, &x));
            assert!(e < 1e-5, "case {i}: weight gradient off by {e:e}");
        }
    }
}
