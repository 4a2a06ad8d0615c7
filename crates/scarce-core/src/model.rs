//! The functional `Model` trait and its context.
//!
//! A model holds only its shape (a config); weights come in as [`Params`] on every call, so
//! one backbone serves ordinary training, MAML inner loops (adapted copies of the weights),
//! federated clients and GAN discriminators alike. Mutable state that is not learnt (batch-
//! norm running statistics) lives in [`Ctx::buffers`].

use crate::ops::{
    batch_norm_eval, batch_norm_train, batch_norm_train_max_pool, max_pool, BatchStats, PoolOpts,
};
use crate::rng::Stream;
use crate::{Error, Params, Result};
use candle_core::{Device, Tensor};

/// Training or evaluation behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Batch statistics in batch norm (and running averages updated when tracked).
    Train,
    /// Running statistics in batch norm.
    Eval,
}

/// What a forward pass may read and change besides the weights.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Train or eval.
    pub mode: Mode,
    /// Non-learnt state by name (`<layer>.running_mean`, `<layer>.running_var`).
    pub buffers: Params,
    /// In train mode, update running statistics found in `buffers`. Off gives MAML's
    /// transductive batch norm: batch statistics at every call, nothing remembered.
    pub update_running_stats: bool,
    /// Weight of the new batch in running averages (PyTorch's `momentum`, 0.1).
    pub bn_momentum: f64,
}

impl Ctx {
    /// Train mode with running-statistics updates into `buffers`.
    pub fn train(buffers: Params) -> Self {
        Ctx {
            mode: Mode::Train,
            buffers,
            update_running_stats: true,
            bn_momentum: 0.1,
        }
    }

    /// Train mode that uses batch statistics and remembers nothing (MAML's transductive
    /// batch norm).
    pub fn transductive() -> Self {
        Ctx {
            mode: Mode::Train,
            buffers: Params::new(),
            update_running_stats: false,
            bn_momentum: 0.1,
        }
    }

    /// Eval mode with the running statistics in `buffers`.
    pub fn eval(buffers: Params) -> Self {
        Ctx {
            mode: Mode::Eval,
            buffers,
            update_running_stats: false,
            bn_momentum: 0.1,
        }
    }

    /// Batch norm for layer `prefix` (weights `<prefix>.weight`, `<prefix>.bias` in `p`;
    /// buffers `<prefix>.running_mean`, `<prefix>.running_var`), following the mode.
    pub fn batch_norm(&mut self, p: &Params, prefix: &str, x: &Tensor, eps: f64) -> Result<Tensor> {
        let (w, b) = bn_weights(p, prefix)?;
        match self.mode {
            Mode::Train => {
                let (y, stats) = batch_norm_train(x, Some(w), Some(b), eps)?;
                self.update_running(prefix, stats)?;
                Ok(y)
            }
            Mode::Eval => self.batch_norm_running(prefix, x, w, b, eps),
        }
    }

    /// [`Ctx::batch_norm`] followed by a `window`-max-pool (stride `window`, floor mode) over
    /// the spatial axes of `x` (2D or 3D). In train mode on the CPU the two run as one fused op
    /// ([`crate::ops::batch_norm_train_max_pool`]).
    pub fn batch_norm_max_pool(
        &mut self,
        p: &Params,
        prefix: &str,
        x: &Tensor,
        eps: f64,
        window: usize,
    ) -> Result<Tensor> {
        let (w, b) = bn_weights(p, prefix)?;
        match (self.mode, x.rank()) {
            (Mode::Train, 4) => {
                let (y, stats) = batch_norm_train_max_pool(
                    x,
                    Some(w),
                    Some(b),
                    eps,
                    &PoolOpts::<2>::new(window),
                )?;
                self.update_running(prefix, stats)?;
                Ok(y)
            }
            (Mode::Train, 5) => {
                let (y, stats) = batch_norm_train_max_pool(
                    x,
                    Some(w),
                    Some(b),
                    eps,
                    &PoolOpts::<3>::new(window),
                )?;
                self.update_running(prefix, stats)?;
                Ok(y)
            }
            (Mode::Eval, 4) => max_pool(
                &self.batch_norm_running(prefix, x, w, b, eps)?,
                &PoolOpts::<2>::new(window),
            ),
            (Mode::Eval, 5) => max_pool(
                &self.batch_norm_running(prefix, x, w, b, eps)?,
                &PoolOpts::<3>::new(window),
            ),
            _ => Err(Error::shape(
                "x",
                "[N, C, H, W] or [N, C, D, H, W]",
                x.dims(),
            )),
        }
    }

    /// Running-average update with a training batch's statistics (unbiased variance), when
    /// tracked and present in the buffers.
    fn update_running(&mut self, prefix: &str, stats: BatchStats) -> Result<()> {
        if !self.update_running_stats {
            return Ok(());
        }
        let (rm, rv) = (
            format!("{prefix}.running_mean"),
            format!("{prefix}.running_var"),
        );
        if let (Some(m), Some(v)) = (self.buffers.get(&rm), self.buffers.get(&rv)) {
            let k = self.bn_momentum;
            let unbiased = (stats.var * (stats.count as f64 / (stats.count.max(2) - 1) as f64))?;
            let m = ((m * (1.0 - k))? + (stats.mean.to_dtype(m.dtype())? * k)?)?;
            let v = ((v * (1.0 - k))? + (unbiased.to_dtype(v.dtype())? * k)?)?;
            self.buffers.insert(rm, m);
            self.buffers.insert(rv, v);
        }
        Ok(())
    }

    /// Batch norm with the running statistics of layer `prefix`.
    /// In eval mode, the weights of a convolution followed by batch norm `prefix`, with the
    /// batch norm folded in: `w·s`, `(b − mean)·s + β` with `s = γ/√(var + eps)` per output
    /// channel, so one convolution computes both (exactly equal in real arithmetic).
    /// `None` in train mode, where the statistics come from the batch.
    pub fn fold_batch_norm(
        &self,
        p: &Params,
        prefix: &str,
        w: &Tensor,
        b: &Tensor,
        eps: f64,
    ) -> Result<Option<(Tensor, Tensor)>> {
        if self.mode != Mode::Eval {
            return Ok(None);
        }
        let (gamma, beta) = bn_weights(p, prefix)?;
        let get = |name: String| {
            self.buffers.get(&name).cloned().ok_or(Error::Missing {
                name,
                what: "buffers (eval mode)".into(),
            })
        };
        let m = get(format!("{prefix}.running_mean"))?.to_dtype(w.dtype())?;
        let v = get(format!("{prefix}.running_var"))?.to_dtype(w.dtype())?;
        let scale = gamma.div(&(v + eps)?.sqrt()?)?;
        let mut shape = vec![1usize; w.rank()];
        shape[0] = w.dim(0)?;
        let wf = w.broadcast_mul(&scale.reshape(shape)?)?;
        let bf = ((b - m)? * &scale)?.add(beta)?;
        Ok(Some((wf, bf)))
    }

    fn batch_norm_running(
        &self,
        prefix: &str,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let get = |name: String| {
            self.buffers.get(&name).cloned().ok_or(Error::Missing {
                name,
                what: "buffers (eval mode)".into(),
            })
        };
        let (m, v) = (
            get(format!("{prefix}.running_mean"))?,
            get(format!("{prefix}.running_var"))?,
        );
        batch_norm_eval(
            x,
            &m.to_dtype(x.dtype())?,
            &v.to_dtype(x.dtype())?,
            Some(w),
            Some(b),
            eps,
        )
    }
}

fn bn_weights<'a>(p: &'a Params, prefix: &str) -> Result<(&'a Tensor, &'a Tensor)> {
    Ok((
        p.require(&format!("{prefix}.weight"))?,
        p.require(&format!("{prefix}.bias"))?,
    ))
}

/// A network written once as a pure function of its weights.
pub trait Model: Send + Sync + std::fmt::Debug {
    /// Fresh weights drawn from `rng` (f32, PyTorch's default initialisers).
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params>;

    /// Fresh non-learnt state (batch-norm running mean 0 and variance 1). Empty by default.
    fn buffers(&self, _device: &Device) -> Result<Params> {
        Ok(Params::new())
    }

    /// The forward pass with weights `p`.
    fn forward(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor>;
}
