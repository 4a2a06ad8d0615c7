//! Separable Gaussian filtering with scipy.ndimage's `gaussian_filter` conventions: one 1D
//! correlation per axis (axis 0 first, each on the previous result), kernel radius
//! `int(truncate · σ + 0.5)`, weights `exp(−j² / 2σ²)` normalised to sum 1.

use rayon::prelude::*;

use crate::interp::{dims3, Mode, Real};
use crate::{Error, Result};

/// The normalised 1D Gaussian kernel for `sigma` (taps `−r..=r`).
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as i64;
    let w: Vec<f64> = (-r..=r)
        .map(|j| (-0.5 * (j * j) as f64 / (sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Correlates every line of `a` along `axis` with `kernel` (odd length), reading past the
/// ends as `mode` says. Lines run in parallel.
pub fn correlate_axis<T: Real>(
    a: &mut [T],
    dims: [usize; 3],
    axis: usize,
    kernel: &[f64],
    mode: Mode,
) {
    let n = dims[axis];
    let r = kernel.len() / 2;
    let stride: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    let fill = mode.fill();
    // Each block holds `n` planes of `stride` values: lines are its columns.
    a.par_chunks_mut(n * stride).take(outer).for_each(|block| {
        let mut line = vec![0f64; n + 2 * r];
        for s in 0..stride {
            for (p, v) in line.iter_mut().enumerate() {
                *v = match mode.index(p as i64 - r as i64, n) {
                    Some(i) => block[i * stride + s].to_f64(),
                    None => fill,
                };
            }
            for i in 0..n {
                let acc: f64 = kernel
                    .iter()
                    .zip(&line[i..i + kernel.len()])
                    .map(|(w, v)| w * v)
                    .sum();
                block[i * stride + s] = T::from_f64(acc);
            }
        }
    });
}

/// scipy's `gaussian_filter` (order 0) in place: `sigma` per axis (0 leaves an axis as
/// it is), kernel truncated at `truncate` standard deviations.
pub fn gaussian_filter<T: Real>(
    a: &mut [T],
    shape: &[usize],
    sigma: &[f64],
    truncate: f64,
    mode: Mode,
) -> Result<()> {
    if sigma.len() != shape.len() || sigma.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(Error::param(
            "sigma",
            format!("{sigma:?}: one finite, non-negative value per axis"),
        ));
    }
    if !(truncate.is_finite() && truncate > 0.0) {
        return Err(Error::param(
            "truncate",
            format!("{truncate}: must be positive"),
        ));
    }
    let dims = dims3(shape)?;
    if a.len() != dims.iter().product::<usize>() {
        return Err(Error::shape("input", format!("{shape:?}"), &[a.len()]));
    }
    let lead = 3 - shape.len();
    for (k, &s) in sigma.iter().enumerate() {
        if s > 1e-15 {
            correlate_axis(a, dims, lead + k, &gaussian_kernel(s, truncate), mode);
        }
    }
    Ok(())
}
