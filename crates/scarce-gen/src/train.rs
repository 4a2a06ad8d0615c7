//! Training a generator: Adam, EMA weights, a checkpoint every N steps that a restarted run
//! resumes from (bit-identical to an uninterrupted run: each step's batch and noise are pure
//! functions of `(seed, step)`), sample grids as PNG, and a stop with the step named when the
//! loss or gradient turns NaN / infinite, keeping the last good checkpoint.

use crate::diffusion::{Diffusion, Sampling};
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
    /// Checks that labels (if any) match the image count.
    pub fn new(images: Tensor, labels: Option<Vec<usize>>) -> Result<Self> {
        let n = images.dim(0)?;
        if n == 0 {
            return Err(Error::config("images", "no images"));
        }
        if labels.as_ref().is_some_and(|l| l.len() != n) {
            return Err(Error::config(
                "labels",
                format!(
                    "{} labels for {n} images",
                    labels.as_ref().map_or(0, Vec::len)
                ),
            ));
        }
        Ok(ImageSet { images, labels })
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
    pub fn batch(&self, rng: &Stream, step: usize, size: usize) -> Result<(Tensor, Option<Vec<usize>>)> {
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

/// What a step reports to the progress callback.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The step just taken (1-based count of steps done).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// This step's loss.
    pub loss: f64,
    /// Seconds since this run (or resume) started.
    pub elapsed_s: f64,
}

/// The outcome of training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The final training weights.
    pub params: Params,
    /// The EMA weights (equal to `params` when EMA is off) — sample with these.
    pub ema: Params,
    /// Loss per step taken in this run.
    pub losses: Vec<f64>,
    /// The step training resumed from (0 for a fresh run).
    pub resumed_from: usize,
    /// The checkpoint file, when an output folder was given.
    pub checkpoint: Option<PathBuf>,
}

const KIND: &str = "scarce-gen/diffusion";

fn finite(x: f64) -> bool {
    x.is_finite()
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

fn run_config(model: &Diffusion, cfg: &TrainConfig) -> serde_json::Value {
    // `steps` may grow on resume; everything else must match.
    let mut c = cfg.clone();
    c.steps = 0;
    c.sample_every = 0;
    c.checkpoint_every = 0;
    serde_json::json!({ "model": model.config, "train": c })
}

fn save_state(
    path: &Path,
    model: &Diffusion,
    cfg: &TrainConfig,
    step: usize,
    p: &Params,
    ema: &Params,
    opt: &Adam,
) -> Result<()> {
    let mut all = Params::new();
    all.insert_prefixed("model.", p);
    all.insert_prefixed("ema.", ema);
    let (m, v) = opt.moments();
    all.insert_prefixed("adam_m.", m);
    all.insert_prefixed("adam_v.", v);
    let mut meta = CheckpointMeta {
        kind: KIND.into(),
        config: run_config(model, cfg),
        ..Default::default()
    };
    meta.extra.insert("gen.step".into(), step.to_string());
    meta.extra.insert("gen.adam_steps".into(), opt.steps().to_string());
    checkpoint::save(path, &all, &meta)?;
    Ok(())
}

/// Loads the sampling (EMA) weights and config of a diffusion checkpoint written by
/// [`train_diffusion`].
pub fn load_diffusion(path: &Path, device: &Device) -> Result<(Diffusion, Params)> {
    let (all, meta) = checkpoint::load(path, device)?;
    if meta.kind != KIND {
        return Err(Error::Checkpoint {
            path: path.into(),
            reason: format!("kind `{}`, expected `{KIND}`", meta.kind),
        });
    }
    let cfg = serde_json::from_value(meta.config["model"].clone()).map_err(|e| Error::Checkpoint {
        path: path.into(),
        reason: format!("model config: {e}"),
    })?;
    Ok((Diffusion::new(cfg)?, all.strip_prefix("ema.")))
}

/// Trains `model` on `data`. With `out`, writes the checkpoint every
/// `cfg.checkpoint_every` steps and at the end, and sample grids every `cfg.sample_every`
/// steps; an existing checkpoint there is resumed from when it was written under the same
/// model and training settings, and refused (naming the file) otherwise. `progress` is called
/// after every step.
pub fn train_diffusion(
    model: &Diffusion,
    data: &ImageSet,
    cfg: &TrainConfig,
    out: Option<&OutDir>,
    mut progress: impl FnMut(&Progress),
) -> Result<Trained> {
    cfg.check()?;
    let device = data.images.device().clone();
    let conditional = model.config.unet.num_classes.is_some();
    if conditional != data.labels.is_some() {
        return Err(Error::config(
            "labels",
            if conditional {
                "a class-conditional model needs labelled images"
            } else {
                "labels given to an unconditional model"
            },
        ));
    }
    if let (Some(n), Some(l)) = (model.config.unet.num_classes, &data.labels) {
        if let Some(bad) = l.iter().find(|&&c| c >= n) {
            return Err(Error::config("labels", format!("label {bad} outside 0..{n}")));
        }
    }
    let mut dims = data.images.dims().to_vec();
    dims[0] = cfg.batch_size;
    model.unet.check_input(&dims)?;

    let mut opt = Adam::new(AdamConfig {
        lr: cfg.lr,
        ..Default::default()
    })?;
    let mut p = model.init(&Stream::new(cfg.seed, "init"), &device)?.to_vars()?;
    let mut ema = Ema::new(&p, cfg.ema_decay);
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
            let want = run_config(model, cfg);
            if meta.kind != KIND || meta.config != want {
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
            p = all.strip_prefix("model.").to_vars()?;
            if p.names() != model.init(&Stream::new(0, "layout"), &device)?.names() {
                return Err(Error::Checkpoint {
                    path,
                    reason: "parameter layout differs from the model's".into(),
                });
            }
            ema.params = all.strip_prefix("ema.");
            opt.restore(
                num("gen.adam_steps")? as i32,
                all.strip_prefix("adam_m."),
                all.strip_prefix("adam_v."),
            )?;
            last_ckpt = Some(path);
        }
    }

    let batches = Stream::new(cfg.seed, "batches");
    let noise = Stream::new(cfg.seed, "diffusion");
    let began = Instant::now();
    let mut losses = Vec::new();
    for step in start..cfg.steps {
        let (x, y) = data.batch(&batches, step, cfg.batch_size)?;
        let loss = model.loss(&p, &x, y.as_deref(), &noise.at(step as u64))?;
        let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let nonfinite = |what: &str| Error::NonFinite {
            step,
            what: what.into(),
            checkpoint: last_ckpt.clone(),
        };
        if !finite(lv) {
            return Err(nonfinite("the loss"));
        }
        let grads = p.grads(&loss.backward()?)?;
        let gn = grads.l2_norm()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !finite(gn) {
            return Err(nonfinite("the gradient norm"));
        }
        opt.step(&mut p, &grads)?;
        ema.update(&p)?;
        losses.push(lv);
        let done = step + 1;
        progress(&Progress {
            step: done,
            steps: cfg.steps,
            loss: lv,
            elapsed_s: began.elapsed().as_secs_f64(),
        });
        if let Some(o) = out {
            if (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) || done == cfg.steps {
                save_state(&o.checkpoint(), model, cfg, done, &p, &ema.params, &opt)?;
                last_ckpt = Some(o.checkpoint());
            }
            if cfg.sample_every > 0 && done % cfg.sample_every == 0 {
                write_samples(model, &ema.params, &dims, &o.0.join(format!("samples_step{done}.png")), cfg.seed, &device)?;
            }
        }
    }
    Ok(Trained {
        params: p.detach(),
        ema: ema.params,
        losses,
        resumed_from: start,
        checkpoint: last_ckpt,
    })
}

/// A grid of DDIM samples (one row per class, or one row when unconditional).
fn write_samples(
    model: &Diffusion,
    p: &Params,
    dims: &[usize],
    path: &Path,
    seed: u64,
    device: &Device,
) -> Result<()> {
    let per_row = 8;
    let rows = model.config.unet.num_classes.unwrap_or(1);
    let classes: Vec<usize> = (0..rows).flat_map(|c| std::iter::repeat_n(c, per_row)).collect();
    let n = classes.len();
    let cls = model.config.unet.num_classes.map(|_| classes.as_slice());
    let x = model.sample(
        p,
        n,
        &dims[2..],
        cls,
        None,
        Sampling::Ddim { steps: 50, eta: 0.0 },
        &Stream::new(seed, "grid"),
        device,
    )?;
    save_grid(&x, per_row, path)
}
