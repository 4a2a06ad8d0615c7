//! Audits of synthetic data: is it good (Fréchet distance, KID, precision / recall of the
//! generated distribution) and does it copy training patients (memorisation)?
//!
//! Every audit takes feature rows (`samples × features`, f64): the output of an embedding
//! network of the caller's choice (e.g. a trained scarce backbone) — or raw pixels, for the
//! memorisation audit, where "near-copy" is meant literally. [`rows`] turns a tensor into rows.

use crate::{Error, Result};
use candle_core::{DType, Tensor};
use rayon::prelude::*;
use scarce_core::Stream;

pub use scarce_eval::frechet::frechet_distance;

/// A tensor `[N, ...]` as `N` rows of f64 (each sample flattened).
pub fn rows(x: &Tensor) -> Result<Vec<Vec<f64>>> {
    let n = x.dim(0)?;
    let v = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let d = v.len().checked_div(n).unwrap_or(0);
    Ok(v.chunks(d.max(1)).take(n).map(<[f64]>::to_vec).collect())
}

fn check(name: &str, a: &[Vec<f64>], min: usize) -> Result<usize> {
    if a.len() < min {
        return Err(Error::config(
            name,
            format!("{} samples; need at least {min}", a.len()),
        ));
    }
    let d = a[0].len();
    if d == 0 || a.iter().any(|r| r.len() != d) {
        return Err(Error::config(name, "rows must share one non-zero length"));
    }
    Ok(d)
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Kernel Inception Distance (Bińkowski et al. 2018) on given features: the unbiased MMD²
/// with the cubic polynomial kernel `k(x, y) = (x·y/d + 1)³`, averaged over `subsets` random
/// subsets of `subset_size` rows from each set (clamped to the smaller set), as torch-fidelity
/// computes it. Returns `(mean, standard deviation)` over subsets.
pub fn kid(
    real: &[Vec<f64>],
    fake: &[Vec<f64>],
    subsets: usize,
    subset_size: usize,
    rng: &Stream,
) -> Result<(f64, f64)> {
    let d = check("real features", real, 2)?;
    if check("fake features", fake, 2)? != d {
        return Err(Error::config(
            "fake features",
            "feature length differs from real",
        ));
    }
    if subsets == 0 {
        return Err(Error::config("subsets", "need at least one"));
    }
    let m = subset_size.min(real.len()).min(fake.len()).max(2);
    let k = |x: &[f64], y: &[f64]| (dot(x, y) / d as f64 + 1.0).powi(3);
    let draw =
        |s: &Stream, n: usize| -> Vec<usize> { s.permutation(n).into_iter().take(m).collect() };
    let values: Vec<f64> = (0..subsets)
        .into_par_iter()
        .map(|i| {
            let s = rng.at(i as u64);
            let (ir, ifk) = (
                draw(&s.child("real"), real.len()),
                draw(&s.child("fake"), fake.len()),
            );
            let (mut kxx, mut kyy, mut kxy) = (0.0, 0.0, 0.0);
            for a in 0..m {
                for b in 0..m {
                    if a != b {
                        kxx += k(&real[ir[a]], &real[ir[b]]);
                        kyy += k(&fake[ifk[a]], &fake[ifk[b]]);
                    }
                    kxy += k(&real[ir[a]], &fake[ifk[b]]);
                }
            }
            let mf = m as f64;
            (kxx + kyy) / (mf * (mf - 1.0)) - 2.0 * kxy / (mf * mf)
        })
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    Ok((mean, std))
}

/// For each row of `from`, the index and distance of its nearest row in `to`, skipping the
/// same index when `exclude_self` (for distances within one set).
fn nearest(from: &[Vec<f64>], to: &[Vec<f64>], exclude_self: bool) -> Vec<(usize, f64)> {
    from.par_iter()
        .enumerate()
        .map(|(i, x)| {
            let mut best = (usize::MAX, f64::INFINITY);
            for (j, y) in to.iter().enumerate() {
                if exclude_self && i == j {
                    continue;
                }
                let d = sq_dist(x, y);
                if d < best.1 {
                    best = (j, d);
                }
            }
            (best.0, best.1.sqrt())
        })
        .collect()
}

/// Distance from each row to its `k`-th nearest other row of the same set.
fn kth_radius(x: &[Vec<f64>], k: usize) -> Vec<f64> {
    x.par_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut d: Vec<f64> = x
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, b)| sq_dist(a, b))
                .collect();
            let kk = (k - 1).min(d.len() - 1);
            d.select_nth_unstable_by(kk, f64::total_cmp);
            d[kk].sqrt()
        })
        .collect()
}

/// Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the
/// union of balls reaching every sample's `k`-th nearest neighbour. Precision is the share of
/// generated samples inside the real manifold (are they realistic?); recall the share of real
/// samples inside the generated manifold (is the variety covered?).
pub fn precision_recall(real: &[Vec<f64>], fake: &[Vec<f64>], k: usize) -> Result<(f64, f64)> {
    let d = check("real features", real, k + 1)?;
    if check("fake features", fake, k + 1)? != d {
        return Err(Error::config(
            "fake features",
            "feature length differs from real",
        ));
    }
    if k == 0 {
        return Err(Error::config("k", "need k >= 1"));
    }
    let inside = |points: &[Vec<f64>], centres: &[Vec<f64>], radii: &[f64]| -> f64 {
        let hits = points
            .par_iter()
            .filter(|p| {
                centres
                    .iter()
                    .zip(radii)
                    .any(|(c, r)| sq_dist(p, c).sqrt() <= *r)
            })
            .count();
        hits as f64 / points.len() as f64
    };
    let (rr, rf) = (kth_radius(real, k), kth_radius(fake, k));
    Ok((inside(fake, real, &rr), inside(real, fake, &rf)))
}

/// What the memorisation audit found.
#[derive(Debug, Clone)]
pub struct Memorisation {
    /// For each synthetic sample, the distance to its nearest training sample.
    pub nearest_distance: Vec<f64>,
    /// For each synthetic sample, the index of that training sample.
    pub nearest_index: Vec<usize>,
    /// For each training sample, the distance to its nearest *other* training sample: how
    /// close two different real patients come.
    pub real_distance: Vec<f64>,
    /// The flagging threshold: the `quantile` of `real_distance`.
    pub threshold: f64,
    /// Synthetic samples closer to a training sample than the threshold (near-copies).
    pub flagged: Vec<usize>,
}

impl Memorisation {
    /// Share of synthetic samples flagged.
    pub fn flagged_fraction(&self) -> f64 {
        self.flagged.len() as f64 / self.nearest_distance.len().max(1) as f64
    }

    /// Median of a distance list.
    pub fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
        }
    }
}

/// The memorisation audit: for every synthetic sample, the distance to its nearest training
/// sample, against the real-to-real nearest distances. A synthetic sample nearer to a
/// training sample than the `quantile` of real-to-real distances (e.g. 0.01: closer than 99%
/// of real patients are to one another) is flagged as a near-copy.
pub fn memorisation(
    synthetic: &[Vec<f64>],
    train: &[Vec<f64>],
    quantile: f64,
) -> Result<Memorisation> {
    let d = check("training samples", train, 2)?;
    if check("synthetic samples", synthetic, 1)? != d {
        return Err(Error::config(
            "synthetic samples",
            "length differs from the training samples'",
        ));
    }
    if !(0.0..=1.0).contains(&quantile) {
        return Err(Error::config(
            "quantile",
            format!("{quantile} outside [0, 1]"),
        ));
    }
    let near = nearest(synthetic, train, false);
    let real: Vec<f64> = nearest(train, train, true)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let mut sorted = real.clone();
    sorted.sort_by(f64::total_cmp);
    let threshold = sorted[((sorted.len() - 1) as f64 * quantile).round() as usize];
    let flagged = near
        .iter()
        .enumerate()
        .filter(|(_, &(_, d))| d < threshold)
        .map(|(i, _)| i)
        .collect();
    Ok(Memorisation {
        nearest_distance: near.iter().map(|&(_, d)| d).collect(),
        nearest_index: near.iter().map(|&(i, _)| i).collect(),
        real_distance: real,
        threshold,
        flagged,
    })
}
