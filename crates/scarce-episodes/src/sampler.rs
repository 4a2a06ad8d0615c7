//! N-way K-shot Q-query episodes. An episode is a pure function of the dataset, the
//! configuration, the seed and the episode index, so any episode can be regenerated alone,
//! in any order, on any thread; fixed evaluation sets are saved as JSON.

use std::collections::HashSet;
use std::path::Path;

use scarce_core::rng::Stream;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// The shape of an episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeConfig {
    /// Classes per episode (N).
    pub n_way: usize,
    /// Support samples per class (K).
    pub k_shot: usize,
    /// Query samples per class (Q).
    pub q_query: usize,
    /// Allow classes with fewer than K + Q samples by drawing with replacement (support
    /// and query still never share a sample).
    pub with_replacement: bool,
    /// Keep every group (patient) on one side: no group in both support and query.
    pub group_aware: bool,
}

impl EpisodeConfig {
    /// N-way K-shot Q-query, without replacement, group-aware.
    pub fn new(n_way: usize, k_shot: usize, q_query: usize) -> Self {
        EpisodeConfig {
            n_way,
            k_shot,
            q_query,
            with_replacement: false,
            group_aware: true,
        }
    }
}

/// One episode: `classes[k]` is the dataset class that gets episode label `k`; support
/// and query list dataset sample indices class-major (label `k` owns support positions
/// `k*K .. (k+1)*K` and query positions `k*Q .. (k+1)*Q`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// The episode's index in its stream.
    pub index: u64,
    /// Dataset class ids, in episode-label order.
    pub classes: Vec<usize>,
    /// Support sample indices, class-major.
    pub support: Vec<usize>,
    /// Query sample indices, class-major.
    pub query: Vec<usize>,
}

impl Episode {
    /// Episode labels (`0..N`) of the support samples.
    pub fn support_labels(&self) -> Vec<u32> {
        labels(self.classes.len(), self.support.len())
    }

    /// Episode labels (`0..N`) of the query samples.
    pub fn query_labels(&self) -> Vec<u32> {
        labels(self.classes.len(), self.query.len())
    }
}

fn labels(n_way: usize, n: usize) -> Vec<u32> {
    let per = n / n_way.max(1);
    (0..n).map(|i| (i / per.max(1)) as u32).collect()
}

/// Draws episodes from a dataset.
#[derive(Clone, Debug)]
pub struct EpisodeSampler {
    dataset: Dataset,
    config: EpisodeConfig,
    seed: u64,
    classes: Vec<usize>,
}

impl EpisodeSampler {
    /// Checks the configuration against the dataset: N must not exceed the classes that
    /// have samples; every such class needs K + Q samples unless `with_replacement`
    /// (then at least 2).
    pub fn new(dataset: &Dataset, config: EpisodeConfig, seed: u64) -> Result<Self> {
        if dataset.is_empty() {
            return Err(Error::Empty(dataset.name().to_string()));
        }
        if config.n_way == 0 || config.k_shot == 0 {
            return Err(Error::param("n_way, k_shot", "must be at least 1"));
        }
        let classes: Vec<usize> = (0..dataset.n_classes())
            .filter(|&c| !dataset.class_samples(c).is_empty())
            .collect();
        if config.n_way > classes.len() {
            return Err(Error::param(
                "n_way",
                format!(
                    "{}-way episodes need {} classes, `{}` has {}",
                    config.n_way,
                    config.n_way,
                    dataset.name(),
                    classes.len()
                ),
            ));
        }
        let needed = if config.with_replacement {
            2
        } else {
            config.k_shot + config.q_query
        };
        for &c in &classes {
            let count = dataset.class_samples(c).len();
            if count < needed {
                return Err(Error::ClassTooSmall {
                    class: c,
                    name: dataset.class_name(c).to_string(),
                    count,
                    needed,
                    what: format!("{}-shot {}-query", config.k_shot, config.q_query),
                });
            }
        }
        Ok(EpisodeSampler {
            dataset: dataset.clone(),
            config,
            seed,
            classes,
        })
    }

    /// The configuration.
    pub fn config(&self) -> EpisodeConfig {
        self.config
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The dataset episodes are drawn from.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Episode `index`: the same for the same dataset, configuration, seed and index.
    pub fn episode(&self, index: u64) -> Result<Episode> {
        let cfg = self.config;
        let rng = Stream::new(self.seed, "episode").at(index);
        let picked: Vec<usize> =
            partial_shuffle(&rng.child("classes"), self.classes.len(), cfg.n_way)
                .into_iter()
                .map(|k| self.classes[k])
                .collect();
        let ds = &self.dataset;
        let mut support = Vec::with_capacity(cfg.n_way * cfg.k_shot);
        // Per class, the samples left for the query once the support is drawn.
        let mut rest: Vec<Vec<usize>> = Vec::with_capacity(cfg.n_way);
        for (k, &c) in picked.iter().enumerate() {
            let r = rng.child("class").at(k as u64);
            let members = ds.class_samples(c);
            let order: Vec<usize> = if cfg.group_aware && ds.has_groups() {
                // Whole groups, in a random order, so that the support takes few groups.
                let mut groups: Vec<usize> = members.iter().map(|&i| ds.group(i)).collect();
                groups.sort_unstable();
                groups.dedup();
                let rank: std::collections::HashMap<usize, usize> = r
                    .child("groups")
                    .permutation(groups.len())
                    .into_iter()
                    .enumerate()
                    .map(|(pos, g)| (groups[g], pos))
                    .collect();
                let perm = r.child("members").permutation(members.len());
                let mut order: Vec<usize> = perm.into_iter().map(|p| members[p]).collect();
                order.sort_by_key(|&i| rank[&ds.group(i)]);
                order
            } else {
                r.permutation(members.len())
                    .into_iter()
                    .map(|p| members[p])
                    .collect()
            };
            let n_support = if cfg.with_replacement && order.len() < cfg.k_shot + cfg.q_query {
                // Keep support and query disjoint: split the class in proportion K : Q.
                let s = (order.len() * cfg.k_shot).div_ceil(cfg.k_shot + cfg.q_query);
                s.clamp(1, order.len() - 1)
            } else {
                cfg.k_shot
            };
            let (sup, q) = order.split_at(n_support);
            if n_support == cfg.k_shot {
                support.extend_from_slice(sup);
            } else {
                let d = r.child("support-draws");
                support.extend(
                    (0..cfg.k_shot).map(|j| sup[d.below(j as u64, sup.len() as u64) as usize]),
                );
            }
            rest.push(q.to_vec());
        }
        let support_groups: HashSet<usize> = if cfg.group_aware && ds.has_groups() {
            support.iter().map(|&i| ds.group(i)).collect()
        } else {
            HashSet::new()
        };
        let mut query = Vec::with_capacity(cfg.n_way * cfg.q_query);
        for (k, q) in rest.into_iter().enumerate() {
            let usable: Vec<usize> = q
                .into_iter()
                .filter(|i| !support_groups.contains(&ds.group(*i)))
                .collect();
            let c = picked[k];
            if usable.is_empty() && cfg.q_query > 0
                || (!cfg.with_replacement && usable.len() < cfg.q_query)
            {
                return Err(Error::ClassTooSmall {
                    class: c,
                    name: ds.class_name(c).to_string(),
                    count: usable.len(),
                    needed: cfg.q_query,
                    what: format!("query samples from patients not in episode {index}'s support"),
                });
            }
            if usable.len() >= cfg.q_query {
                query.extend_from_slice(&usable[..cfg.q_query]);
            } else {
                let d = rng.child("query-draws").at(k as u64);
                query.extend(
                    (0..cfg.q_query)
                        .map(|j| usable[d.below(j as u64, usable.len() as u64) as usize]),
                );
            }
        }
        Ok(Episode {
            index,
            classes: picked,
            support,
            query,
        })
    }
}

/// The first `k` entries of a seeded shuffle of `0..n`, in O(k) draws.
fn partial_shuffle(rng: &Stream, n: usize, k: usize) -> Vec<usize> {
    let mut swapped = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(k);
    for i in 0..k {
        let j = i + rng.below(i as u64, (n - i) as u64) as usize;
        let vj = *swapped.get(&j).unwrap_or(&j);
        let vi = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, vi);
        out.push(vj);
    }
    out
}

/// A fixed, saved list of episodes (e.g. the 600 test episodes of a benchmark) with what
/// is needed to check it is used on the dataset it was drawn from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeSet {
    /// The dataset's name.
    pub dataset: String,
    /// Its sample count.
    pub n_samples: usize,
    /// Its class count.
    pub n_classes: usize,
    /// The episode shape.
    pub config: EpisodeConfig,
    /// The seed the episodes were drawn with.
    pub seed: u64,
    /// The episodes, indices `0..count`.
    pub episodes: Vec<Episode>,
}

impl EpisodeSet {
    /// Episodes `0..count` of `sampler`.
    pub fn generate(sampler: &EpisodeSampler, count: usize) -> Result<Self> {
        let ds = sampler.dataset();
        Ok(EpisodeSet {
            dataset: ds.name().to_string(),
            n_samples: ds.len(),
            n_classes: ds.n_classes(),
            config: sampler.config(),
            seed: sampler.seed(),
            episodes: (0..count as u64)
                .map(|i| sampler.episode(i))
                .collect::<Result<_>>()?,
        })
    }

    /// Checks that this set fits `dataset` (name, sizes, indices in range).
    pub fn check(&self, dataset: &Dataset) -> Result<()> {
        let fits = self.dataset == dataset.name()
            && self.n_samples == dataset.len()
            && self.n_classes == dataset.n_classes();
        if !fits {
            return Err(Error::param(
                "episode set",
                format!(
                    "drawn from `{}` ({} samples, {} classes), used on `{}` ({} samples, {} classes)",
                    self.dataset,
                    self.n_samples,
                    self.n_classes,
                    dataset.name(),
                    dataset.len(),
                    dataset.n_classes()
                ),
            ));
        }
        let in_range = self.episodes.iter().all(|e| {
            e.support.iter().chain(&e.query).all(|&i| i < dataset.len())
                && e.classes.iter().all(|&c| c < dataset.n_classes())
        });
        if !in_range {
            return Err(Error::param(
                "episode set",
                "an episode indexes past the dataset",
            ));
        }
        Ok(())
    }

    /// Writes the set as JSON, atomically (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| Error::format(path, format!("cannot serialise: {e}")))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    /// Reads a set written by [`EpisodeSet::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::format(path, format!("not an episode set: {e}")))
    }
}
