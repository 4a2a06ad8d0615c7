//! Convolutions: conv2d, conv3d and conv_transpose2d as `im2col` + matmul.
//!
//! One code path for 2D and 3D (2D is 3D with depth 1). The forward is
//! `W[g, O/g, C/g·k] @ cols[g, C/g·k, N·L]`; the backward that candle derives from it is two
//! matmuls and one `col2im`, and the second order is again matmuls, `im2col` and `col2im`, so
//! every order is exact and runs at matrix-multiply speed. Candle's own conv backward (a
//! direct loop on the CPU) is never used.

use super::channel::channel_expand;
use super::conv_cpu::{conv_forward, conv_input_grad, ConvSpec};
use super::im2col::{col2im, im2col, Geom};
use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// Settings of a convolution over `D` spatial axes (PyTorch's meaning and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvOpts<const D: usize> {
    /// Step between output positions, per axis.
    pub stride: [usize; D],
    /// Zero padding added on both sides, per axis.
    pub padding: [usize; D],
    /// Spacing between kernel taps, per axis.
    pub dilation: [usize; D],
    /// Channel groups: input channel block `i` feeds output channel block `i`.
    pub groups: usize,
    /// Transposed convolutions only: extra size added on one side of the output.
    pub output_padding: [usize; D],
}

impl<const D: usize> Default for ConvOpts<D> {
    fn default() -> Self {
        ConvOpts {
            stride: [1; D],
            padding: [0; D],
            dilation: [1; D],
            groups: 1,
            output_padding: [0; D],
        }
    }
}

impl<const D: usize> ConvOpts<D> {
    /// The same stride on every axis.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s; D];
        self
    }
    /// The same padding on every axis.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p; D];
        self
    }
    /// The same dilation on every axis.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d; D];
        self
    }
    /// The number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// The same output padding on every axis (transposed convolutions).
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = [p; D];
        self
    }

    fn check(&self) -> Result<()> {
        if self.groups == 0 {
            return Err(Error::param("groups", "must be at least 1"));
        }
        if self.stride.contains(&0) {
            return Err(Error::param(
                "stride",
                format!("{:?} has a zero", self.stride),
            ));
        }
        if self.dilation.contains(&0) {
            return Err(Error::param(
                "dilation",
                format!("{:?} has a zero", self.dilation),
            ));
        }
        Ok(())
    }

    /// Padded to three axes (leading depth axis of size 1 for 2D).
    fn lift(&self) -> ([usize; 3], [usize; 3], [usize; 3], [usize; 3]) {
        let mut s = [1; 3];
        let mut p = [0; 3];
        let mut d = [1; 3];
        let mut op = [0; 3];
        s[3 - D..].copy_from_slice(&self.stride);
        p[3 - D..].copy_from_slice(&self.padding);
        d[3 - D..].copy_from_slice(&self.dilation);
        op[3 - D..].copy_from_slice(&self.output_padding);
        (s, p, d, op)
    }
}

fn lift_dims<const D: usize>(name: &str, t: &Tensor) -> Result<(usize, usize, [usize; 3])> {
    let dims = t.dims();
    if dims.len() != D + 2 {
        return Err(Error::shape(
            name,
            format!("{}-d [N, C, {}spatial]", D + 2, D),
            dims,
        ));
    }
    let mut sp = [1; 3];
    sp[3 - D..].copy_from_slice(&dims[2..]);
    Ok((dims[0], dims[1], sp))
}

/// Checks a bias: `[O]`, or `[N, O]` for one bias row per sample.
fn check_bias(b: Option<&Tensor>, n: usize, c_out: usize) -> Result<()> {
    match b {
        Some(b) if b.dims() != [c_out] && b.dims() != [n, c_out] => Err(Error::shape(
            "bias",
            format!("[{c_out}] or [{n}, {c_out}]"),
            b.dims(),
        )),
        _ => Ok(()),
    }
}

fn add_bias(y: Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    match b {
        None => Ok(y),
        Some(b) => Ok((channel_expand(b, y.dims())? + y)?),
    }
}

/// Convolution over `D` spatial axes (cross-correlation, zero padding), the one
/// implementation behind [`conv2d`] and [`conv3d`].
///
/// `x`: `[N, C, *spatial]`, `w`: `[O, C/groups, *kernel]`, `b`: `[O]`, or `[N, O]` for a
/// bias per sample (a conditioning such as a diffusion time embedding, added without a
/// broadcast in the graph); returns `[N, O, *out]` with
/// `out = floor((in + 2p - d(k-1) - 1)/s) + 1`.
pub fn conv<const D: usize>(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: &ConvOpts<D>,
) -> Result<Tensor> {
    opts.check()?;
    let (n, c, input) = lift_dims::<D>("x", x)?;
    let (o, cg, kernel) = lift_dims::<D>("w", w)?;
    let g = opts.groups;
    if c % g != 0 || o % g != 0 || cg * g != c {
        return Err(Error::shape(
            "w",
            format!("[O, C/groups = {}/{g}, ...] with O divisible by groups", c),
            w.dims(),
        ));
    }
    let (stride, pad, dil, _) = opts.lift();
    let mut output = [0; 3];
    for a in 0..3 {
        let span = dil[a] * (kernel[a] - 1) + 1;
        if input[a] + 2 * pad[a] < span {
            return Err(Error::param(
                "x",
                format!(
                    "spatial size {:?} is smaller than the dilated kernel {:?}",
                    &x.dims()[2..],
                    &w.dims()[2..]
                ),
            ));
        }
        output[a] = (input[a] + 2 * pad[a] - span) / stride[a] + 1;
    }
    let geom = Geom {
        n,
        c,
        input,
        kernel,
        stride,
        pad,
        dil,
        output,
    };
    let x5 = x.reshape((n, c, input[0], input[1], input[2]))?;
    let w5 = w.reshape((o, cg, kernel[0], kernel[1], kernel[2]))?;
    let mut shape = vec![n, o];
    shape.extend_from_slice(&output[3 - D..]);
    check_bias(b, n, o)?;
    if super::cpu_kernels(x) && matches!(x.dtype(), DType::F32 | DType::F64) {
        let spec = ConvSpec {
            geom,
            out_channels: o,
            groups: g,
        };
        return Ok(conv_forward(spec, &x5, &w5, b)?.reshape(shape)?);
    }
    add_bias(conv_by_columns(&x5, &w5, geom, g)?.reshape(shape)?, b)
}

/// The device-generic convolution: the column matrix, one matmul, a transpose. Its
/// backward is matmuls and `col2im` (exact at every order).
fn conv_by_columns(x5: &Tensor, w5: &Tensor, geom: Geom, g: usize) -> Result<Tensor> {
    let (n, o) = (geom.n, w5.dim(0)?);
    let (rows, cols_n) = (geom.rows(), geom.cols());
    let output = geom.output;
    let cols = im2col(x5, geom)?;
    let y = if g == 1 {
        w5.reshape((o, rows))?.matmul(&cols)?
    } else {
        let wg = w5.reshape((g, o / g, rows / g))?;
        wg.matmul(&cols.reshape((g, rows / g, cols_n))?)?
            .reshape((o, cols_n))?
    };
    Ok(y.reshape((o, n, output[0], output[1], output[2]))?
        .transpose(0, 1)?
        .contiguous()?)
}

/// 2D convolution, PyTorch's `conv2d`: `x` `[N, C, H, W]`, `w` `[O, C/groups, kH, kW]`.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, opts: &ConvOpts<2>) -> Result<Tensor> {
    conv(x, w, b, opts)
}

/// 3D convolution, PyTorch's `conv3d`: `x` `[N, C, D, H, W]`, `w` `[O, C/groups, kD, kH, kW]`.
pub fn conv3d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, opts: &ConvOpts<3>) -> Result<Tensor> {
    conv(x, w, b, opts)
}

/// Transposed convolution over `D` axes, the adjoint of [`conv`] in `x` (plus bias).
///
/// `x`: `[N, C_in, *spatial]`, `w`: `[C_in, C_out/groups, *kernel]` (PyTorch's layout),
/// output size `(in-1)s - 2p + d(k-1) + output_padding + 1`.
pub fn conv_transpose<const D: usize>(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: &ConvOpts<D>,
) -> Result<Tensor> {
    opts.check()?;
    let (n, c_in, input) = lift_dims::<D>("x", x)?;
    let (wc, og, kernel) = lift_dims::<D>("w", w)?;
    let g = opts.groups;
    if wc != c_in || c_in % g != 0 {
        return Err(Error::shape(
            "w",
            format!("[C_in = {c_in}, C_out/groups, ...]"),
            w.dims(),
        ));
    }
    let c_out = og * g;
    check_bias(b, n, c_out)?;
    let (stride, pad, dil, out_pad) = opts.lift();
    let mut output = [0; 3];
    for a in 0..3 {
        if out_pad[a] >= stride[a] && out_pad[a] >= dil[a] {
            return Err(Error::param(
                "output_padding",
                "must be smaller than stride or dilation",
            ));
        }
        let full = (input[a] - 1) * stride[a] + dil[a] * (kernel[a] - 1) + out_pad[a] + 1;
        if full <= 2 * pad[a] {
            return Err(Error::param(
                "padding",
                format!("{:?} leaves no output", opts.padding),
            ));
        }
        output[a] = full - 2 * pad[a];
    }
    // The adjoint of the convolution that maps the output size back to `input`.
    let geom = Geom {
        n,
        c: c_out,
        input: output,
        kernel,
        stride,
        pad,
        dil,
        output: input,
    };
    let x5 = x.reshape((n, c_in, input[0], input[1], input[2]))?;
    let w5 = w.reshape((c_in, og, kernel[0], kernel[1], kernel[2]))?;
    let y = if super::cpu_kernels(x) && matches!(x.dtype(), DType::F32 | DType::F64) {
        conv_input_grad(
            ConvSpec {
                geom,
                out_channels: c_in,
                groups: g,
            },
            &x5,
            &w5,
        )?
    } else {
        conv_transpose_by_columns(&x5, &w5, geom, g)?
    };
    let mut shape = vec![n, c_out];
    shape.extend_from_slice(&output[3 - D..]);
    add_bias(y.reshape(shape)?, b)
}

/// The device-generic transposed convolution: one matmul and `col2im`.
fn conv_transpose_by_columns(x5: &Tensor, w5: &Tensor, geom: Geom, g: usize) -> Result<Tensor> {
    let (n, c_in) = (geom.n, x5.dim(1)?);
    let (rows, cols_n) = (geom.rows(), geom.cols());
    let xm = x5
        .reshape((n, c_in, cols_n / n))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((c_in, cols_n))?;
    let cols = if g == 1 {
        w5.reshape((c_in, rows))?.t()?.matmul(&xm)?
    } else {
        let wg = w5.reshape((g, c_in / g, rows / g))?.transpose(1, 2)?;
        wg.matmul(&xm.reshape((g, c_in / g, cols_n))?)?
            .reshape((rows, cols_n))?
    };
    col2im(&cols, geom)
}

/// 2D transposed convolution, PyTorch's `conv_transpose2d`.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: &ConvOpts<2>,
) -> Result<Tensor> {
    conv_transpose(x, w, b, opts)
}

/// 3D transposed convolution, PyTorch's `conv_transpose3d`.
pub fn conv_transpose3d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    opts: &ConvOpts<3>,
) -> Result<Tensor> {
    conv_transpose(x, w, b, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use candle_core::{DType, Device, Var};

    /// A `[N, O]` bias adds row `n` to sample `n`: against candle's broadcast add, on the
    /// direct f32 kernel (stride 1), the column kernels (stride 2, f64) and the portable form.
    #[test]
    fn per_sample_bias_is_the_broadcast_sum() {
        let s = Stream::new(9, "conv-bias");
        for (dtype, stride, tol) in [(DType::F32, 1, 1e-6), (DType::F64, 2, 1e-14)] {
            let t = |i, sh: &[usize]| s.at(i).normal_tensor(sh, 0.0, 1.0, dtype, &Device::Cpu);
            let (x, w, b) = (
                t(0, &[3, 4, 6, 5]).unwrap(),
                t(1, &[5, 4, 3, 3]).unwrap(),
                t(2, &[3, 5]).unwrap(),
            );
            let opts = ConvOpts::<2>::default().padding(1).stride(stride);
            let want = conv(&x, &w, None, &opts)
                .unwrap()
                .broadcast_add(&b.reshape((3, 5, 1, 1)).unwrap())
                .unwrap();
            let got = conv(&x, &w, Some(&b), &opts).unwrap();
            let portable =
                super::super::with_portable_ops(|| conv(&x, &w, Some(&b), &opts)).unwrap();
            for y in [got, portable] {
                let e = scarce_fixtures::rel_err(&y, &want).unwrap();
                assert!(e < tol, "{dtype:?} stride {stride}: off by {e:e}");
            }
            let bad = t(3, &[2, 5]).unwrap();
            assert!(
                conv(&x, &w, Some(&bad), &opts).is_err(),
                "a [2, 5] bias for 3 samples"
            );
        }
    }

    /// The fused CPU kernels and the device-generic column form agree, value and gradients.
    #[test]
    fn fused_cpu_conv_matches_column_form() {
        let s = Stream::new(8, "conv-forms");
        let v = |i, sh: &[usize]| {
            Var::from_tensor(
                &s.at(i)
                    .normal_tensor(sh, 0.0, 1.0, DType::F64, &Device::Cpu)
                    .unwrap(),
            )
            .unwrap()
            .as_tensor()
            .clone()
        };
        let (x, w) = (v(0, &[2, 4, 3, 5, 6]), v(1, &[6, 2, 2, 3, 2]));
        let geom = Geom {
            n: 2,
            c: 4,
            input: [3, 5, 6],
            kernel: [2, 3, 2],
            stride: [1, 2, 1],
            pad: [1, 1, 0],
            dil: [1, 1, 2],
            output: [4, 3, 4],
        };
        let spec = ConvSpec {
            geom: geom.clone(),
            out_channels: 6,
            groups: 2,
        };
        let fused = conv_forward(spec.clone(), &x, &w, None).unwrap();
        let cols = conv_by_columns(&x, &w, geom.clone(), 2).unwrap();
        assert!(scarce_fixtures::rel_err(&fused, &cols).unwrap() < 1e-14);
        let gy = s
            .at(2)
            .normal_tensor(fused.shape(), 0.0, 1.0, DType::F64, &Device::Cpu)
            .unwrap();
        let g1 = (fused * &gy)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (cols * &gy).unwrap().sum_all().unwrap().backward().unwrap();
        for t in [&x, &w] {
            assert!(
                scarce_fixtures::rel_err(g1.get(t).unwrap(), g2.get(t).unwrap()).unwrap() < 1e-13
            );
        }
        // Transposed: the fused input-gradient kernel against the column form.
        let yt = v(3, &[2, 6, 4, 3, 4]);
        let t1 = conv_input_grad(spec, &yt, &w).unwrap();
        let t2 = conv_transpose_by_columns(&yt, &w, geom, 2).unwrap();
        assert!(scarce_fixtures::rel_err(&t1, &t2).unwrap() < 1e-14);
    }
}
