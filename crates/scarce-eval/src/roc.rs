//! Area under the ROC curve, computed exactly as the Mann–Whitney statistic
//! `P(s+ > s-) + ½ P(s+ = s-)` by sorting (O(n log n)); ties count one half, as in the
//! trapezoidal ROC area scikit-learn reports.

use crate::{invalid, Result};

/// Binary AUROC of `scores` for `positive[i]` (true = positive class).
pub fn auroc(positive: &[bool], scores: &[f64]) -> Result<f64> {
    if positive.len() != scores.len() {
        return Err(invalid(
            "scores",
            format!("{} scores for {} labels", scores.len(), positive.len()),
        ));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(invalid("scores", "NaN score"));
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(invalid(
            "labels",
            "AUROC needs both positive and negative samples",
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of midranks of the positives (1-based), tied blocks sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        let pos_in_block = order[i..=j].iter().filter(|&&k| positive[k]).count();
        rank_sum += mid * pos_in_block as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Ok(u / (n_pos as f64 * n_neg as f64))
}

/// One-vs-rest AUROC of each class, and their macro and prevalence-weighted means.
#[derive(Clone, Debug, PartialEq)]
pub struct OvrAuc {
    /// AUROC of `(label == k)` against `scores[:, k]`.
    pub per_class: Vec<f64>,
    /// Unweighted mean.
    pub macro_avg: f64,
    /// Mean weighted by class prevalence.
    pub weighted: f64,
}

fn check_multiclass(labels: &[usize], scores: &[Vec<f64>]) -> Result<usize> {
    if labels.len() != scores.len() || scores.is_empty() {
        return Err(invalid(
            "scores",
            format!("{} score rows for {} labels", scores.len(), labels.len()),
        ));
    }
    let k = scores[0].len();
    if k < 2 || scores.iter().any(|r| r.len() != k) {
        return Err(invalid(
            "scores",
            "rows must all have the same number (≥ 2) of classes",
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(invalid("labels", format!("label {bad} outside 0..{k}")));
    }
    Ok(k)
}

/// One-vs-rest AUROC (`roc_auc_score(multi_class="ovr")`).
pub fn auroc_ovr(labels: &[usize], scores: &[Vec<f64>]) -> Result<OvrAuc> {
    let k = check_multiclass(labels, scores)?;
    let mut per_class = Vec::with_capacity(k);
    let mut weighted = 0.0;
    for c in 0..k {
        let pos: Vec<bool> = labels.iter().map(|&l| l == c).collect();
        let col: Vec<f64> = scores.iter().map(|r| r[c]).collect();
        let a = auroc(&pos, &col)?;
        weighted += a * pos.iter().filter(|&&p| p).count() as f64 / labels.len() as f64;
        per_class.push(a);
    }
    let macro_avg = per_class.iter().sum::<f64>() / k as f64;
    Ok(OvrAuc {
        per_class,
        macro_avg,
        weighted,
    })
}

/// One-vs-one AUROC of Hand & Till (`multi_class="ovo"`, macro): the mean over class pairs
/// of `(A(j|k) + A(k|j)) / 2`, each on the samples of the two classes.
pub fn auroc_ovo(labels: &[usize], scores: &[Vec<f64>]) -> Result<f64> {
    let k = check_multiclass(labels, scores)?;
    let mut total = 0.0;
    let mut pairs = 0;
    for j in 0..k {
        for l in j + 1..k {
            let rows: Vec<usize> = (0..labels.len())
                .filter(|&i| labels[i] == j || labels[i] == l)
                .collect();
            let pair = |a: usize| -> Result<f64> {
                let pos: Vec<bool> = rows.iter().map(|&i| labels[i] == a).collect();
                let s: Vec<f64> = rows.iter().map(|&i| scores[i][a]).collect();
                auroc(&pos, &s)
            };
            total += (pair(j)? + pair(l)?) / 2.0;
            pairs += 1;
        }
    }
    Ok(total / pairs as f64)
}
