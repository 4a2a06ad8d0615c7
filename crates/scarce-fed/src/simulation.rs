//! Federated training in one process: every client is a value implementing [`Client`], the
//! sampled ones train in parallel (rayon), and the [`Server`] does the rest. A client that
//! returns an error or panics fails the round for itself only; the round completes with the
//! others and its report says who failed and why.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rayon::prelude::*;

use crate::server::{weighted_metrics, Fit, RoundReport, Server};
use crate::strategy::Strategy;
use crate::weights::Weights;
use crate::{Error, Result};

/// One site of a federation.
pub trait Client: Send {
    /// Trains from `global` for round `round` on local data.
    fn fit(&mut self, global: &Weights, round: u64) -> Result<Fit>;

    /// Evaluates `global` on local held-out data: the example count and the metrics.
    fn evaluate(&mut self, global: &Weights) -> Result<(u64, BTreeMap<String, f64>)>;
}

/// Runs `f`, turning a panic into an error that names the client.
fn guarded<T>(client: usize, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Error::Client {
            client,
            reason: format!("panicked: {what}"),
        })
    })
}

/// What evaluating the global model on every client gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The example-weighted mean of each metric over the clients that answered, plus
    /// `clients_evaluated`.
    pub metrics: BTreeMap<String, f64>,
    /// The clients whose evaluation failed, with what they reported; they are not in
    /// `metrics`.
    pub failed: Vec<(usize, String)>,
}

/// Evaluates `global` on every client in parallel. A client that fails is named in
/// [`Evaluation::failed`], never dropped silently.
pub fn evaluate<C: Client>(clients: &mut [C], global: &Weights) -> Evaluation {
    let results: Vec<_> = clients
        .par_iter_mut()
        .enumerate()
        .map(|(i, c)| (i, guarded(i, || c.evaluate(global))))
        .collect();
    let (mut answers, mut failed) = (Vec::new(), Vec::new());
    for (i, r) in results {
        match r {
            Ok(a) => answers.push(a),
            Err(e) => failed.push((i, e.to_string())),
        }
    }
    let mut metrics = weighted_metrics(answers.iter().map(|(n, m)| (m, *n)));
    metrics.insert("clients_evaluated".into(), answers.len() as f64);
    Evaluation { metrics, failed }
}

/// Runs rounds until the server has completed `rounds` (a resumed server continues where
/// its checkpoint left off), evaluating the global model on every client after each round
/// when `evaluate_each_round` is set. `on_round` sees each report (progress lines, plots).
pub fn run<S: Strategy, C: Client>(
    server: &mut Server<S>,
    clients: &mut [C],
    rounds: u64,
    evaluate_each_round: bool,
    mut on_round: impl FnMut(&RoundReport),
) -> Result<()> {
    while server.round() < rounds {
        let round = server.round() + 1;
        let sampled = server.sample();
        let global = server.global().clone();
        let replies: Vec<(usize, Result<Fit>)> = clients
            .par_iter_mut()
            .enumerate()
            .filter(|(i, _)| sampled.binary_search(i).is_ok())
            .map(|(i, c)| (i, guarded(i, || c.fit(&global, round))))
            .collect();
        if replies.len() != sampled.len() {
            return Err(Error::config(
                "clients",
                format!(
                    "the server samples from {} clients, {} were given",
                    sampled.iter().max().map_or(0, |m| m + 1),
                    clients.len()
                ),
            ));
        }
        server.complete_round(sampled, replies)?;
        if evaluate_each_round {
            let e = evaluate(clients, server.global());
            server.record_evaluation(e.metrics, e.failed)?;
        }
        if let Some(report) = server.history().last() {
            on_round(report);
        }
    }
    Ok(())
}
