//! Calibration: expected calibration error over equal-width confidence bins (with the bins
//! for a reliability diagram) and temperature scaling fitted by minimising the negative
//! log-likelihood.

use crate::{invalid, Result};

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReliabilityBin {
    /// Lower confidence edge.
    pub lo: f64,
    /// Upper confidence edge.
    pub hi: f64,
    /// Samples in the bin.
    pub count: usize,
    /// Mean confidence of those samples.
    pub confidence: f64,
    /// Their accuracy.
    pub accuracy: f64,
}

fn softmax(row: &[f64], t: f64) -> Vec<f64> {
    let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b / t));
    let e: Vec<f64> = row.iter().map(|&v| (v / t - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn check(logits: &[Vec<f64>], labels: &[usize]) -> Result<()> {
    if logits.is_empty() || logits.len() != labels.len() {
        return Err(invalid(
            "logits",
            format!("{} rows for {} labels", logits.len(), labels.len()),
        ));
    }
    let k = logits[0].len();
    if logits
        .iter()
        .any(|r| r.len() != k || r.iter().any(|v| !v.is_finite()))
    {
        return Err(invalid(
            "logits",
            "rows must have equal length and finite values",
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(invalid("labels", format!("label {bad} outside 0..{k}")));
    }
    Ok(())
}

/// ECE with `bins` equal-width bins over the top-class probability (bins are `(lo, hi]`,
/// the first `[0, hi]`), and the bins themselves.
pub fn expected_calibration_error(
    logits: &[Vec<f64>],
    labels: &[usize],
    bins: usize,
) -> Result<(f64, Vec<ReliabilityBin>)> {
    check(logits, labels)?;
    if bins == 0 {
        return Err(invalid("bins", "need at least one bin"));
    }
    let mut acc = vec![(0usize, 0.0f64, 0usize); bins];
    for (row, &y) in logits.iter().zip(labels) {
        let p = softmax(row, 1.0);
        let (arg, conf) =
            p.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        let b = ((conf * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        acc[b].0 += 1;
        acc[b].1 += conf;
        acc[b].2 += (arg == y) as usize;
    }
    let n = labels.len() as f64;
    let mut ece = 0.0;
    let bins_out = acc
        .iter()
        .enumerate()
        .map(|(i, &(count, conf, right))| {
            let (c, a) = if count > 0 {
                (conf / count as f64, right as f64 / count as f64)
            } else {
                (0.0, 0.0)
            };
            ece += count as f64 / n * (c - a).abs();
            ReliabilityBin {
                lo: i as f64 / bins as f64,
                hi: (i + 1) as f64 / bins as f64,
                count,
                confidence: c,
                accuracy: a,
            }
        })
        .collect();
    Ok((ece, bins_out))
}

/// Mean negative log-likelihood of `labels` under `softmax(logits / t)`.
pub fn nll(logits: &[Vec<f64>], labels: &[usize], t: f64) -> f64 {
    logits
        .iter()
        .zip(labels)
        .map(|(row, &y)| -softmax(row, t)[y].ln())
        .sum::<f64>()
        / labels.len() as f64
}

/// The temperature `t > 0` minimising the NLL of `softmax(logits / t)` (golden-section
/// search on `ln t` over `[1e-2, 1e2]`, to 1e-6 relative).
pub fn fit_temperature(logits: &[Vec<f64>], labels: &[usize]) -> Result<f64> {
    check(logits, labels)?;
    let f = |u: f64| nll(logits, labels, u.exp());
    let (mut a, mut b) = ((1e-2f64).ln(), (1e2f64).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-6 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    Ok(((a + b) / 2.0).exp())
}

/// A reliability diagram: per bin, a bar of the accuracy (blue) beside the diagonal of
/// perfect calibration (grey), with the gap to the bin's mean confidence in red. Put it in a
/// [`crate::plot::Figure`] to save it.
pub fn reliability_diagram(bins: &[ReliabilityBin]) -> crate::plot::Chart {
    use crate::plot::{colours, Chart};
    let used: Vec<&ReliabilityBin> = bins.iter().filter(|b| b.count > 0).collect();
    let bars = used
        .iter()
        .map(|b| [(b.lo, 0.0), (b.hi, b.accuracy)])
        .collect();
    let gaps = used
        .iter()
        .map(|b| [(b.lo, b.accuracy), (b.hi, b.confidence)])
        .collect();
    Chart::new("Reliability diagram")
        .x_axis("confidence", Some((0.0, 1.0)))
        .y_axis("accuracy", Some((0.0, 1.0)))
        .boxes("accuracy", bars, colours::BLUE)
        .boxes("gap to confidence", gaps, colours::RED)
        .line(
            "perfect calibration",
            vec![(0.0, 0.0), (1.0, 1.0)],
            colours::GREY_DARK,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_confident_and_right_has_zero_ece() {
        let logits = vec![vec![50.0, 0.0], vec![0.0, 50.0]];
        let (ece, bins) = expected_calibration_error(&logits, &[0, 1], 10).unwrap();
        assert!(ece < 1e-12);
        assert_eq!(bins[9].count, 2);
    }

    #[test]
    fn reliability_bars_reach_the_bin_accuracy() {
        let bins = [
            ReliabilityBin {
                lo: 0.5,
                hi: 1.0,
                count: 4,
                confidence: 0.75,
                accuracy: 0.5,
            },
            ReliabilityBin {
                lo: 0.0,
                hi: 0.5,
                count: 0,
                confidence: 0.0,
                accuracy: 0.0,
            },
        ];
        let chart = reliability_diagram(&bins);
        // One bar (the empty bin draws none) from 0 up to the accuracy, one gap bar between
        // accuracy and confidence.
        assert_eq!(
            chart.boxes_named("accuracy"),
            Some(&[[(0.5, 0.0), (1.0, 0.5)]][..])
        );
        assert_eq!(
            chart.boxes_named("gap to confidence"),
            Some(&[[(0.5, 0.5), (1.0, 0.75)]][..])
        );
    }

    /// Two classes with logits `[ln p, ln(1 − p)]`: the softmax confidence is `max(p, 1 − p)`.
    fn row(p: f64) -> Vec<f64> {
        vec![p.ln(), (1.0 - p).ln()]
    }

    #[test]
    fn ece_matches_a_hand_worked_case() {
        // Guo et al. 2017: ECE = Σ_m |B_m|/n · |acc(B_m) − conf(B_m)|, five bins.
        // conf 0.95 right, 0.85 wrong -> bin (0.8, 1]: acc 1/2, conf 0.90, weight 2/5 -> 0.16
        // conf 0.55 right             -> bin (0.4, 0.6]: acc 1, conf 0.55, weight 1/5 -> 0.09
        // conf 0.65 right, 0.75 wrong -> bin (0.6, 0.8]: acc 1/2, conf 0.70, weight 2/5 -> 0.08
        let logits = vec![row(0.95), row(0.85), row(0.55), row(0.35), row(0.75)];
        let labels = [0, 1, 0, 1, 1];
        let (ece, bins) = expected_calibration_error(&logits, &labels, 5).unwrap();
        assert!((ece - 0.33).abs() < 1e-12, "{ece}");
        let counts: Vec<usize> = bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0, 0, 1, 2, 2]);
        assert!((bins[4].confidence - 0.9).abs() < 1e-12 && bins[4].accuracy == 0.5);
    }

    #[test]
    fn temperature_has_its_closed_form() {
        // Every sample has logits [2, 0] and three in four are class 0: the NLL of
        // softmax(z / t) is minimised where σ(2 / t) = 3/4, i.e. t = 2 / ln 3.
        let logits = vec![vec![2.0, 0.0]; 8];
        let labels = [0, 0, 0, 1, 0, 0, 0, 1];
        let t = fit_temperature(&logits, &labels).unwrap();
        let want = 2.0 / 3f64.ln();
        assert!((t / want - 1.0).abs() < 1e-5, "{t} vs {want}");
    }

    #[test]
    fn temperature_recovers_the_generating_one() {
        // Labels drawn (deterministically, by quantiles) from softmax(z / 2): the NLL
        // minimiser is close to 2 for many samples.
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..2000 {
            let z = (i % 40) as f64 / 4.0 - 5.0;
            let row = vec![z, 0.0];
            let p0 = softmax(&row, 2.0)[0];
            let u = ((i * 7919) % 1000) as f64 / 1000.0 + 0.0005;
            labels.push(if u < p0 { 0 } else { 1 });
            logits.push(row);
        }
        let t = fit_temperature(&logits, &labels).unwrap();
        assert!((t - 2.0).abs() < 0.15, "{t}");
    }
}
