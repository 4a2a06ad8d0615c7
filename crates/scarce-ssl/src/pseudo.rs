//! Pseudo-labels whose acceptance comes from split conformal prediction instead of a fixed
//! confidence threshold: a pseudo-label is kept when the conformal prediction set of its
//! image, at miscoverage `alpha`, holds that one class alone (Vovk et al. 2005; Angelopoulos
//! & Bates 2021 for the quantile). With exchangeable calibration data, the set covers the
//! true class with probability at least `1 − alpha`, so a singleton is a label the model
//! cannot tell apart from certain at that level.

use scarce_core::{Error, Result};

/// The split-conformal threshold `q̂` for the scores `1 − p(true class)` of `n` calibration
/// images: their `⌈(n + 1)(1 − alpha)⌉`-th smallest value (+∞ when that rank exceeds `n`,
/// i.e. too few calibration images for the level).
pub fn conformal_threshold(true_class_probs: &[f64], alpha: f64) -> Result<f64> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(Error::param("alpha", format!("{alpha} must be in (0, 1)")));
    }
    if true_class_probs.is_empty() || true_class_probs.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::param(
            "true_class_probs",
            "need probabilities in [0, 1], at least one",
        ));
    }
    let n = true_class_probs.len();
    let mut scores: Vec<f64> = true_class_probs.iter().map(|p| 1.0 - p).collect();
    scores.sort_by(|a, b| a.total_cmp(b));
    let rank = ((n + 1) as f64 * (1.0 - alpha)).ceil() as usize;
    Ok(if rank > n {
        f64::INFINITY
    } else {
        scores[rank - 1]
    })
}

/// For each row of class probabilities, the class when the conformal set
/// `{c : 1 − p_c ≤ q̂}` is exactly that one class, else `None`.
pub fn singleton_labels(probs: &[Vec<f64>], qhat: f64) -> Vec<Option<usize>> {
    probs
        .iter()
        .map(|p| {
            let mut members = p.iter().enumerate().filter(|(_, &v)| 1.0 - v <= qhat);
            match (members.next(), members.next()) {
                (Some((c, _)), None) => Some(c),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_conformal_rank() {
        // n = 9, alpha = 0.2: rank ceil(10 · 0.8) = 8 of the sorted scores 0.1 … 0.9.
        let p: Vec<f64> = (1..=9).map(|i| 1.0 - i as f64 / 10.0).collect();
        let q = conformal_threshold(&p, 0.2).unwrap();
        assert!((q - 0.8).abs() < 1e-12, "{q}");
        // Too few images for alpha = 0.05: every set is every class.
        assert!(conformal_threshold(&p, 0.05).unwrap().is_infinite());
        assert!(conformal_threshold(&p, 0.0).is_err());
    }

    #[test]
    fn only_singleton_sets_give_labels() {
        let probs = vec![vec![0.95, 0.05], vec![0.6, 0.4], vec![0.1, 0.9]];
        // q̂ = 0.3: sets {0}, {} (neither 1 − p ≤ 0.3), {1}.
        assert_eq!(singleton_labels(&probs, 0.3), vec![Some(0), None, Some(1)]);
        // q̂ = 0.7: the second set holds both classes.
        assert_eq!(singleton_labels(&probs, 0.7), vec![Some(0), None, Some(1)]);
    }

    /// Coverage on exchangeable data: over many random calibration / test splits of scores
    /// drawn from one distribution, the true class is in the set at least 1 − alpha of the time.
    #[test]
    fn coverage_holds_on_exchangeable_data() {
        let rng = scarce_core::rng::Stream::new(5, "conformal");
        let alpha = 0.1;
        let (mut covered, mut total) = (0usize, 0usize);
        for trial in 0..400u64 {
            let r = rng.at(trial);
            let draw = |i: u64| r.uniform(i).powf(0.3); // p(true class), skewed towards 1
            let calib: Vec<f64> = (0..19).map(draw).collect();
            let q = conformal_threshold(&calib, alpha).unwrap();
            let test = draw(100);
            covered += (1.0 - test <= q) as usize;
            total += 1;
        }
        let rate = covered as f64 / total as f64;
        assert!(rate >= 1.0 - alpha - 0.03, "coverage {rate}");
    }
}
