//! Mean and 95% confidence interval over episodes, as the few-shot literature reports
//! them: `mean ± 1.96 · std / sqrt(n)` with the sample standard deviation (n − 1).

use crate::{invalid, Result};

/// A mean with the half-width of its 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanCi {
    /// The mean.
    pub mean: f64,
    /// Half-width of the normal-approximation 95% interval.
    pub ci95: f64,
    /// Number of values.
    pub n: usize,
}

impl std::fmt::Display for MeanCi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ± {:.2}", self.mean, self.ci95)
    }
}

/// Mean and 95% interval of `values` (e.g. per-episode accuracies in %).
pub fn mean_ci95(values: &[f64]) -> Result<MeanCi> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return Err(invalid("values", "need at least one finite value"));
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Ok(MeanCi {
        mean,
        ci95: 1.96 * var.sqrt() / n.sqrt(),
        n: values.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form() {
        // mean 2.5, sample std sqrt(5/3), n = 4.
        let m = mean_ci95(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m.mean, 2.5);
        assert!((m.ci95 - 1.96 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
        assert!(mean_ci95(&[]).is_err());
    }
}
