//! Episodic training of a backbone with a few-shot head, and evaluation on fixed episodes.
//!
//! Training draws episodes `start..steps` from an [`EpisodeSampler`] through an
//! [`EpisodeLoader`] (episodes are a pure function of their index, so a resumed run sees
//! exactly the episodes the interrupted one would have), takes one Adam step per episode,
//! validates on a fixed [`EpisodeSet`] every `val_every` steps, and writes under `out_dir`:
//! `last.safetensors` (weights, batch-norm statistics, Adam state, step; written atomically
//! at every validation), `best.safetensors` (best validation accuracy), `log.csv`, and
//! `learning_curve.svg` (training loss above, validation accuracy below; redrawn from the
//! log at every validation).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use scarce_core::checkpoint::{self, CheckpointMeta};
use scarce_core::optim::{Adam, AdamConfig, LrSchedule, Optimizer};
use scarce_core::runlog::RunLog;
use scarce_core::{ops, Ctx, Error, Model, Params, Result};
use scarce_episodes::{
    Collator, EpisodeBatch, EpisodeLoader, EpisodeSampler, EpisodeSet, Episodes,
};

use crate::classifier::FewShotClassifier;

/// Weights of a backbone + head, with the backbone's batch-norm statistics.
#[derive(Clone, Debug)]
pub struct Learner {
    /// Backbone weights.
    pub backbone: Params,
    /// Head weights (may be empty).
    pub head: Params,
    /// Batch-norm running statistics.
    pub buffers: Params,
}

/// How to train. `Default` is a short run (1 000 episodes, Adam 1e-3, constant rate,
/// validation every 250) writing to `runs/protonet`; serialisable, so a run's settings can
/// be saved beside it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Total steps (episodes).
    pub steps: usize,
    /// Adam's base learning rate.
    pub lr: f64,
    /// Learning-rate schedule over steps.
    pub schedule: LrSchedule,
    /// Validate (and checkpoint) every this many steps, and at the end.
    pub val_every: usize,
    /// Print a progress line every this many steps (0: never).
    pub log_every: usize,
    /// Where checkpoints and the log go (created if missing).
    pub out_dir: PathBuf,
    /// Continue from `out_dir/last.safetensors` when it exists.
    pub resume: bool,
    /// Episodes collated ahead of the learner.
    pub prefetch: usize,
    /// What the backbone is (kind and config); a checkpoint of anything else is refused.
    pub backbone_id: serde_json::Value,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 1_000,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            val_every: 250,
            log_every: 50,
            out_dir: PathBuf::from("runs/protonet"),
            resume: false,
            prefetch: 4,
            backbone_id: serde_json::Value::Null,
        }
    }
}

/// What a training run ended with.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The weights with the best validation accuracy.
    pub best: Learner,
    /// That accuracy (%).
    pub best_val: f64,
    /// The step it was reached at.
    pub best_step: usize,
    /// Steps run in this call (fewer than `steps` after a resume).
    pub steps_run: usize,
}

/// One forward pass over an episode: logits of the queries.
pub fn episode_logits<M: Model, C: FewShotClassifier>(
    model: &M,
    classifier: &C,
    learner_backbone: &Params,
    head: &Params,
    ctx: &mut Ctx,
    batch: &EpisodeBatch,
) -> Result<Tensor> {
    let ns = batch.support.dim(0)?;
    let x = Tensor::cat(&[&batch.support, &batch.query], 0)?;
    let z = model.forward(learner_backbone, &x, ctx)?;
    let (zs, zq) = (z.narrow(0, 0, ns)?, z.narrow(0, ns, z.dim(0)? - ns)?);
    let labels = batch.episode.support_labels();
    classifier.logits(head, &zs, &labels, batch.episode.classes.len(), &zq)
}

fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let pred = logits.argmax(1)?.to_dtype(DType::U32)?;
    let right = pred
        .eq(labels)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(100.0 * right as f64)
}

/// Per-episode query accuracy (%) of `learner` on a fixed episode set, batch norm in eval
/// mode (running statistics).
pub fn evaluate<M: Model, C: FewShotClassifier>(
    model: &M,
    classifier: &C,
    learner: &Learner,
    collator: &Collator,
    set: &EpisodeSet,
) -> Result<Vec<f64>> {
    evaluate_with_progress(model, classifier, learner, collator, set, |_, _| {})
}

/// [`evaluate`], calling `progress(episodes done, episodes)` after each episode.
pub fn evaluate_with_progress<M: Model, C: FewShotClassifier>(
    model: &M,
    classifier: &C,
    learner: &Learner,
    collator: &Collator,
    set: &EpisodeSet,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<f64>> {
    let loader = EpisodeLoader::new(Episodes::Fixed(set.clone()), collator.clone(), 4)
        .map_err(episodes_err)?;
    let mut accs = Vec::with_capacity(set.episodes.len());
    let mut ctx = Ctx::eval(learner.buffers.clone());
    for batch in loader {
        let batch = batch.map_err(episodes_err)?;
        let logits = episode_logits(
            model,
            classifier,
            &learner.backbone,
            &learner.head,
            &mut ctx,
            &batch,
        )?;
        accs.push(accuracy(&logits, &batch.query_labels)?);
        progress(accs.len(), set.episodes.len());
    }
    Ok(accs)
}

/// Maps a data-layer error into the core error (keeping its message).
pub fn episodes_err(e: scarce_episodes::Error) -> Error {
    match e {
        scarce_episodes::Error::Core(c) => c,
        scarce_episodes::Error::Candle(c) => Error::Candle(c),
        other => Error::param("episodes", other.to_string()),
    }
}

fn save_learner(
    path: &Path,
    learner: &Learner,
    adam: Option<&Adam>,
    meta: &CheckpointMeta,
) -> Result<()> {
    let mut all = Params::new();
    all.insert_prefixed("backbone.", &learner.backbone);
    all.insert_prefixed("head.", &learner.head);
    all.insert_prefixed("buffer.", &learner.buffers);
    if let Some(a) = adam {
        let (m, v) = a.moments();
        all.insert_prefixed("adam.m.", m);
        all.insert_prefixed("adam.v.", v);
    }
    checkpoint::save(path, &all.detach(), meta)
}

/// Loads a checkpoint written by [`train`], refusing one made for another backbone or
/// head. Returns the learner, the Adam state and the metadata.
pub fn load_learner(
    path: &Path,
    backbone_id: &serde_json::Value,
    head_name: &str,
    device: &Device,
) -> Result<(Learner, (Params, Params), CheckpointMeta)> {
    let (all, meta) = checkpoint::load(path, device)?;
    let want = serde_json::json!({ "backbone": backbone_id, "head": head_name });
    if meta.kind != "scarce-metric.learner" || meta.config != want {
        return Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "checkpoint is for {} ({}), this run trains {want}",
                meta.kind, meta.config
            ),
        });
    }
    let learner = Learner {
        backbone: all.strip_prefix("backbone."),
        head: all.strip_prefix("head."),
        buffers: all.strip_prefix("buffer."),
    };
    Ok((
        learner,
        (all.strip_prefix("adam.m."), all.strip_prefix("adam.v.")),
        meta,
    ))
}

/// Draws `log.csv` (step, loss, train_acc, lr, val_acc) as an SVG: training loss (mean over
/// windows of `steps / 100` steps) above, validation accuracy (%) below.
pub fn plot_learning_curve(log: &Path, svg: &Path, steps: usize) -> Result<()> {
    use scarce_eval::plot::{csv_points, learning_curve};
    let text = std::fs::read_to_string(log).map_err(|source| Error::Io {
        path: log.to_path_buf(),
        source,
    })?;
    let val = csv_points(&text, 0, 4);
    let (lo, hi) = val
        .iter()
        .fold((100.0f64, 0.0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let range = (
        (lo - 1.0).floor().max(0.0),
        hi.ceil().min(100.0).max(lo + 1.0),
    );
    learning_curve(
        &csv_points(&text, 0, 1),
        &val,
        steps,
        ("validation accuracy (%)", range),
    )
    .save_svg(svg)
    .map_err(|source| Error::Io {
        path: svg.to_path_buf(),
        source,
    })
}

/// What a training step reports to the progress callback of [`train`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Steps done (1-based).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// This step's episode loss.
    pub loss: f64,
    /// This step's query accuracy (%).
    pub accuracy: f64,
    /// The validation accuracy (%) when this step validated.
    pub val_accuracy: Option<f64>,
    /// The best validation accuracy (%) so far.
    pub best_val: f64,
    /// Seconds since this run (or resume) started.
    pub elapsed_s: f64,
}

/// Trains `init` on episodes of `sampler` (collated by `collator`), validating on
/// `val_set` (collated by `val_collator`). `progress` is called after every step (a progress
/// bar, a plot); every `cfg.log_every` steps a line also goes out as a `tracing` event.
#[allow(clippy::too_many_arguments)]
pub fn train<M: Model, C: FewShotClassifier>(
    model: &M,
    classifier: &C,
    init: Learner,
    sampler: &EpisodeSampler,
    collator: &Collator,
    val_set: &EpisodeSet,
    val_collator: &Collator,
    cfg: &TrainConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<TrainOutcome> {
    if cfg.steps == 0 || cfg.val_every == 0 {
        return Err(Error::param("steps, val_every", "must be at least 1"));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| Error::Io {
        path: cfg.out_dir.clone(),
        source,
    })?;
    let last = cfg.out_dir.join("last.safetensors");
    let best_path = cfg.out_dir.join("best.safetensors");
    let log_path = cfg.out_dir.join("log.csv");
    let device = init
        .backbone
        .iter()
        .next()
        .map(|(_, t)| t.device().clone())
        .unwrap_or(Device::Cpu);
    let mut adam = Adam::new(AdamConfig {
        lr: cfg.lr,
        ..Default::default()
    })?;
    let mut learner = init;
    let (mut start, mut best_val, mut best_step) = (0usize, f64::NEG_INFINITY, 0usize);
    let mut best = learner.clone();
    let head_name = classifier.name();
    if cfg.resume && last.exists() {
        let (l, (m, v), meta) = load_learner(&last, &cfg.backbone_id, &head_name, &device)?;
        let num = |k: &str| -> Result<f64> {
            meta.extra
                .get(k)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Format {
                    path: last.clone(),
                    reason: format!("no `{k}` in the checkpoint header"),
                })
        };
        start = num("step")? as usize;
        adam.restore(start as i32, m, v)?;
        learner = l;
        if best_path.exists() {
            best = load_learner(&best_path, &cfg.backbone_id, &head_name, &device)?.0;
            best_val = num("best_val")?;
            best_step = num("best_step")? as usize;
        }
        tracing::info!("resuming from {} at step {start}", last.display());
    }
    let mut log = RunLog::open(
        &log_path,
        "step,loss,train_acc,lr,val_acc",
        (start > 0).then_some(start),
    )?;
    let meta_for = |step: usize, best_val: f64, best_step: usize| CheckpointMeta {
        kind: "scarce-metric.learner".into(),
        config: serde_json::json!({ "backbone": cfg.backbone_id, "head": head_name }),
        extra: [
            ("step".to_string(), step.to_string()),
            ("best_val".to_string(), best_val.to_string()),
            ("best_step".to_string(), best_step.to_string()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let loader = EpisodeLoader::new(
        Episodes::Sampled {
            sampler: sampler.clone(),
            start: start as u64,
            count: Some((cfg.steps.saturating_sub(start)) as u64),
        },
        collator.clone(),
        cfg.prefetch.max(1),
    )
    .map_err(episodes_err)?;
    let mut params = learner.backbone.to_vars()?;
    let mut head = learner.head.to_vars()?;
    let mut buffers = learner.buffers;
    let clock = Instant::now();
    let (mut loss_sum, mut acc_sum, mut since) = (0.0, 0.0, 0usize);
    for (k, batch) in loader.enumerate() {
        let step = start + k;
        let batch = batch.map_err(episodes_err)?;
        let lr = cfg.schedule.lr_at(cfg.lr, step);
        adam.set_lr(lr);
        let mut ctx = Ctx::train(std::mem::take(&mut buffers));
        let logits = episode_logits(model, classifier, &params, &head, &mut ctx, &batch)?;
        let loss = ops::cross_entropy(&logits, &batch.query_labels)?;
        let grads = loss.backward()?;
        // One optimiser over backbone and head: join them under distinct prefixes.
        let mut all = Params::new();
        all.insert_prefixed("backbone.", &params);
        all.insert_prefixed("head.", &head);
        let g = all.grads(&grads)?;
        adam.step(&mut all, &g)?;
        params = all.strip_prefix("backbone.");
        head = all.strip_prefix("head.");
        buffers = ctx.buffers;
        let (l, a) = (
            loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            accuracy(&logits, &batch.query_labels)?,
        );
        loss_sum += l;
        acc_sum += a;
        since += 1;
        let done = step + 1;
        let validate = done % cfg.val_every == 0 || done == cfg.steps;
        let mut val = None;
        if validate {
            let current = Learner {
                backbone: params.detach(),
                head: head.detach(),
                buffers: buffers.clone(),
            };
            let accs = evaluate(model, classifier, &current, val_collator, val_set)?;
            val = Some((accs.iter().sum::<f64>() / accs.len().max(1) as f64, current));
        }
        let val_text = val
            .as_ref()
            .map(|v| format!("{:.4}", v.0))
            .unwrap_or_default();
        log.row(&format!("{done},{l:.6},{a:.3},{lr:.3e},{val_text}"))?;
        let val_accuracy = val.as_ref().map(|v| v.0);
        if let Some((acc, current)) = val {
            // The log row is on disk before the checkpoint that covers it.
            log.flush()?;
            if acc > best_val {
                best_val = acc;
                best_step = done;
                best = current.clone();
                save_learner(
                    &best_path,
                    &best,
                    None,
                    &meta_for(done, best_val, best_step),
                )?;
            }
            save_learner(
                &last,
                &current,
                Some(&adam),
                &meta_for(done, best_val, best_step),
            )?;
            plot_learning_curve(
                &log_path,
                &cfg.out_dir.join("learning_curve.svg"),
                cfg.steps,
            )?;
        }
        progress(&Progress {
            step: done,
            steps: cfg.steps,
            loss: l,
            accuracy: a,
            val_accuracy,
            best_val,
            elapsed_s: clock.elapsed().as_secs_f64(),
        });
        if cfg.log_every > 0 && (done % cfg.log_every == 0 || validate) {
            let rate = (k + 1) as f64 / clock.elapsed().as_secs_f64();
            let eta = (cfg.steps - done) as f64 / rate;
            tracing::info!(
                "step {done:>6}/{} loss {:.4} train acc {:5.1}%{} best val {best_val:.2}% | {rate:.1} steps/s, eta {:.0}s",
                cfg.steps,
                loss_sum / since as f64,
                acc_sum / since as f64,
                if val_text.is_empty() { String::new() } else { format!(" val {val_text}%") },
                eta
            );
            (loss_sum, acc_sum, since) = (0.0, 0.0, 0);
        }
    }
    Ok(TrainOutcome {
        best,
        best_val,
        best_step,
        steps_run: cfg.steps.saturating_sub(start),
    })
}
