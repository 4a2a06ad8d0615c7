//! Resampling with scipy.ndimage's conventions (`map_coordinates`, `affine_transform`,
//! `zoom`): pixel centres at integer indices, axis 0 first, order 0 (nearest, round half up)
//! and order 1 (linear, separable), and scipy's boundary modes.
//!
//! Arrays are C-ordered 3D (`[d, h, w]`); a 2D array is `[1, h, w]`, whose axis-0 coordinate
//! is always exactly 0.

use rayon::prelude::*;

use crate::{Error, Result};

/// A value type the resamplers read and write: f32 (images) or f64 (checks).
pub trait Real: Copy + Send + Sync + 'static {
    /// As f64.
    fn to_f64(self) -> f64;
    /// From f64 (rounded to the type).
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Interpolation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// Nearest sample, `floor(c + 0.5)` (round half up), for label maps.
    Nearest,
    /// (Bi/tri)linear.
    Linear,
}

/// What lies outside the array.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Any coordinate outside `[0, n − 1]` on any axis gives `cval`; nothing is
    /// interpolated towards the edge (scipy `constant`).
    Constant(f64),
    /// The array padded with `cval`, interpolation continuing across the edge (scipy
    /// `grid-constant`).
    GridConstant(f64),
    /// Edge replication (scipy `nearest`).
    Nearest,
    /// Half-sample symmetric reflection `d c b a | a b c d | d c b a` (scipy `reflect`).
    Reflect,
}

impl Mode {
    /// The parsed scipy mode name with its `cval`.
    pub fn from_scipy(name: &str, cval: f64) -> Result<Mode> {
        Ok(match name {
            "constant" => Mode::Constant(cval),
            "grid-constant" => Mode::GridConstant(cval),
            "nearest" => Mode::Nearest,
            "reflect" => Mode::Reflect,
            other => {
                return Err(Error::param(
                    "mode",
                    format!("`{other}`: use constant, grid-constant, nearest or reflect"),
                ))
            }
        })
    }
}

/// Index `i` mapped into `0..n` by half-sample reflection (period `2n`).
pub fn reflect_index(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

impl Mode {
    /// Where integer index `i` of an axis of length `n` reads from, or `None` for the fill
    /// value: the one boundary rule of every resampler, filter and pad here.
    #[inline]
    pub fn index(self, i: i64, n: usize) -> Option<usize> {
        if (0..n as i64).contains(&i) {
            return Some(i as usize);
        }
        match self {
            Mode::Nearest => Some(i.clamp(0, n as i64 - 1) as usize),
            Mode::Reflect => Some(reflect_index(i, n)),
            Mode::Constant(_) | Mode::GridConstant(_) => None,
        }
    }

    /// The value read where [`Mode::index`] gives `None` (0 for modes that never do).
    pub fn fill(self) -> f64 {
        match self {
            Mode::Constant(c) | Mode::GridConstant(c) => c,
            _ => 0.0,
        }
    }
}

/// The value of `a` (shape `dims`) at coordinate `c` (axis order), scipy's rules.
#[inline]
pub fn sample<T: Real>(a: &[T], dims: [usize; 3], c: [f64; 3], order: Order, mode: Mode) -> f64 {
    if let Mode::Constant(v) = mode {
        for k in 0..3 {
            if !(c[k] >= 0.0 && c[k] <= (dims[k] - 1) as f64) {
                return v;
            }
        }
    }
    let fill = mode.fill();
    match order {
        Order::Nearest => {
            let mut at = 0;
            for k in 0..3 {
                match mode.index((c[k] + 0.5).floor() as i64, dims[k]) {
                    Some(i) => at = at * dims[k] + i,
                    None => return fill,
                }
            }
            a[at].to_f64()
        }
        Order::Linear => {
            // Per axis: the two indices (None = cval) and weights; a zero weight is skipped
            // so an index past the edge at exactly n − 1 is never read.
            let mut idx = [[None; 2]; 3];
            let mut w = [[0.0; 2]; 3];
            for k in 0..3 {
                let i0 = c[k].floor();
                let f = c[k] - i0;
                let i0 = i0 as i64;
                idx[k] = [mode.index(i0, dims[k]), mode.index(i0 + 1, dims[k])];
                w[k] = [1.0 - f, f];
            }
            let mut v = 0.0;
            for (z, wz) in idx[0].iter().zip(w[0]) {
                if wz == 0.0 {
                    continue;
                }
                for (y, wy) in idx[1].iter().zip(w[1]) {
                    if wy == 0.0 {
                        continue;
                    }
                    for (x, wx) in idx[2].iter().zip(w[2]) {
                        if wx == 0.0 {
                            continue;
                        }
                        let value = match (z, y, x) {
                            (Some(z), Some(y), Some(x)) => {
                                a[(z * dims[1] + y) * dims[2] + x].to_f64()
                            }
                            _ => fill,
                        };
                        v += wz * wy * wx * value;
                    }
                }
            }
            v
        }
    }
}

/// Pads a 1–3D shape to 3D (`[h, w]` → `[1, h, w]`).
pub fn dims3(shape: &[usize]) -> Result<[usize; 3]> {
    match *shape {
        [w] => Ok([1, 1, w]),
        [h, w] => Ok([1, h, w]),
        [d, h, w] => Ok([d, h, w]),
        _ => Err(Error::shape("shape", "1 to 3 dimensions", shape)),
    }
}

fn check_len<T>(a: &[T], dims: [usize; 3], name: &str) -> Result<()> {
    if a.len() != dims.iter().product::<usize>() || dims.contains(&0) {
        return Err(Error::shape(
            name,
            format!("{} non-empty values", dims.iter().product::<usize>()),
            &[a.len()],
        ));
    }
    Ok(())
}

/// Fills an output of `out_dims` by pulling each output index `o` from input coordinate
/// `at(o)`, in parallel over output slices.
pub fn pull<T: Real>(
    a: &[T],
    dims: [usize; 3],
    out_dims: [usize; 3],
    order: Order,
    mode: Mode,
    at: impl Fn([usize; 3]) -> [f64; 3] + Sync,
) -> Vec<T> {
    let plane = out_dims[1] * out_dims[2];
    let mut out = vec![T::from_f64(0.0); out_dims.iter().product()];
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(z, slice)| {
            for (k, o) in slice.iter_mut().enumerate() {
                let c = at([z, k / out_dims[2], k % out_dims[2]]);
                *o = T::from_f64(sample(a, dims, c, order, mode));
            }
        });
    out
}

/// scipy's `map_coordinates`: `coords[k][m]` is point m's coordinate on axis k (as many rows
/// as the array has axes); returns one value per point.
pub fn map_coordinates<T: Real>(
    a: &[T],
    shape: &[usize],
    coords: &[Vec<f64>],
    order: Order,
    mode: Mode,
) -> Result<Vec<T>> {
    let dims = dims3(shape)?;
    check_len(a, dims, "input")?;
    if coords.len() != shape.len() || coords.iter().any(|c| c.len() != coords[0].len()) {
        return Err(Error::shape(
            "coordinates",
            format!("{} rows of equal length", shape.len()),
            &[coords.len()],
        ));
    }
    let lead = 3 - shape.len();
    Ok((0..coords[0].len())
        .into_par_iter()
        .map(|m| {
            let mut c = [0.0; 3];
            for (k, row) in coords.iter().enumerate() {
                c[lead + k] = row[m];
            }
            T::from_f64(sample(a, dims, c, order, mode))
        })
        .collect())
}

/// scipy's `affine_transform`: `output[o] = input(matrix · o + offset)` (a pull in index
/// space), `matrix` row-major `nd × nd`.
pub fn affine_transform<T: Real>(
    a: &[T],
    shape: &[usize],
    matrix: &[f64],
    offset: &[f64],
    out_shape: &[usize],
    order: Order,
    mode: Mode,
) -> Result<Vec<T>> {
    let nd = shape.len();
    let (dims, out_dims) = (dims3(shape)?, dims3(out_shape)?);
    check_len(a, dims, "input")?;
    if matrix.len() != nd * nd || offset.len() != nd || out_shape.len() != nd {
        return Err(Error::shape(
            "matrix",
            format!("{nd}×{nd} with an offset of {nd}"),
            &[matrix.len(), offset.len()],
        ));
    }
    let lead = 3 - nd;
    Ok(pull(a, dims, out_dims, order, mode, |o| {
        let mut c = [0.0; 3];
        for r in 0..nd {
            let mut v = offset[r];
            for k in 0..nd {
                v += matrix[r * nd + k] * o[lead + k] as f64;
            }
            c[lead + r] = v;
        }
        c
    }))
}

/// Python's `round` (half to even), which scipy's `zoom` uses for the output shape.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        (r - x.signum()) as usize
    } else {
        r as usize
    }
}

/// The output shape of [`zoom`]: `round(n · factor)` per axis, half to even.
pub fn zoom_shape(shape: &[usize], factors: &[f64]) -> Vec<usize> {
    shape
        .iter()
        .zip(factors)
        .map(|(&n, &f)| round_half_even(n as f64 * f))
        .collect()
}

/// scipy's `zoom`. `grid_mode = false` aligns the corner samples
/// (`c = o · (n_in − 1) / (n_out − 1)`); `true` aligns the pixel edges
/// (`c = (o + 0.5) · n_in / n_out − 0.5`).
pub fn zoom<T: Real>(
    a: &[T],
    shape: &[usize],
    factors: &[f64],
    grid_mode: bool,
    order: Order,
    mode: Mode,
) -> Result<(Vec<T>, Vec<usize>)> {
    if factors.len() != shape.len() || factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
        return Err(Error::param(
            "zoom",
            format!("{factors:?}: one finite positive factor per axis"),
        ));
    }
    let out_shape = zoom_shape(shape, factors);
    let out_dims = dims3(&out_shape)?;
    if out_dims.contains(&0) {
        return Err(Error::param(
            "zoom",
            format!("{factors:?} gives an empty output"),
        ));
    }
    let dims = dims3(shape)?;
    check_len(a, dims, "input")?;
    let scale: Vec<f64> = (0..3)
        .map(|k| {
            let (n_in, n_out) = (dims[k] as f64, out_dims[k] as f64);
            if grid_mode {
                n_in / n_out
            } else if out_dims[k] > 1 {
                (n_in - 1.0) / (n_out - 1.0)
            } else {
                0.0
            }
        })
        .collect();
    let out = pull(a, dims, out_dims, order, mode, |o| {
        let mut c = [0.0; 3];
        for k in 0..3 {
            c[k] = if grid_mode {
                (o[k] as f64 + 0.5) * scale[k] - 0.5
            } else {
                o[k] as f64 * scale[k]
            };
        }
        c
    });
    Ok((out, out_shape))
}
