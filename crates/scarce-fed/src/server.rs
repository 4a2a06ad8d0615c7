//! The server's round logic, independent of transport: which clients a round samples, what
//! it makes of their replies (failures, rejected updates, aggregation), and an atomic
//! checkpoint of everything it carries, so a restarted server resumes the round.
//!
//! A transport (the in-process [`crate::simulation`], or a network server) calls
//! [`Server::sample`], sends [`Server::global`] to those clients, and hands their replies to
//! [`Server::complete_round`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use scarce_core::checkpoint::{self, CheckpointMeta};
use scarce_core::rng::Stream;
use scarce_core::Params;
use serde::{Deserialize, Serialize};

use crate::strategy::{Strategy, StrategyState};
use crate::weights::{screen, ClientUpdate, Weights};
use crate::{Error, Result};

/// A client's reply to a fit request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The trained parameters and example count.
    pub update: ClientUpdate,
    /// Training metrics (loss, accuracy, …), averaged over clients by example count.
    pub metrics: BTreeMap<String, f64>,
}

/// How the server runs rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Clients in the federation.
    pub clients: usize,
    /// Clients sampled per round (all when equal to `clients`).
    pub per_round: usize,
    /// Fewest successful updates a round may aggregate.
    pub min_updates: usize,
    /// Seed of the client sampling.
    pub seed: u64,
}

impl ServerConfig {
    /// Every client, every round; at least one update.
    pub fn all(clients: usize) -> Self {
        ServerConfig {
            clients,
            per_round: clients,
            min_updates: 1,
            seed: 0,
        }
    }

    fn check(&self) -> Result<()> {
        if self.per_round == 0 || self.per_round > self.clients {
            return Err(Error::config(
                "per_round",
                format!(
                    "{}: must be in 1..={} (clients)",
                    self.per_round, self.clients
                ),
            ));
        }
        if self.min_updates == 0 || self.min_updates > self.per_round {
            return Err(Error::config(
                "min_updates",
                format!(
                    "{}: must be in 1..={} (per_round)",
                    self.min_updates, self.per_round
                ),
            ));
        }
        Ok(())
    }
}

/// What happened in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// The round (1-based).
    pub round: u64,
    /// Clients asked to train.
    pub sampled: Vec<usize>,
    /// Clients whose updates were aggregated.
    pub aggregated: Vec<usize>,
    /// Clients that failed during the round, with what they reported.
    pub failed: Vec<(usize, String)>,
    /// Clients whose updates were refused (layout, NaN / inf), with the reason.
    pub rejected: Vec<(usize, String)>,
    /// Example-weighted mean of the aggregated clients' training metrics.
    pub fit_metrics: BTreeMap<String, f64>,
    /// Evaluation of the new global model, when the transport ran one.
    pub evaluation: BTreeMap<String, f64>,
    /// Clients whose evaluation failed, with what they reported (not in `evaluation`).
    #[serde(default)]
    pub evaluation_failed: Vec<(usize, String)>,
}

/// A federated server: the global model, the strategy, the round counter and the history.
#[derive(Debug)]
pub struct Server<S> {
    strategy: S,
    global: Weights,
    round: u64,
    config: ServerConfig,
    history: Vec<RoundReport>,
    checkpoint: Option<PathBuf>,
}

const KIND: &str = "scarce-fed.server";

impl<S: Strategy> Server<S> {
    /// A server at round 0 with `initial` as the global model.
    pub fn new(strategy: S, initial: Weights, config: ServerConfig) -> Result<Self> {
        config.check()?;
        Ok(Server {
            strategy,
            global: initial,
            round: 0,
            config,
            history: Vec::new(),
            checkpoint: None,
        })
    }

    /// Writes the server's state to `path` after every round (atomically: a crash leaves
    /// the previous round's file). If the file exists, the server resumes from it first:
    /// the global model, the strategy's state, the round and the history; a file written
    /// under another config or model layout is an error naming it.
    pub fn checkpoint_to(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.exists() {
            self.load(&path)?;
        }
        self.checkpoint = Some(path);
        Ok(self)
    }

    /// The current global model.
    pub fn global(&self) -> &Weights {
        &self.global
    }

    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Reports of the rounds completed.
    pub fn history(&self) -> &[RoundReport] {
        &self.history
    }

    /// The strategy.
    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// The clients of the next round: `per_round` of them, a pure function of the seed and
    /// the round, in ascending order.
    pub fn sample(&self) -> Vec<usize> {
        let round = self.round + 1;
        if self.config.per_round == self.config.clients {
            return (0..self.config.clients).collect();
        }
        let mut picked = Stream::new(self.config.seed, "fed-sampling")
            .at(round)
            .permutation(self.config.clients);
        picked.truncate(self.config.per_round);
        picked.sort_unstable();
        picked
    }

    /// Completes the next round from the sampled clients' replies (each client id with its
    /// fit or its failure): failures and updates that do not fit the model are set aside and
    /// reported, the strategy aggregates the rest, and the checkpoint is written. With fewer
    /// than `min_updates` good updates the round is an error and nothing changes.
    pub fn complete_round(
        &mut self,
        sampled: Vec<usize>,
        replies: Vec<(usize, Result<Fit>)>,
    ) -> Result<&RoundReport> {
        let round = self.round + 1;
        let mut failed = Vec::new();
        let mut fits = Vec::new();
        for (id, reply) in replies {
            match reply {
                Ok(fit) => fits.push((id, fit)),
                Err(e) => failed.push((id, e.to_string())),
            }
        }
        let ids: Vec<usize> = fits.iter().map(|(id, _)| *id).collect();
        let (updates, metrics): (Vec<ClientUpdate>, Vec<BTreeMap<String, f64>>) =
            fits.into_iter().map(|(_, f)| (f.update, f.metrics)).unzip();
        let examples: Vec<u64> = updates.iter().map(|u| u.num_examples).collect();
        let (kept, errors) = screen(&self.global, updates);
        // `screen` names clients by their position in `updates`; map back to ids.
        let mut rejected = Vec::new();
        let mut bad = vec![false; ids.len()];
        for e in errors {
            if let Error::Client { client, reason } = e {
                bad[client] = true;
                rejected.push((ids[client], reason));
            }
        }
        let aggregated: Vec<usize> = ids
            .iter()
            .zip(&bad)
            .filter(|(_, b)| !**b)
            .map(|(id, _)| *id)
            .collect();
        if kept.len() < self.config.min_updates {
            return Err(Error::config(
                "min_updates",
                format!(
                    "round {round}: {} usable updates of {} sampled, fewer than {} (failed: {failed:?}; rejected: {rejected:?})",
                    kept.len(),
                    sampled.len(),
                    self.config.min_updates
                ),
            ));
        }
        let fit_metrics = weighted_metrics(
            metrics
                .iter()
                .zip(&examples)
                .zip(&bad)
                .filter(|(_, b)| !**b)
                .map(|((m, n), _)| (m, *n)),
        );
        let global = self.strategy.aggregate(round, &kept)?;
        self.global = global;
        self.round = round;
        self.history.push(RoundReport {
            round,
            sampled,
            aggregated,
            failed,
            rejected,
            fit_metrics,
            evaluation: BTreeMap::new(),
            evaluation_failed: Vec::new(),
        });
        self.save()?;
        self.history
            .last()
            .ok_or_else(|| Error::config("history", "empty after a round"))
    }

    /// Attaches an evaluation of the current global model to the last round's report, with
    /// the clients whose evaluation failed (and re-writes the checkpoint).
    pub fn record_evaluation(
        &mut self,
        evaluation: BTreeMap<String, f64>,
        failed: Vec<(usize, String)>,
    ) -> Result<()> {
        let last = self
            .history
            .last_mut()
            .ok_or_else(|| Error::config("round", "no round to attach an evaluation to"))?;
        last.evaluation = evaluation;
        last.evaluation_failed = failed;
        self.save()
    }

    fn save(&self) -> Result<()> {
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        let mut tensors = Params::new();
        let cpu = Device::Cpu;
        tensors.insert_prefixed("global|", &self.global.to_params(DType::F64, &cpu)?);
        let state = self.strategy.state();
        for (key, w) in &state.weights {
            tensors.insert_prefixed(&format!("state|{key}|"), &w.to_params(DType::F64, &cpu)?);
        }
        let mut extra = BTreeMap::new();
        extra.insert("fed.round".to_string(), self.round.to_string());
        extra.insert("fed.scalars".to_string(), to_json(&state.scalars)?);
        extra.insert("fed.history".to_string(), to_json(&self.history)?);
        let meta = CheckpointMeta {
            kind: KIND.into(),
            config: serde_json::to_value(&self.config)
                .map_err(|e| Error::config("config", e.to_string()))?,
            version: String::new(),
            extra,
        };
        checkpoint::save(path, &tensors, &meta)?;
        Ok(())
    }

    fn load(&mut self, path: &Path) -> Result<()> {
        let bad =
            |reason: String| Error::config("checkpoint", format!("{}: {reason}", path.display()));
        let (tensors, meta) = checkpoint::load(path, &Device::Cpu)?;
        if meta.kind != KIND {
            return Err(bad(format!(
                "holds `{}`, not a federated server",
                meta.kind
            )));
        }
        let config: ServerConfig =
            serde_json::from_value(meta.config.clone()).map_err(|e| bad(format!("config: {e}")))?;
        if config != self.config {
            return Err(bad(format!(
                "written under {config:?}, not this server's {:?}",
                self.config
            )));
        }
        let field = |k: &str| {
            meta.extra
                .get(k)
                .ok_or_else(|| bad(format!("no `{k}` in the header")))
        };
        let round: u64 = field("fed.round")?
            .parse()
            .map_err(|e| bad(format!("fed.round: {e}")))?;
        let scalars: BTreeMap<String, f64> = serde_json::from_str(field("fed.scalars")?)
            .map_err(|e| bad(format!("fed.scalars: {e}")))?;
        let history: Vec<RoundReport> = serde_json::from_str(field("fed.history")?)
            .map_err(|e| bad(format!("fed.history: {e}")))?;
        // Tensors are `global|name` or `state|key|name`, in the order they were saved.
        let mut global = Params::new();
        let mut state: BTreeMap<String, Params> = BTreeMap::new();
        for (name, t) in tensors.iter() {
            match name.split_once('|') {
                Some(("global", n)) => global.insert(n, t.clone()),
                Some(("state", rest)) => {
                    let (key, n) = rest
                        .split_once('|')
                        .ok_or_else(|| bad(format!("tensor `{name}`")))?;
                    state
                        .entry(key.to_string())
                        .or_default()
                        .insert(n, t.clone());
                }
                _ => return Err(bad(format!("unexpected tensor `{name}`"))),
            }
        }
        let global = Weights::from_params(&global)?;
        self.global
            .check_same_layout(&global, 0)
            .map_err(|e| bad(format!("the saved model does not fit this one: {e}")))?;
        let mut restored = StrategyState {
            weights: BTreeMap::new(),
            scalars,
        };
        for (k, p) in state {
            restored.weights.insert(k, Weights::from_params(&p)?);
        }
        self.strategy.restore(&restored)?;
        self.global = global;
        self.round = round;
        self.history = history;
        Ok(())
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::config("checkpoint", e.to_string()))
}

/// The example-weighted mean of each metric over clients that report it.
pub fn weighted_metrics<'a>(
    reports: impl Iterator<Item = (&'a BTreeMap<String, f64>, u64)>,
) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (m, n) in reports {
        for (k, v) in m {
            let e = sums.entry(k.clone()).or_insert((0.0, 0.0));
            e.0 += v * n as f64;
            e.1 += n as f64;
        }
    }
    sums.into_iter()
        .filter(|(_, (_, n))| *n > 0.0)
        .map(|(k, (s, n))| (k, s / n))
        .collect()
}
