//! Rényi differential privacy of the subsampled Gaussian mechanism (Mironov, Talwar and
//! Zhang 2019), composed over steps and converted to (ε, δ) — a port of Opacus's
//! `accountants/analysis/rdp.py` and `RDPAccountant` — and noise calibration for a target ε
//! (Opacus's `get_noise_multiplier`).

use crate::{Error, Result};

/// Opacus's default RDP orders: 1.1, 1.2, …, 10.9, then 12, 13, …, 63.
pub fn default_orders() -> Vec<f64> {
    (1..100)
        .map(|x| 1.0 + x as f64 / 10.0)
        .chain((12..64).map(f64::from))
        .collect()
}

/// `ln(eˣ + eʸ)`.
fn log_add(x: f64, y: f64) -> f64 {
    let (a, b) = (x.min(y), x.max(y));
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// `ln(eˣ − eʸ)` for `x ≥ y`.
fn log_sub(x: f64, y: f64) -> f64 {
    if y == f64::NEG_INFINITY {
        return x;
    }
    if x == y {
        return f64::NEG_INFINITY;
    }
    let d = (x - y).exp_m1();
    if d.is_infinite() {
        return x;
    }
    d.ln() + y
}

/// `ln(erfc(x))`, accurate far into the tail (scipy's `log(2) + log_ndtr(−x√2)`).
fn log_erfc(x: f64) -> f64 {
    if x < 20.0 {
        return libm::erfc(x).ln();
    }
    // Asymptotic series: erfc(x) = e^{−x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + …).
    let z = 1.0 / (2.0 * x * x);
    let series = 1.0 - z + 3.0 * z * z - 15.0 * z * z * z + 105.0 * z.powi(4);
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + series.ln()
}

/// `binom(a, i)` for real `a` and integer `i ≥ 0` (the falling-factorial product).
fn binom(a: f64, i: u64) -> f64 {
    (1..=i).fold(1.0, |acc, m| acc * (a - i as f64 + m as f64) / m as f64)
}

/// `ln A_α` for integer α (Mironov et al. 2019, Section 3.3).
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let log_coef =
            binom(alpha as f64, i).ln() + i as f64 * q.ln() + (alpha - i) as f64 * (1.0 - q).ln();
        let s = log_coef + (i * i - i) as f64 / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

/// `ln A_α` for fractional α (Mironov et al. 2019, Section 3.3).
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let mut i = 0u64;
    // binom(α, i), updated in place: the series can run to millions of terms for α near 1.
    let mut coef = 1.0f64;
    loop {
        let log_coef = coef.abs().ln();
        let fi = i as f64;
        let j = alpha - fi;
        let log_t0 = log_coef + fi * q.ln() + j * (1.0 - q).ln();
        let log_t1 = log_coef + j * q.ln() + fi * (1.0 - q).ln();
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / (2f64.sqrt() * sigma));
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / (2f64.sqrt() * sigma));
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        if coef > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        coef *= (alpha - fi) / (fi + 1.0);
        i += 1;
        if log_s0.max(log_s1) < -30.0 {
            break;
        }
    }
    log_add(log_a0, log_a1)
}

/// RDP at order `alpha` of one step of the Gaussian mechanism with noise multiplier `sigma`
/// on a Poisson sample of rate `q`.
pub fn rdp_one_step(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// RDP at each of `orders` after `steps` steps (composition is additive).
pub fn compute_rdp(q: f64, sigma: f64, steps: u64, orders: &[f64]) -> Vec<f64> {
    orders
        .iter()
        .map(|&a| rdp_one_step(q, sigma, a) * steps as f64)
        .collect()
}

/// The ε at `delta` of an RDP curve (Balle et al. 2020, Theorem 21, as Opacus converts),
/// minimised over the orders; returns `(ε, best order)`. NaN orders are skipped; all NaN
/// gives `(∞, NaN)`.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = r - (delta.ln() + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln();
        if !eps.is_nan() && (best.1.is_nan() || eps < best.0) {
            best = (eps, a);
        }
    }
    best
}

/// Privacy spent by DP-SGD / DP-FedAvg: `steps` rounds of the subsampled Gaussian
/// mechanism with sampling rate `q` and noise multiplier `sigma`, at `delta`, over
/// Opacus's default orders. Returns `(ε, best order)`.
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<(f64, f64)> {
    check(q, sigma, delta)?;
    let orders = default_orders();
    Ok(epsilon_from_rdp(
        &orders,
        &compute_rdp(q, sigma, steps, &orders),
        delta,
    ))
}

fn check(q: f64, sigma: f64, delta: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&q) {
        return Err(Error::config(
            "sample_rate",
            format!("{q}: must be in [0, 1]"),
        ));
    }
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::config(
            "noise_multiplier",
            format!("{sigma}: must be finite and ≥ 0"),
        ));
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(Error::config(
            "delta",
            format!("{delta}: must be in (0, 1)"),
        ));
    }
    Ok(())
}

/// The noise multiplier that keeps ε at most `target_epsilon` (within `tolerance`) after
/// `steps` steps at rate `q` and `delta`: Opacus's search (double from 10 until ε fits,
/// then bisect), so the result is the same dyadic value Opacus returns.
pub fn noise_multiplier(
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
    tolerance: f64,
) -> Result<f64> {
    check(q, 1.0, delta)?;
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(Error::config(
            "target_epsilon",
            format!("{target_epsilon}: must be finite and positive"),
        ));
    }
    let eps = |sigma: f64| epsilon(q, sigma, steps, delta).map(|e| e.0);
    let (mut low, mut high) = (0.0f64, 10.0f64);
    let mut eps_high = f64::INFINITY;
    while eps_high > target_epsilon {
        high *= 2.0;
        if high > 1e12 {
            return Err(Error::config(
                "target_epsilon",
                format!(
                    "{target_epsilon} is not reachable at delta {delta}, rate {q}, {steps} steps"
                ),
            ));
        }
        eps_high = eps(high)?;
    }
    while target_epsilon - eps_high > tolerance {
        let sigma = (low + high) / 2.0;
        let e = eps(sigma)?;
        if e < target_epsilon {
            high = sigma;
            eps_high = e;
        } else {
            low = sigma;
        }
    }
    Ok(high)
}
