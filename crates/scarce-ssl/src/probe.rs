//! The linear probe: L2-regularised logistic regression on frozen features, solved to
//! convergence by Newton's method in f64 — scikit-learn's `LogisticRegression(C)` objective
//! (`½‖W‖² + C · Σ cross-entropy`, intercept unpenalised): binomial for two classes,
//! multinomial for more.

use scarce_core::{Error, Result};

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    /// Number of classes.
    pub classes: usize,
    /// Feature width.
    pub dim: usize,
    /// Two classes: one row (the positive class's score). More: one row per class. Each row
    /// holds `dim` weights.
    pub coef: Vec<Vec<f64>>,
    /// One intercept per row of `coef`.
    pub intercept: Vec<f64>,
}

/// Rows scaled to unit L2 norm (a zero row stays zero).
pub fn l2_normalize_rows(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            r.iter().map(|v| v / n).collect()
        })
        .collect()
}

fn softmax_in_place(z: &mut [f64]) {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in z.iter_mut() {
        *v /= s;
    }
}

/// Solves `A x = b` for a symmetric positive definite `A` (Cholesky); `None` if not SPD.
fn cholesky_solve(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    let mut y = vec![0f64; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * n + i];
    }
    Some(x)
}

impl LogisticRegression {
    /// Fits on `features` (rows of equal width) with labels in `0..classes`; `c` is the
    /// inverse regularisation strength (scikit-learn's `C`, default 1).
    pub fn fit(features: &[Vec<f64>], labels: &[usize], classes: usize, c: f64) -> Result<Self> {
        let n = features.len();
        if n == 0 || labels.len() != n {
            return Err(Error::param(
                "labels",
                format!(
                    "{} labels for {n} feature rows (need at least one)",
                    labels.len()
                ),
            ));
        }
        let dim = features[0].len();
        if features
            .iter()
            .any(|r| r.len() != dim || r.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::param(
                "features",
                "rows must share one width and be finite",
            ));
        }
        if classes < 2 {
            return Err(Error::param("classes", "need at least 2"));
        }
        if let Some(&l) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::param(
                "labels",
                format!("label {l} >= classes = {classes}"),
            ));
        }
        if !(c > 0.0 && c.is_finite()) {
            return Err(Error::param("c", format!("{c} must be finite and > 0")));
        }
        let rows = if classes == 2 { 1 } else { classes };
        let width = dim + 1; // weights, then the intercept
        let np = rows * width;
        let mut w = vec![0f64; np];
        // Objective, gradient and Hessian at `w`.
        let eval = |w: &[f64], want_hess: bool| -> (f64, Vec<f64>, Vec<f64>) {
            let mut f = 0.0;
            let mut g = vec![0f64; np];
            let mut h = if want_hess {
                vec![0f64; np * np]
            } else {
                Vec::new()
            };
            for r in 0..rows {
                for j in 0..dim {
                    f += 0.5 * w[r * width + j].powi(2);
                    g[r * width + j] += w[r * width + j];
                    if want_hess {
                        h[(r * width + j) * np + r * width + j] += 1.0;
                    }
                }
            }
            let mut z = vec![0f64; rows.max(2)];
            for (x, &y) in features.iter().zip(labels) {
                let score = |r: usize| {
                    w[r * width + dim] + (0..dim).map(|j| w[r * width + j] * x[j]).sum::<f64>()
                };
                // p: probabilities of the rows' classes; d: dloss/dscore per row.
                let (probs, d): (Vec<f64>, Vec<f64>) = if rows == 1 {
                    let s = score(0);
                    let p = 1.0 / (1.0 + (-s).exp());
                    // -log p(y): softplus(-s) for y = 1, softplus(s) for y = 0.
                    let t = if y == 1 { -s } else { s };
                    f += c * (t.max(0.0) + (-t.abs()).exp().ln_1p());
                    (vec![p], vec![p - (y == 1) as u8 as f64])
                } else {
                    for (r, zr) in z.iter_mut().enumerate().take(rows) {
                        *zr = score(r);
                    }
                    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    f += c * (lse - z[y]);
                    let mut p = z.clone();
                    softmax_in_place(&mut p);
                    let d = (0..rows).map(|r| p[r] - (r == y) as u8 as f64).collect();
                    (p, d)
                };
                let xa = |j: usize| if j == dim { 1.0 } else { x[j] };
                for r in 0..rows {
                    for j in 0..width {
                        g[r * width + j] += c * d[r] * xa(j);
                    }
                }
                if want_hess {
                    for r in 0..rows {
                        for s in 0..rows {
                            // d²/ds_r ds_s: p(1-p) (binomial); p_r (δ_rs - p_s) (softmax).
                            let k = if rows == 1 {
                                probs[0] * (1.0 - probs[0])
                            } else {
                                probs[r] * ((r == s) as u8 as f64 - probs[s])
                            };
                            if k == 0.0 {
                                continue;
                            }
                            for i in 0..width {
                                let a = c * k * xa(i);
                                let row = (r * width + i) * np + s * width;
                                for j in 0..width {
                                    h[row + j] += a * xa(j);
                                }
                            }
                        }
                    }
                }
            }
            (f, g, h)
        };
        let (mut f, _, _) = eval(&w, false);
        for _ in 0..100 {
            let (_, g, mut h) = eval(&w, true);
            let gnorm = g.iter().map(|v| v.abs()).fold(0.0, f64::max);
            if gnorm < 1e-10 {
                break;
            }
            // The softmax's shift direction and unpenalised intercepts make H singular at
            // worst: a tiny ridge keeps Cholesky defined without moving the optimum visibly.
            for i in 0..np {
                h[i * np + i] += 1e-10;
            }
            let step = cholesky_solve(&h, &g, np).ok_or_else(|| {
                Error::param("features", "the Newton system is not positive definite")
            })?;
            // Backtracking line search on the objective.
            let mut t = 1.0;
            loop {
                let trial: Vec<f64> = w.iter().zip(&step).map(|(a, s)| a - t * s).collect();
                let (ft, _, _) = eval(&trial, false);
                if ft <= f - 1e-4 * t * g.iter().zip(&step).map(|(a, b)| a * b).sum::<f64>()
                    || t < 1e-10
                {
                    w = trial;
                    f = ft;
                    break;
                }
                t *= 0.5;
            }
        }
        let coef = (0..rows)
            .map(|r| w[r * width..r * width + dim].to_vec())
            .collect();
        let intercept = (0..rows).map(|r| w[r * width + dim]).collect();
        Ok(LogisticRegression {
            classes,
            dim,
            coef,
            intercept,
        })
    }

    /// Class probabilities for each row of `features`.
    pub fn predict_proba(&self, features: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        features
            .iter()
            .map(|x| {
                if x.len() != self.dim {
                    return Err(Error::param(
                        "features",
                        format!("row of width {} for a probe of width {}", x.len(), self.dim),
                    ));
                }
                let mut z: Vec<f64> = self
                    .coef
                    .iter()
                    .zip(&self.intercept)
                    .map(|(w, b)| b + w.iter().zip(x).map(|(a, v)| a * v).sum::<f64>())
                    .collect();
                if self.classes == 2 {
                    let p = 1.0 / (1.0 + (-z[0]).exp());
                    Ok(vec![1.0 - p, p])
                } else {
                    softmax_in_place(&mut z);
                    Ok(z)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the optimum the gradient of `½‖w‖² + C Σ CE` vanishes: checked in closed form.
    #[test]
    fn the_solution_satisfies_the_optimality_condition() {
        let x: Vec<Vec<f64>> = (0..30)
            .map(|i| {
                let t = i as f64 * 0.37;
                vec![t.sin(), (2.0 * t).cos(), t.cos() * 0.3]
            })
            .collect();
        let y2: Vec<usize> = (0..30).map(|i| (i * 7 % 5 < 2) as usize).collect();
        let y3: Vec<usize> = (0..30).map(|i| i * 7 % 3).collect();
        for (y, k) in [(y2, 2), (y3, 3)] {
            let c = 0.7;
            let m = LogisticRegression::fit(&x, &y, k, c).unwrap();
            let p = m.predict_proba(&x).unwrap();
            let rows = if k == 2 { vec![1] } else { (0..k).collect() };
            for (r, &class) in rows.iter().enumerate() {
                let resid = |i: usize| p[i][class] - (y[i] == class) as u8 as f64;
                for (j, w) in m.coef[r].iter().enumerate() {
                    let g = w + c * (0..30).map(|i| resid(i) * x[i][j]).sum::<f64>();
                    assert!(g.abs() < 1e-8, "class {class} weight {j}: gradient {g}");
                }
                let gb: f64 = c * (0..30).map(resid).sum::<f64>();
                assert!(gb.abs() < 1e-8, "intercept gradient {gb}");
            }
        }
    }

    #[test]
    fn bad_input_is_named() {
        let x = vec![vec![1.0, 2.0], vec![0.5]];
        assert!(LogisticRegression::fit(&x, &[0, 1], 2, 1.0)
            .unwrap_err()
            .to_string()
            .contains("width"));
        let x = vec![vec![1.0], vec![2.0]];
        assert!(LogisticRegression::fit(&x, &[0, 2], 2, 1.0)
            .unwrap_err()
            .to_string()
            .contains("label 2"));
        assert!(LogisticRegression::fit(&x, &[0, 1], 2, 0.0)
            .unwrap_err()
            .to_string()
            .contains("`c`"));
    }
}
