//! Confusion matrix and the per-class rates read from it.

use crate::{invalid, Result};

/// `counts[t][p]`: samples of true class `t` predicted as `p` (rows are the truth, as in
/// scikit-learn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// The counts, `k × k`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Counts `(truth, prediction)` pairs over classes `0..k`.
    pub fn new(truth: &[usize], predicted: &[usize], k: usize) -> Result<Self> {
        if truth.len() != predicted.len() {
            return Err(invalid(
                "predicted",
                format!("{} predictions for {} labels", predicted.len(), truth.len()),
            ));
        }
        if k == 0 {
            return Err(invalid("k", "need at least one class"));
        }
        let mut counts = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t >= k || p >= k {
                return Err(invalid(
                    "labels",
                    format!("label {} outside 0..{k}", t.max(p)),
                ));
            }
            counts[t][p] += 1;
        }
        Ok(ConfusionMatrix { counts })
    }

    /// Number of classes.
    pub fn k(&self) -> usize {
        self.counts.len()
    }

    /// Fraction correct.
    pub fn accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().flatten().sum();
        let right: u64 = (0..self.k()).map(|i| self.counts[i][i]).sum();
        right as f64 / total.max(1) as f64
    }

    /// Sensitivity (recall) of each class: `C[i][i] / row i`; NaN for a class with no
    /// sample.
    pub fn sensitivity(&self) -> Vec<f64> {
        (0..self.k())
            .map(|i| {
                let row: u64 = self.counts[i].iter().sum();
                self.counts[i][i] as f64 / row as f64
            })
            .collect()
    }

    /// Specificity of each class (one-vs-rest): true negatives over all negatives.
    pub fn specificity(&self) -> Vec<f64> {
        let total: u64 = self.counts.iter().flatten().sum();
        (0..self.k())
            .map(|i| {
                let row: u64 = self.counts[i].iter().sum();
                let col: u64 = self.counts.iter().map(|r| r[i]).sum();
                let tn = total - row - col + self.counts[i][i];
                tn as f64 / (total - row) as f64
            })
            .collect()
    }

    /// Mean sensitivity over classes that have samples (scikit-learn's
    /// `balanced_accuracy_score`); `adjusted` rescales so that chance is 0 and perfect 1.
    pub fn balanced_accuracy(&self, adjusted: bool) -> f64 {
        let rec: Vec<f64> = self
            .sensitivity()
            .into_iter()
            .filter(|r| !r.is_nan())
            .collect();
        let bal = rec.iter().sum::<f64>() / rec.len() as f64;
        if adjusted {
            let chance = 1.0 / rec.len() as f64;
            (bal - chance) / (1.0 - chance)
        } else {
            bal
        }
    }
}
