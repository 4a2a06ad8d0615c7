//! A task: a support set to adapt on and a query set to be judged on, and the loss that
//! scores predictions.

use candle_core::{DType, Tensor};
use scarce_core::ops;
use scarce_episodes::{Collator, EpisodeBatch, EpisodeLoader, EpisodeSampler, Episodes};

use crate::{Error, Result};

/// One learning problem: adapt on the support set, evaluate on the query set.
#[derive(Debug, Clone)]
pub struct Task {
    /// Support inputs, batch first.
    pub support_x: Tensor,
    /// Support targets: `[N]` u32 class labels for classification, `[N, …]` floats for
    /// regression.
    pub support_y: Tensor,
    /// Query inputs, batch first.
    pub query_x: Tensor,
    /// Query targets, as `support_y`.
    pub query_y: Tensor,
}

/// How predictions are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Loss {
    /// Mean squared error over all elements (regression, e.g. sinusoids).
    Mse,
    /// Mean cross-entropy of logits `[N, classes]` against u32 labels `[N]`.
    CrossEntropy,
}

impl Loss {
    /// The loss of `pred` against `target`.
    pub fn of(self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        match self {
            Loss::Mse => {
                if pred.dims() != target.dims() {
                    return Err(scarce_core::Error::shape(
                        "target",
                        format!("{:?} (the prediction's shape)", pred.dims()),
                        target.dims(),
                    )
                    .into());
                }
                Ok(pred
                    .sub(&target.to_dtype(pred.dtype())?)?
                    .sqr()?
                    .mean_all()?)
            }
            Loss::CrossEntropy => Ok(ops::cross_entropy(pred, target)?),
        }
    }

    /// Percentage of correct argmax predictions (classification); `None` for regression.
    pub fn accuracy(self, pred: &Tensor, target: &Tensor) -> Result<Option<f64>> {
        if self != Loss::CrossEntropy {
            return Ok(None);
        }
        let right = pred
            .argmax(1)?
            .to_dtype(DType::U32)?
            .eq(&target.to_dtype(DType::U32)?)?
            .to_dtype(DType::F64)?
            .mean_all()?
            .to_scalar::<f64>()?;
        Ok(Some(100.0 * right))
    }
}

impl Task {
    /// Checks that the sets are not empty, and for classification that every query class
    /// has at least one support example (a class the inner loop never saw cannot be learnt
    /// from this task). `index` names the task in the error.
    pub fn check(&self, loss: Loss, index: usize) -> Result<()> {
        let err = |reason: String| Error::Task {
            task: index,
            reason,
        };
        for (name, x, y) in [
            ("support", &self.support_x, &self.support_y),
            ("query", &self.query_x, &self.query_y),
        ] {
            let n = x.dims().first().copied().unwrap_or(0);
            if n == 0 {
                return Err(err(format!("the {name} set is empty")));
            }
            if y.dims().first().copied() != Some(n) {
                return Err(err(format!(
                    "{name} inputs {:?} and targets {:?} differ in length",
                    x.dims(),
                    y.dims()
                )));
            }
        }
        if loss == Loss::CrossEntropy {
            let classes = |t: &Tensor| -> Result<Vec<u32>> {
                let mut v = t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
                v.sort_unstable();
                v.dedup();
                Ok(v)
            };
            let support = classes(&self.support_y)?;
            let missing: Vec<u32> = classes(&self.query_y)?
                .into_iter()
                .filter(|c| support.binary_search(c).is_err())
                .collect();
            if !missing.is_empty() {
                return Err(err(format!(
                    "query classes {missing:?} have no support example (support has {support:?})"
                )));
            }
        }
        Ok(())
    }
}

/// A family of tasks, indexed: task `i` is the same every time it is asked for, so a
/// resumed run sees exactly the tasks the interrupted one would have.
pub trait TaskSource: Send + Sync {
    /// Task `index`.
    fn task(&self, index: u64) -> Result<Task>;

    /// Tasks `start..start + count` in order. The default asks [`TaskSource::task`] one by
    /// one; sources with costly loading read ahead in the background.
    fn tasks(&self, start: u64, count: u64) -> Result<Box<dyn Iterator<Item = Result<Task>> + '_>> {
        Ok(Box::new((start..start + count).map(|i| self.task(i))))
    }
}

impl From<EpisodeBatch> for Task {
    fn from(b: EpisodeBatch) -> Task {
        Task {
            support_x: b.support,
            support_y: b.support_labels,
            query_x: b.query,
            query_y: b.query_labels,
        }
    }
}

/// N-way K-shot classification tasks: the episodes of an [`EpisodeSampler`], collated by a
/// [`Collator`] (read, augmented and stacked through an [`EpisodeLoader`] ahead of the
/// learner).
#[derive(Clone)]
pub struct EpisodeTasks {
    /// Which samples make episode `i`.
    pub sampler: EpisodeSampler,
    /// How they become tensors.
    pub collator: Collator,
    /// Episodes collated ahead.
    pub prefetch: usize,
}

impl std::fmt::Debug for EpisodeTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeTasks")
            .field("config", &self.sampler.config())
            .field("seed", &self.sampler.seed())
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

impl TaskSource for EpisodeTasks {
    fn task(&self, index: u64) -> Result<Task> {
        let episode = self.sampler.episode(index)?;
        Ok(self.collator.collate(&episode)?.into())
    }

    fn tasks(&self, start: u64, count: u64) -> Result<Box<dyn Iterator<Item = Result<Task>> + '_>> {
        let loader = EpisodeLoader::new(
            Episodes::Sampled {
                sampler: self.sampler.clone(),
                start,
                count: Some(count),
            },
            self.collator.clone(),
            self.prefetch.max(1),
        )?;
        Ok(Box::new(loader.map(|b| Ok(b?.into()))))
    }
}
