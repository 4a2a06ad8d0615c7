//! Interpolation (`F.interpolate`): nearest, nearest-exact, and (bi/tri)linear with
//! `align_corners` either way, in 1D, 2D and 3D, applied one axis at a time. The gradient of
//! each output is scattered back with the forward weights (exact at every order, see
//! [`super::taps`]); candle's own upsampling backward is not used.

use super::repeat::repeat;
use super::taps::{self, AxisTaps};
use crate::{Error, Result};
use candle_core::Tensor;

/// How to interpolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InterpMode {
    /// PyTorch's legacy `nearest`: `src = min(floor(dst·scale), in-1)`.
    Nearest,
    /// `nearest-exact`: `src = min(floor((dst+0.5)·scale), in-1)`.
    NearestExact,
    /// Linear along each axis: `linear`, `bilinear`, `trilinear`.
    Linear {
        /// Map corner pixel centres onto each other instead of corner edges.
        align_corners: bool,
    },
}

/// The target of a resize.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Resize {
    /// Output spatial size per axis.
    Size(Vec<usize>),
    /// Scale factor per axis: output `floor(in·f)`, source scale `1/f` (PyTorch's rule).
    Scale(Vec<f64>),
}

fn axis_taps(input: usize, out: usize, scale_factor: Option<f64>, mode: InterpMode) -> AxisTaps {
    // PyTorch's `compute_scales_value`: 1/f when a factor is given, else in/out.
    let scale = match scale_factor {
        Some(f) => 1.0 / f,
        None => input as f64 / out as f64,
    };
    let last = input - 1;
    match mode {
        InterpMode::Nearest | InterpMode::NearestExact => {
            // PyTorch computes nearest indices in f32.
            let s = scale as f32;
            let half = if mode == InterpMode::NearestExact {
                0.5
            } else {
                0.0
            };
            let idx = (0..out)
                .map(|o| {
                    let src = if out == input {
                        o
                    } else {
                        ((o as f32 + half) * s).floor() as usize
                    };
                    src.min(last) as u32
                })
                .collect();
            AxisTaps {
                out_len: out,
                t: 1,
                idx,
                w: vec![1.0; out],
            }
        }
        InterpMode::Linear { align_corners } => {
            let (mut idx, mut w) = (Vec::with_capacity(2 * out), Vec::with_capacity(2 * out));
            for o in 0..out {
                let src = if align_corners {
                    if out > 1 {
                        o as f64 * last as f64 / (out - 1) as f64
                    } else {
                        0.0
                    }
                } else {
                    ((o as f64 + 0.5) * scale - 0.5).max(0.0)
                };
                let i0 = (src.floor() as usize).min(last);
                let i1 = (i0 + 1).min(last);
                let l = src - i0 as f64;
                idx.extend([i0 as u32, i1 as u32]);
                w.extend([1.0 - l, l]);
            }
            AxisTaps {
                out_len: out,
                t: 2,
                idx,
                w,
            }
        }
    }
}

/// Resizes the spatial axes of `x` (`[N, C, *spatial]`, 1 to 3 spatial axes).
pub fn interpolate(x: &Tensor, target: &Resize, mode: InterpMode) -> Result<Tensor> {
    let d = x.rank().saturating_sub(2);
    if !(1..=3).contains(&d) {
        return Err(Error::shape(
            "x",
            "[N, C, *spatial] with 1 to 3 spatial axes",
            x.dims(),
        ));
    }
    let n_given = match target {
        Resize::Size(s) => s.len(),
        Resize::Scale(f) => f.len(),
    };
    if n_given != d {
        return Err(Error::param(
            "target",
            format!("gives {n_given} axes, x has {d} spatial axes"),
        ));
    }
    let mut axes = Vec::with_capacity(d);
    for a in 0..d {
        let input = x.dim(a + 2)?;
        let (out, factor) = match target {
            Resize::Size(s) => (s[a], None),
            Resize::Scale(f) => {
                if !(f[a] > 0.0 && f[a].is_finite()) {
                    return Err(Error::param(
                        "scale_factor",
                        format!("{} must be positive", f[a]),
                    ));
                }
                ((input as f64 * f[a]).floor() as usize, Some(f[a]))
            }
        };
        if out == 0 || input == 0 {
            return Err(Error::param(
                "target",
                format!("axis {a}: sizes {input} -> {out} must be positive"),
            ));
        }
        axes.push((input, axis_taps(input, out, factor, mode)));
    }
    // Nearest taps that repeat each input a whole number of times (o / f) on every axis:
    // one block-copy op instead of one tap op per axis.
    let repeats: Option<Vec<usize>> = axes
        .iter()
        .map(|(input, t)| {
            let f = t.out_len / input;
            let whole = t.t == 1
                && t.out_len % input == 0
                && t.idx.iter().enumerate().all(|(o, &i)| i as usize == o / f);
            whole.then_some(f)
        })
        .collect();
    if let Some(factors) = repeats {
        return repeat(x, factors);
    }
    let mut y = x.clone();
    for (a, (_, t)) in axes.iter().enumerate() {
        y = taps::weighted(&y, a + 2, t)?;
    }
    Ok(y)
}
