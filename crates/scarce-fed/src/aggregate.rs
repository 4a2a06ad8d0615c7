//! One round's aggregation rules, with Flower's arithmetic (`flwr/server/strategy/aggregate.py`):
//! weighted mean, coordinate-wise median and trimmed mean, Krum / Multi-Krum and Bulyan.
//!
//! The coordinate-wise rules run in parallel over chunks of coordinates and hold one
//! output-sized buffer (plus, for median / trimmed mean / Bulyan, one value per client per
//! coordinate being reduced), never a stacked clients × parameters copy.

use rayon::prelude::*;

use crate::weights::{check_round, ClientUpdate, Weights};
use crate::{Error, Result};

/// Coordinates per parallel work item.
const CHUNK: usize = 4096;

/// Applies `rule` to the values of all clients at each coordinate (in client order), in
/// parallel over chunks; `rule` gets a scratch slice of one value per client.
fn per_coordinate(results: &[&Weights], rule: impl Fn(&mut [f64]) -> f64 + Sync) -> Weights {
    let first = results[0];
    let mut out = first.zeros_like();
    for (k, layer) in out.layers.iter_mut().enumerate() {
        layer
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let mut column = vec![0.0; results.len()];
                for (j, o) in chunk.iter_mut().enumerate() {
                    let at = c * CHUNK + j;
                    for (v, r) in column.iter_mut().zip(results) {
                        *v = r.layers[k][at];
                    }
                    *o = rule(&mut column);
                }
            });
    }
    out
}

/// The num_examples-weighted mean `Σ (n_i / N) w_i` (Flower's `aggregate_inplace`, which
/// `FedAvg.aggregate_fit` uses).
pub fn weighted_mean(results: &[ClientUpdate]) -> Result<Weights> {
    check_round(results)?;
    let total = results.iter().map(|r| r.num_examples).sum::<u64>() as f64;
    let factors: Vec<f64> = results
        .iter()
        .map(|r| r.num_examples as f64 / total)
        .collect();
    let w: Vec<&Weights> = results.iter().map(|r| &r.weights).collect();
    Ok(combine(&w, &factors))
}

/// The unweighted mean of the clients' weights.
pub fn mean(results: &[ClientUpdate]) -> Result<Weights> {
    check_round(results)?;
    let w: Vec<&Weights> = results.iter().map(|r| &r.weights).collect();
    Ok(combine(&w, &vec![1.0 / w.len() as f64; w.len()]))
}

/// `Σ f_i w_i` in one pass over the output: each parallel chunk of coordinates adds the
/// clients in order while it is in cache (the first initialises: Flower multiplies, then
/// adds).
fn combine(weights: &[&Weights], factors: &[f64]) -> Weights {
    let mut out = weights[0].zeros_like();
    for (k, acc) in out.layers.iter_mut().enumerate() {
        acc.par_chunks_mut(CHUNK).enumerate().for_each(|(c, a)| {
            let (at, len) = (c * CHUNK, a.len());
            for (a, w) in a.iter_mut().zip(&weights[0].layers[k][at..at + len]) {
                *a = w * factors[0];
            }
            for (wi, &f) in weights.iter().zip(factors).skip(1) {
                for (a, w) in a.iter_mut().zip(&wi.layers[k][at..at + len]) {
                    *a += w * f;
                }
            }
        });
    }
    out
}

fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Coordinate-wise median (numpy's: the mean of the two middle values for an even count).
/// Example counts are ignored.
pub fn median(results: &[ClientUpdate]) -> Result<Weights> {
    check_round(results)?;
    let w: Vec<&Weights> = results.iter().map(|r| &r.weights).collect();
    Ok(per_coordinate(&w, median_of))
}

/// Coordinate-wise trimmed mean: drop `floor(proportion · n)` values from each end and
/// average the rest, unweighted (Flower's `_trim_mean`).
pub fn trimmed_mean(results: &[ClientUpdate], proportion: f64) -> Result<Weights> {
    check_round(results)?;
    let n = results.len();
    if !(0.0..0.5).contains(&proportion) {
        return Err(Error::config(
            "proportion",
            format!("{proportion}: must be in [0, 0.5)"),
        ));
    }
    let cut = (proportion * n as f64) as usize;
    let w: Vec<&Weights> = results.iter().map(|r| &r.weights).collect();
    Ok(per_coordinate(&w, |v| {
        v.sort_by(f64::total_cmp);
        let kept = &v[cut..n - cut];
        kept.iter().sum::<f64>() / kept.len() as f64
    }))
}

/// Squared L2 distances between clients over all layers flattened (Flower's
/// `_compute_distances`: the norm, squared). An error when two clients' layouts differ.
pub fn distance_matrix(weights: &[&Weights]) -> Result<Vec<Vec<f64>>> {
    let n = weights.len();
    let mut d = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..n {
            d[i][j] = weights[i].squared_distance(weights[j])?.sqrt().powi(2);
        }
    }
    Ok(d)
}

/// Krum scores: for each client, the sum of its `max(1, n − f − 2)` smallest distances to
/// the other clients.
pub fn krum_scores(distances: &[Vec<f64>], num_malicious: usize) -> Vec<f64> {
    let n = distances.len();
    let closest = (n.saturating_sub(num_malicious + 2)).max(1);
    distances
        .iter()
        .map(|row| {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| row[a].total_cmp(&row[b]));
            // The first is the client itself (distance 0), as in Flower's argsort[1:].
            order[1..=closest.min(n - 1)].iter().map(|&j| row[j]).sum()
        })
        .collect()
}

/// What Krum chose.
#[derive(Debug, Clone, PartialEq)]
pub struct KrumOutcome {
    /// The aggregate: the best client's weights, or the weighted mean of the `to_keep` best.
    pub weights: Weights,
    /// The chosen clients (indices into the round's results), ascending.
    pub selected: Vec<usize>,
    /// Each client's score.
    pub scores: Vec<f64>,
    /// The squared distances.
    pub distances: Vec<Vec<f64>>,
}

/// Krum (`to_keep = 0`: the client with the lowest score) and Multi-Krum (`to_keep > 0`: the
/// num_examples-weighted mean of the `to_keep` lowest-scoring clients), assuming at most
/// `num_malicious` Byzantine clients.
pub fn krum(results: &[ClientUpdate], num_malicious: usize, to_keep: usize) -> Result<KrumOutcome> {
    check_round(results)?;
    if to_keep > results.len() {
        return Err(Error::config(
            "to_keep",
            format!("{to_keep} is more than the {} clients", results.len()),
        ));
    }
    let w: Vec<&Weights> = results.iter().map(|r| &r.weights).collect();
    let distances = distance_matrix(&w)?;
    let scores = krum_scores(&distances, num_malicious);
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (weights, mut selected) = if to_keep > 0 {
        let kept = &order[..to_keep];
        let total: u64 = kept.iter().map(|&i| results[i].num_examples).sum();
        if total == 0 {
            return Err(Error::config(
                "num_examples",
                "the kept clients report 0 examples",
            ));
        }
        let w: Vec<&Weights> = kept.iter().map(|&i| &results[i].weights).collect();
        let f: Vec<f64> = kept
            .iter()
            .map(|&i| results[i].num_examples as f64 / total as f64)
            .collect();
        (combine(&w, &f), kept.to_vec())
    } else {
        (results[order[0]].weights.clone(), vec![order[0]])
    };
    selected.sort_unstable();
    Ok(KrumOutcome {
        weights,
        selected,
        scores,
        distances,
    })
}

/// Bulyan (El Mhamdi et al. 2018, Flower's `aggregate_bulyan` with Krum): pick `n − 2f`
/// clients by repeated Krum on the remaining ones, then per coordinate average the
/// `n − 4f` picked values closest to their median. Needs `n ≥ 4f + 3`. Returns the aggregate
/// and the picks in pick order.
pub fn bulyan(results: &[ClientUpdate], num_malicious: usize) -> Result<(Weights, Vec<usize>)> {
    check_round(results)?;
    let (n, f) = (results.len(), num_malicious);
    if n < 4 * f + 3 {
        return Err(Error::config(
            "num_malicious",
            format!("Bulyan needs n ≥ 4f + 3 clients: f = {f} with n = {n}"),
        ));
    }
    let theta = n - 2 * f;
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut picked = Vec::with_capacity(theta);
    while picked.len() < theta {
        let w: Vec<&Weights> = remaining.iter().map(|&i| &results[i].weights).collect();
        let scores = krum_scores(&distance_matrix(&w)?, f);
        let best = (0..remaining.len())
            .min_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .ok_or_else(|| Error::config("results", "no client left to pick"))?;
        picked.push(remaining.remove(best));
    }
    let beta = theta - 2 * f;
    let w: Vec<&Weights> = picked.iter().map(|&i| &results[i].weights).collect();
    let aggregate = per_coordinate(&w, |v| {
        // `median_of` sorts the scratch column in place; then order it by distance to m.
        let m = median_of(v);
        v.sort_by(|a, b| (a - m).abs().total_cmp(&(b - m).abs()));
        v[..beta].iter().sum::<f64>() / beta as f64
    });
    Ok((aggregate, picked))
}
