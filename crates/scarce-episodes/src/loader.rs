//! From episodes to tensors: [`Collator`] reads, augments and stacks an episode's samples
//! (in parallel, with rayon); [`EpisodeLoader`] does that on a background thread, keeping
//! a bounded number of episodes ready. Augmentation randomness is keyed by (seed, episode
//! index, position in the episode), so batches are identical whatever the thread count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use scarce_core::rng::Stream;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::sampler::{Episode, EpisodeSampler, EpisodeSet};

/// A per-sample augmentation applied while collating (scarce-augment's pipelines
/// implement it; so does any closure of the same signature).
pub trait Augment: Send + Sync {
    /// Transforms one sample in place: `pixels` has the channels-first `shape`, `mask`
    /// (when the dataset has label maps) its spatial part. All randomness comes from `rng`.
    fn apply(
        &self,
        pixels: &mut [f32],
        mask: Option<&mut [u8]>,
        shape: &[usize],
        rng: &Stream,
    ) -> Result<()>;
}

impl<F> Augment for F
where
    F: Fn(&mut [f32], Option<&mut [u8]>, &[usize], &Stream) -> Result<()> + Send + Sync,
{
    fn apply(
        &self,
        pixels: &mut [f32],
        mask: Option<&mut [u8]>,
        shape: &[usize],
        rng: &Stream,
    ) -> Result<()> {
        self(pixels, mask, shape, rng)
    }
}

/// An episode as tensors on a device.
#[derive(Clone, Debug)]
pub struct EpisodeBatch {
    /// Which samples these are.
    pub episode: Episode,
    /// `[N*K, C, ...]`, class-major.
    pub support: Tensor,
    /// `[N*K]` u32 episode labels.
    pub support_labels: Tensor,
    /// `[N*Q, C, ...]`, class-major.
    pub query: Tensor,
    /// `[N*Q]` u32 episode labels.
    pub query_labels: Tensor,
    /// `[N*K, ...]` u8 label maps, when the dataset has them.
    pub support_masks: Option<Tensor>,
    /// `[N*Q, ...]` u8 label maps, when the dataset has them.
    pub query_masks: Option<Tensor>,
}

/// Reads, augments and stacks episodes into tensors.
#[derive(Clone)]
pub struct Collator {
    dataset: Dataset,
    augment: Option<Arc<dyn Augment>>,
    augment_query: bool,
    seed: u64,
    device: Device,
    dtype: DType,
}

impl Collator {
    /// Stacks samples of `dataset` as `f32` tensors on `device`, without augmentation.
    pub fn new(dataset: &Dataset, device: &Device) -> Self {
        Collator {
            dataset: dataset.clone(),
            augment: None,
            augment_query: true,
            seed: 0,
            device: device.clone(),
            dtype: DType::F32,
        }
    }

    /// Augments every sample (queries too unless `augment_query` is false), with
    /// randomness keyed by `seed`, the episode index and the position.
    pub fn with_augment(
        mut self,
        augment: Arc<dyn Augment>,
        augment_query: bool,
        seed: u64,
    ) -> Self {
        self.augment = Some(augment);
        self.augment_query = augment_query;
        self.seed = seed;
        self
    }

    /// The tensors' floating-point type (default `F32`).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The dataset samples are read from.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    fn stack(
        &self,
        samples: &[usize],
        episode: u64,
        part: &str,
        augment: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let ds = &self.dataset;
        let per = ds.sample_len();
        let shape = ds.sample_shape();
        let plane: usize = shape[1..].iter().product();
        let mut pixels = vec![0f32; samples.len() * per];
        let mut masks = ds.has_masks().then(|| vec![0u8; samples.len() * plane]);
        let rng = Stream::new(self.seed, "collate-augment")
            .at(episode)
            .child(part);
        let work = |(slot, (out, mask)): (usize, (&mut [f32], Option<&mut [u8]>))| -> Result<()> {
            let i = samples[slot];
            ds.read(i, out)?;
            let mut mask = mask;
            if let (Some(m), Some(src)) = (mask.as_deref_mut(), ds.mask(i)) {
                m.copy_from_slice(src);
            }
            match (&self.augment, augment) {
                (Some(a), true) => a.apply(out, mask, shape, &rng.at(slot as u64)),
                _ => Ok(()),
            }
        };
        match masks.as_mut() {
            Some(m) => pixels
                .par_chunks_mut(per)
                .zip(m.par_chunks_mut(plane).map(Some))
                .enumerate()
                .try_for_each(work)?,
            None => pixels
                .par_chunks_mut(per)
                .map(|p| (p, None))
                .enumerate()
                .try_for_each(work)?,
        }
        let mut dims = vec![samples.len()];
        dims.extend_from_slice(shape);
        let x = Tensor::from_vec(pixels, dims, &self.device)?.to_dtype(self.dtype)?;
        let m = match masks {
            Some(m) => {
                let mut dims = vec![samples.len()];
                dims.extend_from_slice(&shape[1..]);
                Some(Tensor::from_vec(m, dims, &self.device)?)
            }
            None => None,
        };
        Ok((x, m))
    }

    /// The tensors of one episode.
    pub fn collate(&self, episode: &Episode) -> Result<EpisodeBatch> {
        let n = self.dataset.len();
        if let Some(&bad) = episode
            .support
            .iter()
            .chain(&episode.query)
            .find(|&&i| i >= n)
        {
            return Err(Error::param(
                "episode",
                format!(
                    "sample {bad} is past `{}` ({n} samples)",
                    self.dataset.name()
                ),
            ));
        }
        let (support, support_masks) =
            self.stack(&episode.support, episode.index, "support", true)?;
        let (query, query_masks) =
            self.stack(&episode.query, episode.index, "query", self.augment_query)?;
        let support_labels = Tensor::new(episode.support_labels(), &self.device)?;
        let query_labels = Tensor::new(episode.query_labels(), &self.device)?;
        Ok(EpisodeBatch {
            episode: episode.clone(),
            support,
            support_labels,
            query,
            query_labels,
            support_masks,
            query_masks,
        })
    }
}

/// Where a loader's episodes come from.
// Built once per loader; boxing the sampler would only add an indirection for users.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Episodes {
    /// Indices `start..start + count` of a sampler (`count: None` runs until dropped).
    Sampled {
        /// The sampler.
        sampler: EpisodeSampler,
        /// First episode index (resume from here).
        start: u64,
        /// How many, or endless.
        count: Option<u64>,
    },
    /// A fixed set, in order.
    Fixed(EpisodeSet),
}

/// Collates episodes on a background thread, `prefetch` ahead of the consumer. Iterate
/// it; dropping it stops and joins the worker.
pub struct EpisodeLoader {
    rx: Option<Receiver<Result<EpisodeBatch>>>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl EpisodeLoader {
    /// Starts the worker. `prefetch` (at least 1) bounds the episodes held ready.
    pub fn new(episodes: Episodes, collator: Collator, prefetch: usize) -> Result<Self> {
        if prefetch == 0 {
            return Err(Error::param("prefetch", "must be at least 1"));
        }
        if let Episodes::Fixed(set) = &episodes {
            set.check(collator.dataset())?;
        }
        let (tx, rx) = sync_channel(prefetch);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_worker = stop.clone();
        let worker = std::thread::Builder::new()
            .name("scarce-episode-loader".into())
            .spawn(move || {
                let mut next = 0u64;
                loop {
                    if stop_worker.load(Ordering::Relaxed) {
                        return;
                    }
                    let episode = match &episodes {
                        Episodes::Sampled {
                            sampler,
                            start,
                            count,
                        } => {
                            if count.is_some_and(|c| next >= c) {
                                return;
                            }
                            sampler.episode(start + next)
                        }
                        Episodes::Fixed(set) => match set.episodes.get(next as usize) {
                            Some(e) => Ok(e.clone()),
                            None => return,
                        },
                    };
                    next += 1;
                    let batch = episode.and_then(|e| collator.collate(&e));
                    let failed = batch.is_err();
                    // A closed channel means the loader was dropped.
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::param("loader", format!("cannot start its thread: {e}")))?;
        Ok(EpisodeLoader {
            rx: Some(rx),
            stop,
            worker: Some(worker),
        })
    }
}

impl Iterator for EpisodeLoader {
    type Item = Result<EpisodeBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for EpisodeLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver wakes a worker blocked on a full channel.
        self.rx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
