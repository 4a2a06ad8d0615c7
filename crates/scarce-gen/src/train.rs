//! Training a generator — diffusion model, VAE or GAN, through the [`Generative`] trait: one
//! Adam per parameter group, EMA of the sampling group, a checkpoint every N steps that a
//! restarted run resumes from (bit-identical to an uninterrupted run: each step's batch and
//! noise are pure functions of `(seed, step)`), sample grids as PNG, and a stop with the step
//! named when a loss or gradient turns NaN / infinite (or a loss passes `max_loss`), keeping
//! the last good checkpoint.

use crate::grid::save_grid;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use scarce_core::checkpoint::{self, CheckpointMeta};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::{Params, Stream};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Training-loop settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Optimiser steps in total (a resumed run stops here too).
    pub steps: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// EMA decay of the sampling weights (0 disables EMA: the sampling weights are the
    /// training weights).
    pub ema_decay: f64,
    /// Write the checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Write a sample grid every this many steps (0: never).
    pub sample_every: usize,
    /// Seed of every random draw (init, batches, noise).
    pub seed: u64,
    /// Stop as diverged when a loss exceeds this (e.g. a GAN whose discriminator has won);
    /// `None` checks finiteness only.
    pub max_loss: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 1000,
            batch_size: 16,
            lr: 2e-4,
            ema_decay: 0.999,
            checkpoint_every: 500,
            sample_every: 0,
            seed: 0,
            max_loss: None,
        }
    }
}

impl TrainConfig {
    fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be positive"));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::config(
                "ema_decay",
                format!("{}: need 0 <= decay < 1", self.ema_decay),
            ));
        }
        Ok(())
    }
}

/// Exponential moving average of weights: `ema ← d·ema + (1 − d)·p`.
#[derive(Debug, Clone)]
pub struct Ema {
    /// The decay `d`.
    pub decay: f64,
    /// The averaged weights.
    pub params: Params,
}

impl Ema {
    /// Starts the average at `p`.
    pub fn new(p: &Params, decay: f64) -> Self {
        Ema {
            decay,
            params: p.detach(),
        }
    }

    /// Folds in the current weights.
    pub fn update(&mut self, p: &Params) -> Result<()> {
        let d = self.decay;
        self.params = self
            .params
            .zip(p, |_, e, w| Ok(((e * d)? + (w.detach() * (1.0 - d))?)?))?;
        Ok(())
    }
}

/// Images and labels to train on: `images` `[N, C, …]` in the model's range (`[-1, 1]`).
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// The images.
    pub images: Tensor,
    /// One label per image (`None`: unlabelled).
    pub labels: Option<Vec<usize>>,
}

impl ImageSet {
    /// Checks that there are images and that labels (if any) match their count.
    pub fn new(images: Tensor, labels: Option<Vec<usize>>) -> Result<Self> {
        let set = ImageSet { images, labels };
        set.check()?;
        Ok(set)
    }

    /// The checks of [`ImageSet::new`], repeated by [`train`] (the fields are public).
    fn check(&self) -> Result<()> {
        let n = self.images.dim(0)?;
        if n == 0 {
            return Err(Error::config("images", "no images"));
        }
        if let Some(l) = self.labels.as_ref().filter(|l| l.len() != n) {
            return Err(Error::config(
                "labels",
                format!("{} labels for {n} images", l.len()),
            ));
        }
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dim(0).unwrap_or(0)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch of step `step`: indices drawn with replacement from `rng.at(step)`.
    pub fn batch(
        &self,
        rng: &Stream,
        step: usize,
        size: usize,
    ) -> Result<(Tensor, Option<Vec<usize>>)> {
        let s = rng.at(step as u64);
        let n = self.len() as u64;
        let idx: Vec<u32> = (0..size as u64).map(|i| s.below(i, n) as u32).collect();
        let t = Tensor::from_vec(idx.clone(), size, self.images.device())?;
        let x = self.images.index_select(&t, 0)?;
        let y = self
            .labels
            .as_ref()
            .map(|l| idx.iter().map(|&i| l[i as usize]).collect());
        Ok((x, y))
    }
}

/// A generator that [`train`] can train: its parameter groups (each with its own Adam; the
/// first is the one sampled from and averaged by EMA), its step and its sampler.
pub trait Generative {
    /// What the checkpoint holds (`"scarce-gen/diffusion"`, …).
    fn kind(&self) -> &'static str;
    /// The model's config, saved in checkpoints and compared on resume.
    fn config(&self) -> serde_json::Value;
    /// Names of the parameter groups; the first is sampled from.
    fn groups(&self) -> &'static [&'static str];
    /// Fresh weights, one `Params` per group.
    fn init(&self, rng: &Stream, device: &Device) -> Result<Vec<Params>>;
    /// Classes of a class-conditional model.
    fn num_classes(&self) -> Option<usize>;
    /// Adam's β₁ for every group (GANs use 0.5).
    fn adam_beta1(&self) -> f64 {
        0.9
    }
    /// Checks a batch shape `[B, C, …]` before training starts.
    fn check_batch(&self, dims: &[usize]) -> Result<()>;
    /// One training step on batch `x` (labels `y`), drawing from `rng`: compute losses and
    /// hand each to [`Update::apply`] with its group.
    fn step(&self, u: &mut Update<'_>, x: &Tensor, y: Option<&[usize]>, rng: &Stream)
        -> Result<()>;
    /// `classes.len()` samples (or `n` unconditional) from the first group's weights `p`,
    /// shaped like the training images `[n, C, …size]`, in `[-1, 1]`.
    fn sample(
        &self,
        p: &Params,
        n: usize,
        size: &[usize],
        classes: Option<&[usize]>,
        rng: &Stream,
        device: &Device,
    ) -> Result<Tensor>;
}

/// The state a [`Generative::step`] updates: weights and optimisers of every group.
#[derive(Debug)]
pub struct Update<'a> {
    params: &'a mut [Params],
    opts: &'a mut [Adam],
    step: usize,
    max_loss: Option<f64>,
    checkpoint: Option<PathBuf>,
    losses: Vec<(String, f64)>,
}

impl Update<'_> {
    /// The current weights of group `g`.
    pub fn params(&self, g: usize) -> &Params {
        &self.params[g]
    }

    /// Backpropagates `loss` (named `name` in reports) into group `g` and applies one Adam
    /// step — unless the loss or its gradient is not finite, or the loss exceeds
    /// `max_loss`: then nothing is applied and the step is reported as diverged.
    pub fn apply(&mut self, g: usize, name: &str, loss: &Tensor) -> Result<()> {
        let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let diverged = |what: String| Error::NonFinite {
            step: self.step,
            what,
            checkpoint: self.checkpoint.clone(),
        };
        if !lv.is_finite() {
            return Err(diverged(format!("the {name} loss")));
        }
        if let Some(m) = self.max_loss.filter(|&m| lv > m) {
            return Err(diverged(format!(
                "the {name} loss ({lv:.3e} > max_loss {m})"
            )));
        }
        let grads = self.params[g].grads(&loss.backward()?)?;
        let gn = grads.l2_norm()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !gn.is_finite() {
            return Err(diverged(format!("the gradient of the {name} loss")));
        }
        self.opts[g].step(&mut self.params[g], &grads)?;
        self.losses.push((name.to_string(), lv));
        Ok(())
    }
}

/// What a step reports to the progress callback.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps done (1-based).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// This step's losses by name, in the order applied.
    pub losses: Vec<(String, f64)>,
    /// Seconds since this run (or resume) started.
    pub elapsed_s: f64,
}

impl Progress {
    /// The first loss of the step.
    pub fn loss(&self) -> f64 {
        self.losses.first().map_or(f64::NAN, |l| l.1)
    }
}

/// The outcome of training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The final weights of every group.
    pub params: Vec<Params>,
    /// The EMA of the first group (equal to it when EMA is off) — sample with these.
    pub ema: Params,
    /// The first loss of every step taken in this run.
    pub losses: Vec<f64>,
    /// The step training resumed from (0 for a fresh run).
    pub resumed_from: usize,
    /// The checkpoint file, when an output folder was given.
    pub checkpoint: Option<PathBuf>,
}

/// Where training writes: `checkpoint.safetensors` and `samples_step{N}.png`.
#[derive(Debug, Clone)]
pub struct OutDir(pub PathBuf);

impl OutDir {
    /// The checkpoint path.
    pub fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint.safetensors")
    }
}

fn run_config(model: &dyn Generative, cfg: &TrainConfig) -> serde_json::Value {
    // `steps` may grow on resume and the output cadence may change; the rest must match.
    let mut c = cfg.clone();
    c.steps = 0;
    c.sample_every = 0;
    c.checkpoint_every = 0;
    serde_json::json!({ "model": model.config(), "train": c })
}

fn save_state(
    path: &Path,
    model: &dyn Generative,
    cfg: &TrainConfig,
    step: usize,
    groups: &[Params],
    ema: &Params,
    opts: &[Adam],
) -> Result<()> {
    let mut all = Params::new();
    let mut meta = CheckpointMeta {
        kind: model.kind().into(),
        config: run_config(model, cfg),
        ..Default::default()
    };
    for ((name, p), opt) in model.groups().iter().zip(groups).zip(opts) {
        all.insert_prefixed(&format!("{name}."), p);
        let (m, v) = opt.moments();
        all.insert_prefixed(&format!("adam_m.{name}."), m);
        all.insert_prefixed(&format!("adam_v.{name}."), v);
        meta.extra
            .insert(format!("gen.adam_steps.{name}"), opt.steps().to_string());
    }
    all.insert_prefixed("ema.", ema);
    meta.extra.insert("gen.step".into(), step.to_string());
    checkpoint::save(path, &all, &meta)?;
    Ok(())
}

/// The model config (as saved) and the sampling (EMA) weights of a checkpoint of `kind`
/// written by [`train`].
pub fn load_sampling_weights(
    path: &Path,
    kind: &str,
    device: &Device,
) -> Result<(serde_json::Value, Params)> {
    let (all, meta) = checkpoint::load(path, device)?;
    if meta.kind != kind {
        return Err(Error::Checkpoint {
            path: path.into(),
            reason: format!("kind `{}`, expected `{kind}`", meta.kind),
        });
    }
    Ok((meta.config["model"].clone(), all.strip_prefix("ema.")))
}

/// Trains `model` on `data`. With `out`, writes the checkpoint every
/// `cfg.checkpoint_every` steps and at the end, and sample grids every `cfg.sample_every`
/// steps; an existing checkpoint there is resumed from when it was written under the same
/// model and training settings, and refused (naming the file) otherwise. `progress` is called
/// after every step.
pub fn train(
    model: &dyn Generative,
    data: &ImageSet,
    cfg: &TrainConfig,
    out: Option<&OutDir>,
    mut progress: impl FnMut(&Progress),
) -> Result<Trained> {
    cfg.check()?;
    data.check()?;
    let device = data.images.device().clone();
    let classes = model.num_classes();
    if classes.is_some() != data.labels.is_some() {
        return Err(Error::config(
            "labels",
            if classes.is_some() {
                "a class-conditional model needs labelled images"
            } else {
                "labels given to an unconditional model"
            },
        ));
    }
    if let (Some(n), Some(l)) = (classes, &data.labels) {
        if let Some(bad) = l.iter().find(|&&c| c >= n) {
            return Err(Error::config(
                "labels",
                format!("label {bad} outside 0..{n}"),
            ));
        }
    }
    let mut dims = data.images.dims().to_vec();
    dims[0] = cfg.batch_size;
    model.check_batch(&dims)?;

    let names = model.groups();
    let mut opts = names
        .iter()
        .map(|_| {
            Adam::new(AdamConfig {
                lr: cfg.lr,
                beta1: model.adam_beta1(),
                ..Default::default()
            })
        })
        .collect::<scarce_core::Result<Vec<_>>>()?;
    let fresh = model.init(&Stream::new(cfg.seed, "init"), &device)?;
    let mut groups = fresh
        .iter()
        .map(Params::to_vars)
        .collect::<scarce_core::Result<Vec<_>>>()?;
    let mut ema = Ema::new(&groups[0], cfg.ema_decay);
    let mut start = 0;
    let mut last_ckpt = None;
    if let Some(o) = out {
        std::fs::create_dir_all(&o.0).map_err(|source| Error::Io {
            path: o.0.clone(),
            source,
        })?;
        let path = o.checkpoint();
        if path.exists() {
            let (all, meta) = checkpoint::load(&path, &device)?;
            if meta.kind != model.kind() || meta.config != run_config(model, cfg) {
                return Err(Error::Checkpoint {
                    path,
                    reason: "written by another model or training config; move it away or use \
                             another output folder"
                        .into(),
                });
            }
            let num = |k: &str| -> Result<usize> {
                meta.extra
                    .get(k)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::Checkpoint {
                        path: path.clone(),
                        reason: format!("missing {k}"),
                    })
            };
            start = num("gen.step")?;
            for (i, name) in names.iter().enumerate() {
                let p = all.strip_prefix(&format!("{name}."));
                if p.names() != fresh[i].names() {
                    return Err(Error::Checkpoint {
                        path,
                        reason: format!("the `{name}` parameters differ from the model's layout"),
                    });
                }
                groups[i] = p.to_vars()?;
                opts[i].restore(
                    num(&format!("gen.adam_steps.{name}"))? as i32,
                    all.strip_prefix(&format!("adam_m.{name}.")),
                    all.strip_prefix(&format!("adam_v.{name}.")),
                )?;
            }
            ema.params = all.strip_prefix("ema.");
            last_ckpt = Some(path);
        }
    }

    let batches = Stream::new(cfg.seed, "batches");
    let noise = Stream::new(cfg.seed, "step");
    let began = Instant::now();
    let mut losses = Vec::new();
    for step in start..cfg.steps {
        let (x, y) = data.batch(&batches, step, cfg.batch_size)?;
        let mut u = Update {
            params: &mut groups,
            opts: &mut opts,
            step,
            max_loss: cfg.max_loss,
            checkpoint: last_ckpt.clone(),
            losses: Vec::new(),
        };
        model.step(&mut u, &x, y.as_deref(), &noise.at(step as u64))?;
        let step_losses = std::mem::take(&mut u.losses);
        ema.update(&groups[0])?;
        losses.push(step_losses.first().map_or(f64::NAN, |l| l.1));
        let done = step + 1;
        progress(&Progress {
            step: done,
            steps: cfg.steps,
            losses: step_losses,
            elapsed_s: began.elapsed().as_secs_f64(),
        });
        if let Some(o) = out {
            if (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) || done == cfg.steps {
                save_state(
                    &o.checkpoint(),
                    model,
                    cfg,
                    done,
                    &groups,
                    &ema.params,
                    &opts,
                )?;
                last_ckpt = Some(o.checkpoint());
            }
            if cfg.sample_every > 0 && done % cfg.sample_every == 0 {
                let per_row = 8;
                let rows = classes.unwrap_or(1);
                let cls: Vec<usize> = (0..rows)
                    .flat_map(|c| std::iter::repeat_n(c, per_row))
                    .collect();
                let x = model.sample(
                    &ema.params,
                    cls.len(),
                    &dims[2..],
                    classes.map(|_| cls.as_slice()),
                    &Stream::new(cfg.seed, "grid"),
                    &device,
                )?;
                save_grid(&x, per_row, &o.0.join(format!("samples_step{done}.png")))?;
            }
        }
    }
    Ok(Trained {
        params: groups.iter().map(Params::detach).collect(),
        ema: ema.params,
        losses,
        resumed_from: start,
        checkpoint: last_ckpt,
    })
}
