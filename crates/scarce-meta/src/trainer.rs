//! The meta-trainer: meta-batches of tasks from a [`TaskSource`], one outer optimiser step
//! per meta-batch, validation on fixed tasks, checkpoints and resume, a CSV log and a PNG
//! learning curve.
//!
//! Under `out_dir` it writes `last.safetensors` (weights, learnt rates, batch-norm
//! statistics, optimiser state and step; atomically, at every validation),
//! `best.safetensors` (best validation score), `log.csv` (`step,loss,lr,val_loss,val_acc`)
//! and `learning_curve.svg` (meta-loss above, validation score below).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use scarce_core::checkpoint::{self, CheckpointMeta};
use scarce_core::optim::{Adam, AdamConfig, LrSchedule, Optimizer, Sgd, SgdConfig};
use scarce_core::runlog::RunLog;
use scarce_core::{Ctx, Model, Params};

use crate::learner::{MetaLearner, MetaState};
use crate::task::{Loss, TaskSource};
use crate::{Error, Result};

/// The optimiser of the meta-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Outer {
    /// Adam (MAML's choice) with this base rate.
    Adam(f64),
    /// Plain SGD with this rate (Reptile's ε).
    Sgd(f64),
}

/// Batch-norm statistics during meta-training and evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BatchNorm {
    /// MAML's transductive mode: batch statistics at adaptation and query time, nothing
    /// remembered.
    Transductive,
    /// Running statistics updated in training and used at evaluation.
    Running,
}

/// How to meta-train. `Default` is MAML's Omniglot setting at a small size (Adam 1e-3,
/// meta-batch 4, 1 000 meta-steps, validation every 250 on 100 tasks, transductive batch
/// norm) writing to `runs/meta`; serialisable, so a run's settings can be saved beside it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MetaTrainConfig {
    /// Meta-steps (outer updates).
    pub meta_steps: usize,
    /// Tasks per meta-step.
    pub meta_batch: usize,
    /// The outer optimiser.
    pub outer: Outer,
    /// Outer learning-rate schedule over meta-steps.
    pub schedule: LrSchedule,
    /// Batch-norm mode.
    pub batch_norm: BatchNorm,
    /// Validate (and checkpoint) every this many meta-steps, and at the end.
    pub val_every: usize,
    /// Validation tasks (indices `0..val_tasks` of the validation source).
    pub val_tasks: usize,
    /// Inner steps at validation.
    pub val_inner_steps: usize,
    /// Print a progress line every this many meta-steps (0: never).
    pub log_every: usize,
    /// Where checkpoints, log and plot go (created if missing).
    pub out_dir: PathBuf,
    /// Continue from `out_dir/last.safetensors` when it exists.
    pub resume: bool,
    /// What is being trained (model, algorithm, …); a checkpoint of anything else is
    /// refused on resume.
    pub run_id: serde_json::Value,
}

impl Default for MetaTrainConfig {
    fn default() -> Self {
        MetaTrainConfig {
            meta_steps: 1_000,
            meta_batch: 4,
            outer: Outer::Adam(1e-3),
            schedule: LrSchedule::Constant,
            batch_norm: BatchNorm::Transductive,
            val_every: 250,
            val_tasks: 100,
            val_inner_steps: 1,
            log_every: 50,
            out_dir: PathBuf::from("runs/meta"),
            resume: false,
            run_id: serde_json::Value::Null,
        }
    }
}

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct MetaOutcome {
    /// The state with the best validation score.
    pub best: MetaState,
    /// Its batch-norm running statistics (empty in transductive mode).
    pub best_buffers: Params,
    /// The best validation score: accuracy (%) for classification, else −loss.
    pub best_score: f64,
    /// The meta-step it was reached at.
    pub best_step: usize,
    /// The final state.
    pub last: MetaState,
    /// Meta-steps run in this call.
    pub steps_run: usize,
}

const KIND: &str = "scarce-meta.state";

/// The optimiser's view of a state: weights and rates under distinct prefixes.
fn joined(state: &MetaState) -> Params {
    let mut all = Params::new();
    all.insert_prefixed("param.", &state.params);
    all.insert_prefixed("lr.", &state.lrs);
    all
}

fn split(all: &Params) -> MetaState {
    MetaState {
        params: all.strip_prefix("param."),
        lrs: all.strip_prefix("lr."),
    }
}

fn save_state(
    path: &Path,
    state: &MetaState,
    buffers: &Params,
    adam: Option<&Adam>,
    meta: &CheckpointMeta,
) -> Result<()> {
    let mut all = joined(state);
    all.insert_prefixed("buffer.", buffers);
    if let Some(a) = adam {
        let (m, v) = a.moments();
        all.insert_prefixed("adam.m.", m);
        all.insert_prefixed("adam.v.", v);
    }
    Ok(checkpoint::save(path, &all.detach(), meta)?)
}

/// A checkpoint written by [`meta_train`]: the state, its batch-norm statistics, the Adam
/// moments and the header. A checkpoint of another run (`run_id`) is refused.
pub fn load_state(
    path: &Path,
    run_id: &serde_json::Value,
    device: &Device,
) -> Result<(MetaState, Params, (Params, Params), CheckpointMeta)> {
    let (all, meta) = checkpoint::load(path, device)?;
    if meta.kind != KIND || &meta.config != run_id {
        return Err(scarce_core::Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "checkpoint is for {} ({}), this run is {run_id}",
                meta.kind, meta.config
            ),
        }
        .into());
    }
    Ok((
        split(&all),
        all.strip_prefix("buffer."),
        (all.strip_prefix("adam.m."), all.strip_prefix("adam.v.")),
        meta,
    ))
}

/// Mean validation loss and accuracy over `count` fixed tasks.
pub fn validate<M: Model>(
    learner: &MetaLearner<'_, M>,
    state: &MetaState,
    buffers: &Params,
    batch_norm: BatchNorm,
    source: &dyn TaskSource,
    count: usize,
    inner_steps: usize,
) -> Result<(f64, Option<f64>)> {
    let (mut loss, mut acc, mut n) = (0.0, 0.0, 0usize);
    let mut has_acc = false;
    for (i, task) in source.tasks(0, count as u64)?.enumerate() {
        let mut ctx = match batch_norm {
            BatchNorm::Transductive => Ctx::transductive(),
            BatchNorm::Running => Ctx::eval(buffers.clone()),
        };
        let s = learner
            .evaluate(state, &task?, inner_steps, &mut ctx)
            .map_err(|e| match e {
                Error::Task { reason, .. } => Error::Task {
                    task: i,
                    reason: format!("validation: {reason}"),
                },
                e => e,
            })?;
        loss += s.loss;
        if let Some(a) = s.accuracy {
            acc += a;
            has_acc = true;
        }
        n += 1;
    }
    let n = n.max(1) as f64;
    Ok((loss / n, has_acc.then_some(acc / n)))
}

/// What a meta-step reports to the progress callback of [`meta_train`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetaProgress {
    /// Meta-steps done (1-based).
    pub step: usize,
    /// Total meta-steps.
    pub steps: usize,
    /// This meta-step's mean query loss after adaptation.
    pub loss: f64,
    /// The validation loss and accuracy (classification only) when this step validated.
    pub validation: Option<(f64, Option<f64>)>,
    /// Seconds since this run (or resume) started.
    pub elapsed_s: f64,
}

/// Meta-trains `init` (weights and, where learnt, rates) on tasks of `train`, validating on
/// tasks `0..cfg.val_tasks` of `val`. Meta-step `s` uses tasks
/// `s·meta_batch .. (s+1)·meta_batch` of `train`, so a resumed run continues exactly.
/// A non-finite meta-gradient stops the run before it is applied, naming the step, the task
/// and the last good checkpoint. `progress` is called after every meta-step; every
/// `cfg.log_every` steps a line also goes out as a `tracing` event.
pub fn meta_train<M: Model>(
    learner: &MetaLearner<'_, M>,
    init: MetaState,
    buffers: Params,
    train: &dyn TaskSource,
    val: &dyn TaskSource,
    cfg: &MetaTrainConfig,
    mut progress: impl FnMut(&MetaProgress),
) -> Result<MetaOutcome> {
    if cfg.meta_steps == 0 || cfg.val_every == 0 || cfg.meta_batch == 0 || cfg.val_tasks == 0 {
        return Err(Error::config(
            "meta_steps, val_every, meta_batch, val_tasks",
            "must all be at least 1",
        ));
    }
    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| scarce_core::Error::Io {
        path: cfg.out_dir.clone(),
        source,
    })?;
    let last_path = cfg.out_dir.join("last.safetensors");
    let best_path = cfg.out_dir.join("best.safetensors");
    let log_path = cfg.out_dir.join("log.csv");
    let device = init
        .params
        .tensors()
        .first()
        .map(|t| t.device().clone())
        .unwrap_or(Device::Cpu);
    let base_lr = match cfg.outer {
        Outer::Adam(lr) | Outer::Sgd(lr) => lr,
    };
    let mut adam = Adam::new(AdamConfig {
        lr: base_lr,
        ..Default::default()
    })?;
    let mut sgd = Sgd::new(SgdConfig {
        lr: base_lr,
        ..Default::default()
    })?;
    let (mut state, mut buffers) = (init, buffers);
    let (mut start, mut best_score, mut best_step) = (0usize, f64::NEG_INFINITY, 0usize);
    let (mut best, mut best_buffers) = (state.clone(), buffers.clone());
    let mut last_good: Option<PathBuf> = None;
    if cfg.resume && last_path.exists() {
        let (s, b, (m, v), meta) = load_state(&last_path, &cfg.run_id, &device)?;
        let num = |k: &str| -> Result<f64> {
            meta.extra
                .get(k)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    scarce_core::Error::Format {
                        path: last_path.clone(),
                        reason: format!("no `{k}` in the checkpoint header"),
                    }
                    .into()
                })
        };
        start = num("step")? as usize;
        if matches!(cfg.outer, Outer::Adam(_)) {
            adam.restore(start as i32, m, v)?;
        }
        (state, buffers) = (s, b);
        if best_path.exists() {
            let (s, b, _, _) = load_state(&best_path, &cfg.run_id, &device)?;
            (best, best_buffers) = (s, b);
            best_score = num("best_score")?;
            best_step = num("best_step")? as usize;
        }
        last_good = Some(last_path.clone());
        tracing::info!("resuming from {} at meta-step {start}", last_path.display());
    }
    let mut log = RunLog::open(
        &log_path,
        "step,loss,lr,val_loss,val_acc",
        (start > 0).then_some(start),
    )?;
    let meta_for = |step: usize, best_score: f64, best_step: usize| CheckpointMeta {
        kind: KIND.into(),
        config: cfg.run_id.clone(),
        extra: [
            ("step".to_string(), step.to_string()),
            ("best_score".to_string(), best_score.to_string()),
            ("best_step".to_string(), best_step.to_string()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let remaining = cfg.meta_steps.saturating_sub(start);
    let mut tasks = train.tasks(
        (start * cfg.meta_batch) as u64,
        (remaining * cfg.meta_batch) as u64,
    )?;
    let mut vars = joined(&state).to_vars()?;
    let clock = Instant::now();
    let (mut loss_sum, mut since) = (0.0, 0usize);
    for step in start..cfg.meta_steps {
        let batch = (&mut tasks)
            .take(cfg.meta_batch)
            .collect::<Result<Vec<_>>>()?;
        if batch.len() < cfg.meta_batch {
            return Err(Error::config(
                "train",
                format!("the task source ended at meta-step {step}"),
            ));
        }
        let lr = cfg.schedule.lr_at(base_lr, step);
        let mut ctx = match cfg.batch_norm {
            BatchNorm::Transductive => Ctx::transductive(),
            BatchNorm::Running => Ctx::train(std::mem::take(&mut buffers)),
        };
        let g = learner
            .meta_gradient(&split(&vars), &batch, step, &mut ctx)
            .map_err(|e| match e {
                Error::NonFinite {
                    step, task, what, ..
                } => Error::NonFinite {
                    step,
                    task,
                    what,
                    checkpoint: last_good.clone(),
                },
                e => e,
            })?;
        buffers = ctx.buffers;
        let grads = joined(&MetaState {
            params: g.params,
            lrs: g.lrs,
        });
        match cfg.outer {
            Outer::Adam(_) => {
                adam.set_lr(lr);
                adam.step(&mut vars, &grads)?;
            }
            Outer::Sgd(_) => {
                sgd.set_lr(lr);
                sgd.step(&mut vars, &grads)?;
            }
        }
        loss_sum += g.loss;
        since += 1;
        let done = step + 1;
        let validate_now = done % cfg.val_every == 0 || done == cfg.meta_steps;
        let mut val_text = ",".to_string();
        let mut validation = None;
        if validate_now {
            let current = split(&vars).detach();
            let (vl, va) = validate(
                learner,
                &current,
                &buffers,
                cfg.batch_norm,
                val,
                cfg.val_tasks,
                cfg.val_inner_steps,
            )?;
            val_text = format!(
                "{vl:.6},{}",
                va.map(|a| format!("{a:.4}")).unwrap_or_default()
            );
            validation = Some((vl, va));
            log.row(&format!("{done},{:.6},{lr:.3e},{val_text}", g.loss))?;
            // The log row is on disk before the checkpoint that covers it.
            log.flush()?;
            let score = va.unwrap_or(-vl);
            if score > best_score {
                (best_score, best_step) = (score, done);
                (best, best_buffers) = (current.clone(), buffers.clone());
                save_state(
                    &best_path,
                    &best,
                    &best_buffers,
                    None,
                    &meta_for(done, best_score, best_step),
                )?;
            }
            save_state(
                &last_path,
                &current,
                &buffers,
                matches!(cfg.outer, Outer::Adam(_)).then_some(&adam),
                &meta_for(done, best_score, best_step),
            )?;
            last_good = Some(last_path.clone());
            plot_learning_curve(
                &log_path,
                &cfg.out_dir.join("learning_curve.svg"),
                cfg.meta_steps,
                learner.loss,
            )?;
        } else {
            log.row(&format!("{done},{:.6},{lr:.3e},,", g.loss))?;
        }
        progress(&MetaProgress {
            step: done,
            steps: cfg.meta_steps,
            loss: g.loss,
            validation,
            elapsed_s: clock.elapsed().as_secs_f64(),
        });
        if cfg.log_every > 0 && (done % cfg.log_every == 0 || validate_now) {
            let rate = (done - start) as f64 / clock.elapsed().as_secs_f64();
            let eta = (cfg.meta_steps - done) as f64 / rate;
            let val_shown = if validate_now {
                format!(" val {}", val_text.replace(',', " / "))
            } else {
                String::new()
            };
            tracing::info!(
                "meta-step {done:>6}/{} loss {:.4}{val_shown} | {:.2} s/step, eta {eta:.0}s",
                cfg.meta_steps,
                loss_sum / since as f64,
                1.0 / rate,
            );
            (loss_sum, since) = (0.0, 0);
        }
    }
    Ok(MetaOutcome {
        best,
        best_buffers,
        best_score,
        best_step,
        last: split(&vars).detach(),
        steps_run: remaining,
    })
}

/// Draws `log.csv` as an SVG: the meta-loss (mean over windows of `steps / 100` steps) above,
/// the validation accuracy (classification) or loss (regression) below.
pub fn plot_learning_curve(log: &Path, svg: &Path, steps: usize, loss: Loss) -> Result<()> {
    use scarce_eval::plot::{csv_points, learning_curve};
    let text = std::fs::read_to_string(log).map_err(|source| scarce_core::Error::Io {
        path: log.to_path_buf(),
        source,
    })?;
    let val = csv_points(&text, 0, if loss == Loss::CrossEntropy { 4 } else { 3 });
    let (lo, hi) = val
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let range = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), lo.max(0.0) + 1.0)
    };
    let label = if loss == Loss::CrossEntropy {
        "validation accuracy (%)"
    } else {
        "validation loss"
    };
    learning_curve(&csv_points(&text, 0, 1), &val, steps, (label, range))
        .save_svg(svg)
        .map_err(|source| {
            scarce_core::Error::Io {
                path: svg.to_path_buf(),
                source,
            }
            .into()
        })
}
