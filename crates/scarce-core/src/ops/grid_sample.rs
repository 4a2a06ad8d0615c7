//! `grid_sample` (PyTorch semantics): sample `x` at the normalised
//! locations of `grid`, bilinear / trilinear or nearest, with zero or border padding.
//!
//! The corner indices and in-bounds masks are computed from the grid's values (they are
//! piecewise constant); the corner weights are tensor expressions of the grid, so the
//! gradient with respect to the grid comes from autodiff, and the reads are `index_select`
//! (exact at every order).

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
        // Per tensor axis a (D, H, W order): pixel coordinate, clamped for border padding.
        let mut coords = Vec::with_capacity(d);
        let mut values = Vec::with_capacity(d);
        for (a, &size) in sizes.iter().enumerate() {
            let g = gb.narrow(1, d - 1 - a, 1)?.squeeze(1)?;
            let mut ix = if align_corners {
                g.affine((size as f64 - 1.0) / 2.0, (size as f64 - 1.0) / 2.0)?
            } else {
                g.affine(size as f64 / 2.0, (size as f64 - 1.0) / 2.0)?
            };
            let mut v = ix.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            if padding == Padding::Border {
                let hi = (size - 1) as f64;
                let inside: Vec<u8> = v
                    .iter()
                    .map(|&z| u8::from((0.0..=hi).contains(&z)))
                    .collect();
                v.iter_mut().for_each(|z| *z = z.clamp(0.0, hi));
                let clamped = Tensor::from_vec(v.clone(), l, x.device())?.to_dtype(ix.dtype())?;
                let inside = Tensor::from_vec(inside, l, x.device())?;
                ix = inside.where_cond(&ix, &clamped)?;
            }
            coords.push(ix);
            values.push(v);
        }
        let flat = |p: &[i64]| -> Option<u32> {
            let mut f = 0usize;
            for (a, &z) in p.iter().enumerate() {
                if z < 0 || z as usize >= sizes[a] {
                    return None;
                }
                f = f * sizes[a] + z as usize;
            }
            Some(f as u32)
        };
        let yb = match mode {
            SampleMode::Nearest => {
                let mut idx = Vec::with_capacity(l);
                let mut valid = Vec::with_capacity(l);
                for i in 0..l {
                    let p: Vec<i64> = values
                        .iter()
                        .map(|v| v[i].round_ties_even() as i64)
                        .collect();
                    let f = flat(&p);
                    idx.push(f.unwrap_or(0));
                    valid.push(if f.is_some() { 1.0 } else { 0.0 });
                }
                let idx = Tensor::from_vec(idx, l, x.device())?;
                let valid = Tensor::from_vec(valid, (1, l), x.device())?.to_dtype(x.dtype())?;
                xb.index_select(&idx, 1)?.broadcast_mul(&valid)?
            }
            SampleMode::Linear => {
                let floors: Vec<Vec<f64>> = values
                    .iter()
                    .map(|v| v.iter().map(|z| z.floor()).collect())
                    .collect();
                let mut acc: Option<Tensor> = None;
                for corner in 0..(1usize << d) {
                    let mut idx = Vec::with_capacity(l);
                    let mut valid = Vec::with_capacity(l);
                    for i in 0..l {
                        let p: Vec<i64> = floors
                            .iter()
                            .enumerate()
                            .map(|(a, f)| f[i] as i64 + ((corner >> (d - 1 - a)) & 1) as i64)
                            .collect();
                        let f = flat(&p);
                        idx.push(f.unwrap_or(0));
                        valid.push(if f.is_some() { 1.0 } else { 0.0 });
                    }
                    let mut w = Tensor::from_vec(valid, l, x.device())?.to_dtype(x.dtype())?;
                    for a in 0..d {
                        let fl = Tensor::from_vec(floors[a].clone(), l, x.device())?
                            .to_dtype(x.dtype())?;
                        let frac = (&coords[a] - fl)?;
                        let wa = if (corner >> (d - 1 - a)) & 1 == 1 {
                            frac
                        } else {
                            frac.affine(-1.0, 1.0)?
                        };
                        w = (w * wa)?;
                    }
                    let idx = Tensor::from_vec(idx, l, x.device())?;
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
