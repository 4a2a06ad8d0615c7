//! Fréchet distance between Gaussian fits of two feature sets (the FID formula on given
//! features): `‖μa − μb‖² + Tr Σa + Tr Σb − 2 Tr √(Σa Σb)`, with unbiased covariances.
//! `Tr √(Σa Σb)` is computed as `Σ √λ` of the symmetric matrix `√Σa Σb √Σa`, whose
//! eigenvalues equal those of `Σa Σb`; symmetric eigenproblems are solved by cyclic Jacobi.

use crate::{invalid, Result};

type Mat = Vec<Vec<f64>>;

/// Column means and unbiased covariance of `rows` (samples × features).
pub fn mean_cov(rows: &[Vec<f64>]) -> Result<(Vec<f64>, Mat)> {
    let n = rows.len();
    if n < 2 {
        return Err(invalid("features", "need at least two samples"));
    }
    let d = rows[0].len();
    if d == 0 || rows.iter().any(|r| r.len() != d) {
        return Err(invalid("features", "rows must have one non-zero length"));
    }
    let mu: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let mut cov = vec![vec![0.0; d]; d];
    for r in rows {
        for i in 0..d {
            for j in 0..d {
                cov[i][j] += (r[i] - mu[i]) * (r[j] - mu[j]);
            }
        }
    }
    cov.iter_mut().flatten().for_each(|v| *v /= (n - 1) as f64);
    Ok((mu, cov))
}

/// Eigenvalues and eigenvectors (columns of the returned matrix) of a symmetric matrix.
fn jacobi(mut a: Mat) -> (Vec<f64>, Mat) {
    let d = a.len();
    let mut v: Mat = (0..d)
        .map(|i| (0..d).map(|j| (i == j) as u8 as f64).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let scale: f64 = (0..d).map(|i| a[i][i] * a[i][i]).sum::<f64>();
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                // Rows p < q, borrowed together.
                let (head, tail) = a.split_at_mut(q);
                for (apk, aqk) in head[p].iter_mut().zip(tail[0].iter_mut()) {
                    let (x, y) = (*apk, *aqk);
                    *apk = c * x - s * y;
                    *aqk = s * x + c * y;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i][i]).collect(), v)
}

fn matmul(a: &Mat, b: &Mat) -> Mat {
    let (n, m, k) = (a.len(), b[0].len(), b.len());
    (0..n)
        .map(|i| {
            (0..m)
                .map(|j| (0..k).map(|l| a[i][l] * b[l][j]).sum())
                .collect()
        })
        .collect()
}

/// `Tr √(Σa Σb)` for symmetric positive semi-definite `Σa`, `Σb`.
pub fn trace_sqrt_product(sigma_a: &Mat, sigma_b: &Mat) -> f64 {
    let (la, va) = jacobi(sigma_a.clone());
    let d = la.len();
    // √Σa = V diag(√λ) Vᵀ (negative rounding noise clipped to 0).
    let sqrt_a: Mat = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    (0..d)
                        .map(|k| va[i][k] * la[k].max(0.0).sqrt() * va[j][k])
                        .sum()
                })
                .collect()
        })
        .collect();
    let m = matmul(&matmul(&sqrt_a, sigma_b), &sqrt_a);
    let sym: Mat = (0..d)
        .map(|i| (0..d).map(|j| 0.5 * (m[i][j] + m[j][i])).collect())
        .collect();
    jacobi(sym).0.into_iter().map(|l| l.max(0.0).sqrt()).sum()
}

/// The Fréchet distance between Gaussian fits of two feature sets (rows are samples).
pub fn frechet_distance(features_a: &[Vec<f64>], features_b: &[Vec<f64>]) -> Result<f64> {
    let (mu_a, sa) = mean_cov(features_a)?;
    let (mu_b, sb) = mean_cov(features_b)?;
    if mu_a.len() != mu_b.len() {
        return Err(invalid(
            "features_b",
            format!("{} features, features_a has {}", mu_b.len(), mu_a.len()),
        ));
    }
    let diff: f64 = mu_a.iter().zip(&mu_b).map(|(a, b)| (a - b).powi(2)).sum();
    let tr = |s: &Mat| (0..s.len()).map(|i| s[i][i]).sum::<f64>();
    Ok(diff + tr(&sa) + tr(&sb) - 2.0 * trace_sqrt_product(&sa, &sb))
}
