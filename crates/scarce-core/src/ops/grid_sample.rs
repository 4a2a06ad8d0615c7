//! `grid_sample` (PyTorch semantics): sample `x` at the normalised
//! locations of `grid`, bilinear / trilinear or nearest, with zero or border padding.
//!
//! The corner indices and in-bounds masks are computed from the grid's values (they are
//! piecewise constant) with tensor ops on the grid's device — nothing goes through the host;
//! the corner weights are tensor expressions of the grid, so the gradient with respect to the
//! grid comes from autodiff, and the reads are `index_select` (exact at every order).

use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// How to interpolate between pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SampleMode {
    /// Bilinear in 2D, trilinear in 3D.
    Linear,
    /// The nearest pixel (round half to even); no gradient to the grid.
    Nearest,
}

/// What lies outside the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Padding {
    /// Zeros.
    Zeros,
    /// The border value (coordinates clamped to the input; no grid gradient where clamped).
    Border,
}

/// Samples `x` (`[N, C, H, W]` or `[N, C, D, H, W]`) at `grid` (`[N, Ho, Wo, 2]` or
/// `[N, Do, Ho, Wo, 3]`, last axis `(x, y[, z])` in `[-1, 1]`). Returns `[N, C, *out]`.
///
/// `align_corners = false` maps `-1`/`1` to the outer edges of the corner pixels
/// (`ix = ((g + 1)·W - 1)/2`); `true` maps them to the corner pixels' centres
/// (`ix = (g + 1)(W - 1)/2`).
pub fn grid_sample(
    x: &Tensor,
    grid: &Tensor,
    mode: SampleMode,
    padding: Padding,
    align_corners: bool,
) -> Result<Tensor> {
    let d = x.rank().saturating_sub(2);
    if !(d == 2 || d == 3) {
        return Err(Error::shape(
            "x",
            "[N, C, H, W] or [N, C, D, H, W]",
            x.dims(),
        ));
    }
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    let gd = grid.dims();
    if gd.len() != d + 2 || gd[0] != n || gd[d + 1] != d {
        return Err(Error::shape(
            "grid",
            format!("[{n}, *out ({d} axes), {d}]"),
            gd,
        ));
    }
    let sizes = &x.dims()[2..];
    let s_len: usize = sizes.iter().product();
    let out: Vec<usize> = gd[1..=d].to_vec();
    let l: usize = out.iter().product();
    let mut per_n = Vec::with_capacity(n);
    for b in 0..n {
        let xb = x.get(b)?.reshape((c, s_len))?;
        let gb = grid.get(b)?.reshape((l, d))?;
        // Per tensor axis a (D, H, W order): the pixel coordinate, clamped for border padding.
        let coords = sizes
            .iter()
            .enumerate()
            .map(|(a, &size)| {
                let g = gb.narrow(1, d - 1 - a, 1)?.squeeze(1)?;
                let half = (size as f64 - 1.0) / 2.0;
                let ix = if align_corners {
                    g.affine(half, half)?
                } else {
                    g.affine(size as f64 / 2.0, half)?
                };
                Ok(match padding {
                    Padding::Zeros => ix,
                    Padding::Border => {
                        // Clamped coordinates are constants: no grid gradient there (PyTorch).
                        let hi = (size - 1) as f64;
                        let inside = ix.ge(0.0)?.mul(&ix.le(hi)?)?;
                        inside.where_cond(&ix, &ix.detach().clamp(0.0, hi)?)?
                    }
                })
            })
            .collect::<Result<Vec<Tensor>>>()?;
        let yb = match mode {
            SampleMode::Nearest => {
                let p = coords
                    .iter()
                    .map(|z| round_half_even(&z.detach().to_dtype(DType::F64)?))
                    .collect::<Result<Vec<_>>>()?;
                let (idx, valid) = flat_index(&p, sizes)?;
                xb.index_select(&idx, 1)?
                    .broadcast_mul(&valid.to_dtype(x.dtype())?.unsqueeze(0)?)?
            }
            SampleMode::Linear => {
                let floors = coords
                    .iter()
                    .map(|z| Ok(z.detach().floor()?))
                    .collect::<Result<Vec<_>>>()?;
                // Index arithmetic in f64: exact for any input size an f32 index could not hold.
                let floors64 = floors
                    .iter()
                    .map(|f| Ok(f.to_dtype(DType::F64)?))
                    .collect::<Result<Vec<_>>>()?;
                let mut acc: Option<Tensor> = None;
                for corner in 0..(1usize << d) {
                    let bit = |a: usize| (corner >> (d - 1 - a)) & 1;
                    let p = floors64
                        .iter()
                        .enumerate()
                        .map(|(a, f)| Ok(f.affine(1.0, bit(a) as f64)?))
                        .collect::<Result<Vec<_>>>()?;
                    let (idx, valid) = flat_index(&p, sizes)?;
                    let mut w = valid.to_dtype(x.dtype())?;
                    for a in 0..d {
                        let frac = (&coords[a] - &floors[a])?;
                        let wa = if bit(a) == 1 {
                            frac
                        } else {
                            frac.affine(-1.0, 1.0)?
                        };
                        w = (w * wa)?;
                    }
                    let term = xb.index_select(&idx, 1)?.broadcast_mul(&w.unsqueeze(0)?)?;
                    acc = Some(match acc {
                        None => term,
                        Some(s) => (s + term)?,
                    });
                }
                acc.ok_or_else(|| Error::param("grid", "no corners"))?
            }
        };
        per_n.push(yb);
    }
    let mut shape = vec![n, c];
    shape.extend(out);
    Ok(Tensor::stack(&per_n, 0)?.reshape(shape)?)
}

/// Rounds half to even (PyTorch's nearest mode), elementwise on an f64 tensor of any device.
fn round_half_even(z: &Tensor) -> Result<Tensor> {
    let up = z.affine(1.0, 0.5)?.floor()?;
    // Exactly halfway when rounding up moved by 0.5; then an odd result steps down by one.
    let tie = (&up - z)?.eq(0.5)?;
    let odd = (&up - (up.affine(0.5, 0.0)?.floor()? * 2.0)?)?.eq(1.0)?;
    Ok((&up - tie.mul(&odd)?.to_dtype(DType::F64)?)?)
}

/// The flat input index (`u32`) of integer pixel coordinates `p` (one f64 tensor per axis, D,
/// H, W order) and whether every coordinate lies inside `sizes` (`u8`); outside positions
/// read index 0 and are masked by the caller. Computed on the tensors' device.
fn flat_index(p: &[Tensor], sizes: &[usize]) -> Result<(Tensor, Tensor)> {
    let mut flat: Option<Tensor> = None;
    let mut valid: Option<Tensor> = None;
    for (a, (pa, &size)) in p.iter().zip(sizes).enumerate() {
        let stride: usize = sizes[a + 1..].iter().product();
        let ok = pa.ge(0.0)?.mul(&pa.lt(size as f64)?)?;
        let term = pa
            .clamp(0.0, (size - 1) as f64)?
            .affine(stride as f64, 0.0)?;
        flat = Some(match flat {
            None => term,
            Some(f) => (f + term)?,
        });
        valid = Some(match valid {
            None => ok,
            Some(v) => v.mul(&ok)?,
        });
    }
    match (flat, valid) {
        (Some(f), Some(v)) => Ok((f.to_dtype(DType::U32)?, v)),
        _ => Err(Error::param("grid", "no spatial axes")),
    }
}
