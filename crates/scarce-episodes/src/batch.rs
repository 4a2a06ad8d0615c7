//! Mini-batches for ordinary (non-episodic) training: shuffled epochs, and a
//! class-balanced sampler for imbalanced medical data (every class equally likely per
//! draw, so a rare disease is seen as often as the common finding).

use scarce_core::rng::Stream;

use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Shuffled mini-batches over `0..n`, a fresh order each epoch (a pure function of seed
/// and epoch).
#[derive(Clone, Debug)]
pub struct ShuffledBatches {
    n: usize,
    batch_size: usize,
    drop_last: bool,
    seed: u64,
}

impl ShuffledBatches {
    /// Batches of `batch_size` over `n` samples; `drop_last` drops a short final batch.
    pub fn new(n: usize, batch_size: usize, drop_last: bool, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::param("batch_size", "must be at least 1"));
        }
        if n == 0 || (drop_last && n < batch_size) {
            return Err(Error::param(
                "n",
                format!("{n} samples make no batch of {batch_size}"),
            ));
        }
        Ok(ShuffledBatches {
            n,
            batch_size,
            drop_last,
            seed,
        })
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let order = Stream::new(self.seed, "shuffled-batches")
            .at(epoch)
            .permutation(self.n);
        order
            .chunks(self.batch_size)
            .filter(|b| !self.drop_last || b.len() == self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// Batches in which each draw picks a class uniformly, then a sample of it uniformly
/// (with replacement): sample weights proportional to 1 / class size.
#[derive(Clone, Debug)]
pub struct ClassBalancedSampler {
    members: Vec<Vec<usize>>,
    batch_size: usize,
    seed: u64,
}

impl ClassBalancedSampler {
    /// Over the non-empty classes of `dataset`.
    pub fn new(dataset: &Dataset, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::param("batch_size", "must be at least 1"));
        }
        let members: Vec<Vec<usize>> = (0..dataset.n_classes())
            .map(|c| dataset.class_samples(c).to_vec())
            .filter(|m| !m.is_empty())
            .collect();
        if members.is_empty() {
            return Err(Error::Empty(dataset.name().to_string()));
        }
        Ok(ClassBalancedSampler {
            members,
            batch_size,
            seed,
        })
    }

    /// Batch `index` (a pure function of seed and index).
    pub fn batch(&self, index: u64) -> Vec<usize> {
        let r = Stream::new(self.seed, "class-balanced").at(index);
        (0..self.batch_size as u64)
            .map(|j| {
                let m = &self.members[r.below(2 * j, self.members.len() as u64) as usize];
                m[r.below(2 * j + 1, m.len() as u64) as usize]
            })
            .collect()
    }
}
