//! Splitting one data set into clients for experiments: IID, Dirichlet(α) label skew,
//! quantity skew, and by a real site or patient column.
//!
//! Each partition is a list of item indices, sorted, and every item goes to exactly one
//! client. Splits are pure functions of the seed (`scarce_core::rng::Stream`), so an
//! experiment can be rerun bit for bit.

use std::collections::BTreeMap;

use scarce_core::rng::Stream;

use crate::{Error, Result};

fn check_clients(clients: usize, items: usize) -> Result<()> {
    if clients == 0 || clients > items {
        return Err(Error::config(
            "clients",
            format!("{clients}: must be in 1..={items} (the number of items)"),
        ));
    }
    Ok(())
}

/// A Gamma(α, 1) draw (Marsaglia & Tsang 2000; α < 1 through Gamma(α + 1) · U^(1/α)), taking
/// its uniforms and normals from `s`.
fn gamma(s: Stream, alpha: f64) -> f64 {
    if alpha < 1.0 {
        return gamma(s.child("boost"), alpha + 1.0) * s.uniform(0).powf(1.0 / alpha);
    }
    let d = alpha - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    // Accepts with probability above 0.95 per try.
    let mut k = 0;
    loop {
        let t = s.at(k);
        k += 1;
        let x = t.normal(0); // draws 0 and 1 of `t`
        let v = (1.0 + c * x).powi(3);
        if v > 0.0 && t.uniform(2).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Dirichlet(α, …, α) draw of dimension `k`.
fn dirichlet(s: Stream, alpha: f64, k: usize) -> Vec<f64> {
    let g: Vec<f64> = (0..k).map(|i| gamma(s.at(i as u64), alpha)).collect();
    let total: f64 = g.iter().sum();
    g.iter().map(|v| v / total).collect()
}

/// Cuts `items` (in order) into consecutive pieces by `proportions`, rounding the cut points.
fn cut(items: &[usize], proportions: &[f64]) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(proportions.len());
    let (mut start, mut cumulative) = (0, 0.0);
    for p in proportions {
        cumulative += p;
        let end = ((cumulative * items.len() as f64).round() as usize).min(items.len());
        out.push(items[start..end.max(start)].to_vec());
        start = end.max(start);
    }
    if let Some(last) = out.last_mut() {
        last.extend_from_slice(&items[start..]);
    }
    out
}

fn sorted(mut parts: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    for p in &mut parts {
        p.sort_unstable();
    }
    parts
}

/// IID: a seeded shuffle cut into `clients` parts whose sizes differ by at most one.
pub fn iid(items: usize, clients: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    check_clients(clients, items)?;
    let order = Stream::new(seed, "partition-iid").permutation(items);
    let mut parts = vec![Vec::new(); clients];
    for (i, item) in order.into_iter().enumerate() {
        parts[i % clients].push(item);
    }
    Ok(sorted(parts))
}

/// Label skew (Hsu et al. 2019, as Flower Datasets' `DirichletPartitioner`): for each class,
/// client proportions are drawn from Dirichlet(α) and the class's (shuffled) items are cut
/// by them. Smaller α means more skew. Draws are repeated (up to 100 times, on the next
/// child stream) until every client holds at least `min_size` items; an error says so if
/// that never happens.
pub fn dirichlet_label_skew(
    labels: &[usize],
    clients: usize,
    alpha: f64,
    min_size: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    check_clients(clients, labels.len())?;
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::config(
            "alpha",
            format!("{alpha}: must be finite and positive"),
        ));
    }
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let root = Stream::new(seed, "partition-dirichlet");
    for attempt in 0..100u64 {
        let s = root.at(attempt);
        let mut parts = vec![Vec::new(); clients];
        for (&class, items) in &by_class {
            let c = s.at(class as u64);
            let order = c.child("shuffle").permutation(items.len());
            let shuffled: Vec<usize> = order.into_iter().map(|k| items[k]).collect();
            let p = dirichlet(c.child("proportions"), alpha, clients);
            for (part, piece) in parts.iter_mut().zip(cut(&shuffled, &p)) {
                part.extend(piece);
            }
        }
        if parts.iter().all(|p| p.len() >= min_size) {
            return Ok(sorted(parts));
        }
    }
    Err(Error::config(
        "min_size",
        format!("no Dirichlet({alpha}) draw in 100 gave every one of {clients} clients {min_size} items"),
    ))
}

/// Quantity skew: client sizes proportional to a Dirichlet(α) draw (at least one item each),
/// items assigned after a seeded shuffle, so labels stay IID.
pub fn quantity_skew(
    items: usize,
    clients: usize,
    alpha: f64,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    check_clients(clients, items)?;
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::config(
            "alpha",
            format!("{alpha}: must be finite and positive"),
        ));
    }
    let s = Stream::new(seed, "partition-quantity");
    let order = s.child("shuffle").permutation(items);
    // One item each first, the rest by the proportions.
    let p = dirichlet(s.child("proportions"), alpha, clients);
    let mut parts: Vec<Vec<usize>> = order[..clients].iter().map(|&i| vec![i]).collect();
    for (part, piece) in parts.iter_mut().zip(cut(&order[clients..], &p)) {
        part.extend(piece);
    }
    Ok(sorted(parts))
}

/// One client per distinct value of a real site column, in the order of the sorted values.
/// Returns the values with their parts.
pub fn by_site<K: Ord + Clone>(sites: &[K]) -> Vec<(K, Vec<usize>)> {
    let mut map: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, s) in sites.iter().enumerate() {
        map.entry(s.clone()).or_default().push(i);
    }
    map.into_iter().collect()
}

/// Whole groups (patients) to `clients` clients: no group is split, groups are dealt in a
/// seeded order to the client with the fewest items so far, which balances sizes.
pub fn by_group<K: Ord + Clone>(
    groups: &[K],
    clients: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    let members = by_site(groups);
    if clients == 0 || clients > members.len() {
        return Err(Error::config(
            "clients",
            format!(
                "{clients}: must be in 1..={} (the number of groups)",
                members.len()
            ),
        ));
    }
    let order = Stream::new(seed, "partition-group").permutation(members.len());
    let mut parts: Vec<Vec<usize>> = vec![Vec::new(); clients];
    for g in order {
        let smallest = (0..clients)
            .min_by_key(|&c| (parts[c].len(), c))
            .unwrap_or(0);
        parts[smallest].extend_from_slice(&members[g].1);
    }
    Ok(sorted(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gamma(α, 1) has mean α and variance α.
    #[test]
    fn gamma_has_its_closed_form_moments() {
        for alpha in [0.3, 1.0, 2.5] {
            let n = 200_000;
            let s = Stream::new(3, "gamma-test");
            let draws: Vec<f64> = (0..n).map(|i| gamma(s.at(i), alpha)).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            // Standard errors: sqrt(α/n) for the mean, about sqrt((2α² + 6α)/n) for the
            // variance; allow five of each.
            let n = n as f64;
            assert!(
                (mean - alpha).abs() < 5.0 * (alpha / n).sqrt(),
                "{alpha}: mean {mean}"
            );
            let se_var = ((2.0 * alpha * alpha + 6.0 * alpha) / n).sqrt();
            assert!((var - alpha).abs() < 5.0 * se_var, "{alpha}: var {var}");
        }
    }
}
