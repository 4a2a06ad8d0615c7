//! FedAvg over flat f32 updates, the form a model's parameters take on the wire (one
//! contiguous buffer per client), at memory speed.
//!
//! [`fedavg_f32`] reads every client value exactly once and writes the output once: each
//! parallel chunk of coordinates accumulates all clients in f64 in a cache-resident buffer,
//! then stores f32. Finiteness is checked on the output only (a NaN or infinity in any
//! client reaches the sum, even at weight 0: 0 · NaN and 0 · ∞ are NaN), and only when that check fails are the
//! clients scanned to name the one at fault, so a clean round costs one pass.
//!
//! [`StreamingMean`] is for updates that arrive one at a time (a network server): it holds
//! one f64 accumulator, so memory is O(parameters) whatever the number of clients.

use rayon::prelude::*;

use crate::{Error, Result};

/// Coordinates per parallel work item: 8192 f32 accumulators are 32 KiB, within L1.
const CHUNK: usize = 8192;

/// One client's flat update.
#[derive(Debug, Clone, Copy)]
pub struct FlatUpdate<'a> {
    /// The parameters, flattened and concatenated in the model's order.
    pub values: &'a [f32],
    /// Local examples (the FedAvg weight).
    pub num_examples: u64,
}

/// The num_examples-weighted mean `Σ (n_i / N) w_i` of flat f32 updates, accumulated in f64.
/// Errors name the client whose length differs from the first's or whose values hold NaN
/// or infinity.
pub fn fedavg_f32(updates: &[FlatUpdate]) -> Result<Vec<f32>> {
    let len = updates.first().map_or(0, |u| u.values.len());
    let mut out = vec![0f32; len];
    fedavg_f32_into(updates, &mut out)?;
    Ok(out)
}

/// [`fedavg_f32`] into a buffer the caller keeps across rounds (no allocation, no page
/// faults on a fresh output). `out` must have the clients' length.
pub fn fedavg_f32_into(updates: &[FlatUpdate], out: &mut [f32]) -> Result<()> {
    let first = updates
        .first()
        .ok_or_else(|| Error::config("updates", "no client updates in this round"))?;
    let len = first.values.len();
    for (i, u) in updates.iter().enumerate() {
        if u.values.len() != len {
            return Err(Error::Client {
                client: i,
                reason: format!("{} values where the first client has {len}", u.values.len()),
            });
        }
    }
    let total: u64 = updates.iter().map(|u| u.num_examples).sum();
    if total == 0 {
        return Err(Error::config(
            "num_examples",
            "the clients report 0 examples in total",
        ));
    }
    let factors: Vec<f64> = updates
        .iter()
        .map(|u| u.num_examples as f64 / total as f64)
        .collect();
    if out.len() != len {
        return Err(Error::config(
            "out",
            format!("{} values where the clients have {len}", out.len()),
        ));
    }
    let finite = out
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, o)| {
            let range = c * CHUNK..c * CHUNK + o.len();
            // Up to four clients per sweep: the accumulator chunk is loaded and stored a
            // quarter as often. The first sweep stores, so no pass zeroes `o`.
            let mut first = true;
            for (u, f) in updates.chunks(4).zip(factors.chunks(4)) {
                let col = |k: usize| (&u[k].values[range.clone()], f[k] as f32);
                match u.len() {
                    4 => sweep([col(0), col(1), col(2), col(3)], o, first),
                    3 => sweep([col(0), col(1), col(2)], o, first),
                    2 => sweep([col(0), col(1)], o, first),
                    _ => sweep([col(0)], o, first),
                }
                first = false;
            }
            if first {
                o.fill(0.0);
            }
            all_finite(o)
        })
        .reduce(|| true, |a, b| a && b);
    if !finite {
        return Err(first_non_finite(updates));
    }
    Ok(())
}

/// `o (+)= Σ_k f_k x_k` over `N` clients at once (stores when `first`).
#[inline(always)]
fn sweep<const N: usize>(columns: [(&[f32], f32); N], o: &mut [f32], first: bool) {
    let len = o.len();
    let xs: [&[f32]; N] = columns.map(|(x, _)| &x[..len]);
    let fs: [f32; N] = columns.map(|(_, f)| f);
    for (j, a) in o.iter_mut().enumerate() {
        let mut s = 0f32;
        for k in 0..N {
            s += fs[k] * xs[k][j];
        }
        *a = if first { s } else { *a + s };
    }
}

/// True when every value is finite. `x · 0` is 0 for finite x and NaN otherwise; summing it
/// in eight independent lanes keeps the check branch-free and vectorised.
fn all_finite(values: &[f32]) -> bool {
    let mut lanes = [0f32; 8];
    let mut blocks = values.chunks_exact(8);
    for block in blocks.by_ref() {
        for (l, &x) in lanes.iter_mut().zip(block) {
            *l += x * 0.0;
        }
    }
    let tail = blocks.remainder().iter().fold(0f32, |p, &x| p + x * 0.0);
    lanes.iter().sum::<f32>() + tail == 0.0
}

/// The error for a round whose weighted sum is not finite: the first client holding NaN or
/// infinity, or else an overflow of f32.
fn first_non_finite(updates: &[FlatUpdate]) -> Error {
    for (i, u) in updates.iter().enumerate() {
        if let Some(j) = u.values.par_iter().position_first(|v| !v.is_finite()) {
            return Error::Client {
                client: i,
                reason: format!("value {j} is {}", u.values[j]),
            };
        }
    }
    Error::config(
        "updates",
        "the weighted mean overflows f32 although every client value is finite",
    )
}

/// A weighted mean built one client at a time, in O(parameters) memory: `add` each update
/// as it arrives, then `finish`.
#[derive(Debug, Clone)]
pub struct StreamingMean {
    acc: Vec<f64>,
    total: u64,
    clients: usize,
}

impl StreamingMean {
    /// An empty mean over `len` parameters.
    pub fn new(len: usize) -> Self {
        StreamingMean {
            acc: vec![0.0; len],
            total: 0,
            clients: 0,
        }
    }

    /// Adds one client's update, weighted by its example count. The update is refused, and
    /// the mean left as it was, if its length differs or it holds NaN or infinity; `client`
    /// names it in the error.
    pub fn add(&mut self, client: usize, update: FlatUpdate) -> Result<()> {
        if update.values.len() != self.acc.len() {
            return Err(Error::Client {
                client,
                reason: format!(
                    "{} values where the model has {}",
                    update.values.len(),
                    self.acc.len()
                ),
            });
        }
        if let Some(j) = update.values.par_iter().position_first(|v| !v.is_finite()) {
            return Err(Error::Client {
                client,
                reason: format!("value {j} is {}", update.values[j]),
            });
        }
        let n = update.num_examples as f64;
        self.acc
            .par_chunks_mut(CHUNK)
            .zip(update.values.par_chunks(CHUNK))
            .for_each(|(a, v)| {
                for (a, &v) in a.iter_mut().zip(v) {
                    *a += n * v as f64;
                }
            });
        self.total += update.num_examples;
        self.clients += 1;
        Ok(())
    }

    /// Clients added so far.
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// The mean `Σ n_i w_i / Σ n_i`; an error when no examples were added.
    pub fn finish(self) -> Result<Vec<f32>> {
        if self.total == 0 {
            return Err(Error::config(
                "num_examples",
                "no client with examples was added",
            ));
        }
        let total = self.total as f64;
        Ok(self.acc.par_iter().map(|&a| (a / total) as f32).collect())
    }
}
