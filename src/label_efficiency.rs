//! The label-efficiency benchmark: how well each way of learning from few labels does on a
//! MedMNIST-layout data set when only K labelled images per class are given and the rest of
//! the training split is an unlabelled pool.
//!
//! Protocol (fixed before any test number was seen, the same for every data set):
//! - For each draw `s` and each class, a permutation of that class's training images
//!   (`Stream::new(s, "label-efficiency")`); budget K takes the first K, so the draws are
//!   nested over K. Every method sees the same draws (the comparison is paired).
//! - The unlabelled pool is the whole training split with its labels hidden; pretraining
//!   runs once per data set on it (never on validation or test images) and is cached.
//! - No validation set: every schedule is a fixed number of steps, so nothing is selected
//!   on data larger than the labelled budget. The official test split is read only to score.
//! - Scores: test AUROC (binary: the positive class's probability; more classes: macro
//!   one-vs-rest) and balanced accuracy at the arg-max; mean ± 95 % Student-t interval over
//!   draws, and each method's paired difference against Conv4 from scratch.
//!
//! The hyper-parameters are those of the PyTorch + lightly anchor
//! (`shared/bench/label_efficiency.py`), chosen there a priori; none was tuned on a test set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use scarce_augment::views::{views, ViewConfig};
use scarce_core::backbone::{Conv4, Conv4Config, Spatial};
use scarce_core::checkpoint::CheckpointMeta;
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::{ops, Ctx, DType, Device, Error, Model, Params, Result, Stream, Tensor};
use scarce_episodes::medmnist::{load_medmnist, Split};
use scarce_ssl::{
    fixmatch, Encoder, FixMatchConfig, Labelled, LogisticRegression, SimClrConfig, Unlabelled,
};

/// A labelled budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Budget {
    /// K labelled images per class.
    PerClass(usize),
    /// The whole labelled training split.
    All,
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::PerClass(k) => write!(f, "{k}"),
            Budget::All => write!(f, "all"),
        }
    }
}

impl std::str::FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "all" => Ok(Budget::All),
            k => match k.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Budget::PerClass(k)),
                _ => Err(format!(
                    "`{s}` is neither a positive count per class nor `all`"
                )),
            },
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// Conv4 + linear layer from scratch on the labelled images (Adam 1e-3, L2 1e-4,
    /// full-batch steps with flip / rotation / zoom / shift).
    Conv4Scratch,
    /// Logistic regression (C = 1) on the L2-normalised features of the SimCLR encoder.
    SimclrProbe,
    /// The SimCLR encoder and a fresh linear head fine-tuned together (Adam 1e-4).
    SimclrFinetune,
    /// Linear probe, then fine-tuning of encoder and head from it (LP-FT, Kumar et al. 2022).
    SimclrLpft,
    /// ProtoNet on the SimCLR encoder: cosine to the class means of the labelled features.
    SimclrProtonet,
    /// Self-training of the probe: the probe's pseudo-labels on the pool are kept where the
    /// split-conformal prediction set (α = 0.1, calibrated by leave-one-out on the labelled
    /// images) is a single class, and the probe is refitted on labelled + kept images.
    SimclrSelftrain,
    /// LP-FT whose head starts from the self-trained probe.
    SimclrSelftrainLpft,
    /// FixMatch from scratch (Conv4 + linear, Adam 1e-3) on the labelled images and the pool.
    FixmatchScratch,
    /// FixMatch from the SimCLR encoder with the probe's head (Adam 1e-4).
    FixmatchSimclr,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 9] = [
        Method::Conv4Scratch,
        Method::SimclrProbe,
        Method::SimclrFinetune,
        Method::SimclrLpft,
        Method::SimclrProtonet,
        Method::SimclrSelftrain,
        Method::SimclrSelftrainLpft,
        Method::FixmatchScratch,
        Method::FixmatchSimclr,
    ];

    /// The row's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Conv4Scratch => "conv4_scratch",
            Method::SimclrProbe => "simclr_conv4_probe",
            Method::SimclrFinetune => "simclr_conv4_ft",
            Method::SimclrLpft => "simclr_conv4_lpft",
            Method::SimclrProtonet => "simclr_conv4_protonet",
            Method::SimclrSelftrain => "simclr_conv4_selftrain",
            Method::SimclrSelftrainLpft => "simclr_conv4_selftrain_lpft",
            Method::FixmatchScratch => "fixmatch_conv4_scratch",
            Method::FixmatchSimclr => "fixmatch_simclr_conv4",
        }
    }

    fn needs_encoder(self) -> bool {
        !matches!(self, Method::Conv4Scratch | Method::FixmatchScratch)
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method `{s}` (known: {})", names.join(", "))
            })
    }
}

/// A data set of the MedMNIST layout, in memory.
#[derive(Debug, Clone)]
pub struct Data {
    /// The file's stem.
    pub name: String,
    /// Training pixels in `[0, 1]`, `[N, *sample_shape]`.
    pub train: Vec<f32>,
    /// Training labels.
    pub train_labels: Vec<usize>,
    /// Test pixels.
    pub test: Vec<f32>,
    /// Test labels.
    pub test_labels: Vec<usize>,
    /// `[C, H, W]` or `[C, D, H, W]`.
    pub sample_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Mean and standard deviation of the training pixels (the input normalisation).
    pub mean_std: (f64, f64),
}

fn pixels(ds: &scarce_episodes::Dataset) -> Result<Vec<f32>> {
    let per = ds.sample_len();
    let mut v = vec![0f32; ds.len() * per];
    for (i, chunk) in v.chunks_mut(per).enumerate() {
        ds.read(i, chunk)
            .map_err(|e| Error::param("data", e.to_string()))?;
    }
    Ok(v)
}

impl Data {
    /// Reads the train and test splits of a MedMNIST-layout file (`.npz` or
    /// `.safetensors`).
    pub fn load(path: &Path) -> Result<Data> {
        let err = |e: scarce_episodes::Error| Error::param("data", e.to_string());
        let train = load_medmnist(path, Split::Train).map_err(err)?;
        let test = load_medmnist(path, Split::Test).map_err(err)?;
        if train.sample_shape() != test.sample_shape() {
            return Err(Error::Format {
                path: path.into(),
                reason: format!(
                    "train images are {:?}, test images {:?}",
                    train.sample_shape(),
                    test.sample_shape()
                ),
            });
        }
        let classes = train.n_classes().max(test.n_classes());
        let train_px = pixels(&train)?;
        let n = train_px.len() as f64;
        let mean = train_px.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = train_px
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        Ok(Data {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            train: train_px,
            train_labels: train.labels().to_vec(),
            test: pixels(&test)?,
            test_labels: test.labels().to_vec(),
            sample_shape: train.sample_shape().to_vec(),
            classes,
            mean_std: (mean, var.sqrt().max(1e-12)),
        })
    }

    fn per(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The training images at `idx` as a `[n, *sample_shape]` tensor in `[0, 1]`.
    fn train_batch(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let per = self.per();
        let mut v = Vec::with_capacity(idx.len() * per);
        for &i in idx {
            v.extend_from_slice(&self.train[i * per..(i + 1) * per]);
        }
        let mut shape = vec![idx.len()];
        shape.extend_from_slice(&self.sample_shape);
        Ok(Tensor::from_vec(v, shape, device)?)
    }

    fn normalise(&self, x: &Tensor) -> Result<Tensor> {
        let (m, s) = self.mean_std;
        Ok(x.affine(1.0 / s, -m / s)?)
    }

    fn test_tensor(&self, device: &Device) -> Result<Tensor> {
        let mut shape = vec![self.test_labels.len()];
        shape.extend_from_slice(&self.sample_shape);
        self.normalise(&Tensor::from_vec(self.test.clone(), shape, device)?)
    }

    fn train_tensor(&self, device: &Device) -> Result<Tensor> {
        let mut shape = vec![self.train_labels.len()];
        shape.extend_from_slice(&self.sample_shape);
        self.normalise(&Tensor::from_vec(self.train.clone(), shape, device)?)
    }

    fn conv4(&self) -> Result<Conv4> {
        Conv4::new(Conv4Config {
            in_channels: self.sample_shape[0],
            spatial: if self.sample_shape.len() == 4 {
                Spatial::D3
            } else {
                Spatial::D2
            },
            ..Conv4Config::default()
        })
    }

    /// The labelled training indices of draw `seed` at `budget`: class by class, the
    /// first K of a fixed permutation of the class (nested over K).
    pub fn draw(&self, seed: u64, budget: Budget) -> Result<Vec<usize>> {
        let k = match budget {
            Budget::All => return Ok((0..self.train_labels.len()).collect()),
            Budget::PerClass(k) => k,
        };
        let mut out = Vec::new();
        for c in 0..self.classes {
            let members: Vec<usize> = (0..self.train_labels.len())
                .filter(|&i| self.train_labels[i] == c)
                .collect();
            if k > members.len() {
                return Err(Error::param(
                    "K",
                    format!(
                        "{k} labelled images per class, but class {c} of {} has {} training images",
                        self.name,
                        members.len()
                    ),
                ));
            }
            let perm = Stream::new(seed, "label-efficiency")
                .at(c as u64)
                .permutation(members.len());
            out.extend(perm[..k].iter().map(|&j| members[j]));
        }
        Ok(out)
    }
}

/// The benchmark's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Labelled budgets.
    pub budgets: Vec<Budget>,
    /// Draws per budget (seeds `0..draws`).
    pub draws: usize,
    /// Table rows.
    pub methods: Vec<Method>,
    /// SimCLR pretraining on the unlabelled pool (its `epochs` is replaced by what
    /// `simclr_steps` needs on the data set).
    pub simclr: SimClrConfig,
    /// Optimiser steps of SimCLR pretraining, whatever the pool's size (epochs rounded up).
    pub simclr_steps: usize,
    /// Steps and learning rate of fine-tuning (FT and LP-FT).
    pub finetune: (usize, f64),
    /// Steps, learning rate and L2 weight decay of training from scratch.
    pub scratch: (usize, f64, f64),
    /// Inverse regularisation of the probe (scikit-learn's C).
    pub probe_c: f64,
    /// FixMatch's schedule (its `lr` is replaced: 1e-3 from scratch, 1e-4 from the encoder,
    /// the rates of the supervised rows they extend).
    pub fixmatch: FixMatchConfig,
    /// Folder for the pretrained encoders (reused when present and made with the same
    /// settings).
    pub cache: Option<PathBuf>,
    /// Transfer instead of pretraining on the pool: a Conv4 encoder saved by
    /// `scarce_ssl::Encoder::save` (e.g. the SimCLR encoder of another data set), and the
    /// label that replaces `simclr` in the encoder rows' names.
    pub transfer: Option<(String, PathBuf)>,
}

impl Default for Config {
    /// The full benchmark: K ∈ {1, 5, 10, 20, 50}, 10 draws, every method; SimCLR for 2000
    /// steps of 256 images.
    fn default() -> Self {
        Config {
            budgets: [1, 5, 10, 20, 50].map(Budget::PerClass).to_vec(),
            draws: 10,
            methods: Method::ALL.to_vec(),
            simclr: SimClrConfig::default(),
            simclr_steps: 2000,
            finetune: (100, 1e-4),
            scratch: (200, 1e-3, 1e-4),
            probe_c: 1.0,
            fixmatch: FixMatchConfig::default(),
            cache: None,
            transfer: None,
        }
    }
}

impl Config {
    /// The smoke run: K = 10, two draws, 4 SimCLR steps, 20-step schedules.
    pub fn quick() -> Self {
        Config {
            budgets: vec![Budget::PerClass(10)],
            draws: 2,
            simclr_steps: 4,
            finetune: (20, 1e-4),
            scratch: (20, 1e-3, 1e-4),
            fixmatch: FixMatchConfig {
                steps: 4,
                unlabelled_batch: 32,
                ..FixMatchConfig::default()
            },
            ..Config::default()
        }
    }
}

/// One (method, budget, draw) result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// The data set.
    pub dataset: String,
    /// The method's name.
    pub method: String,
    /// The budget (`"10"` or `"all"`).
    pub k: String,
    /// The draw's seed.
    pub draw: u64,
    /// Test AUROC.
    pub auroc: f64,
    /// Test balanced accuracy.
    pub balanced_accuracy: f64,
    /// Seconds this row took (pretraining excluded).
    pub wall_s: f64,
}

/// What SimCLR pretraining did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PretrainInfo {
    /// Epochs run.
    pub epochs: usize,
    /// Images in the unlabelled pool.
    pub images: usize,
    /// Mean loss per epoch.
    pub losses: Vec<f64>,
    /// Seconds (0 when read from the cache; the cached file's own time is in `cached_wall_s`).
    pub wall_s: f64,
    /// The cache file's recorded pretraining time, when it was reused.
    pub cached_wall_s: Option<f64>,
}

/// The results of one data set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The data set.
    pub dataset: String,
    /// Every row.
    pub rows: Vec<Row>,
    /// `draws[seed][K]` = training indices, the anchor script's `--draws` format.
    pub draws: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
    /// SimCLR pretraining, when a method needed it.
    pub pretrain: Option<PretrainInfo>,
}

/// Test-set scores: AUROC (binary: positive class; else macro one-vs-rest) and balanced
/// accuracy at the arg-max.
fn score(probs: &[Vec<f64>], labels: &[usize], classes: usize) -> Result<(f64, f64)> {
    let e = |e: scarce_eval::Error| Error::param("scores", e.to_string());
    let auroc = if classes == 2 {
        let pos: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        let s: Vec<f64> = probs.iter().map(|p| p[1]).collect();
        scarce_eval::auroc(&pos, &s).map_err(e)?
    } else {
        scarce_eval::auroc_ovr(labels, probs).map_err(e)?.macro_avg
    };
    let pred: Vec<usize> = probs
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                )
                .0
        })
        .collect();
    let cm = scarce_eval::ConfusionMatrix::new(labels, &pred, classes).map_err(e)?;
    Ok((auroc, cm.balanced_accuracy(false)))
}

fn rows_f64(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Ok(t.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

/// Largest labelled set trained full-batch; larger ones (K = all) train on random
/// minibatches of this size, the same number of steps.
const MAX_BATCH: usize = 256;

/// A Conv4 with a linear head (and optionally the L2 normalisation between them) trained
/// on the labelled images with augmentation; returns test probabilities.
struct FineTune<'a> {
    data: &'a Data,
    model: Conv4,
    device: &'a Device,
}

impl FineTune<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        mut p: Params,
        mut buffers: Params,
        l2: bool,
        idx: &[usize],
        (steps, lr, wd): (usize, f64, f64),
        seed: u64,
        test: &Tensor,
    ) -> Result<Vec<Vec<f64>>> {
        let d = self.data;
        let x01 = d.train_batch(idx, self.device)?;
        let raw = x01.flatten_all()?.to_vec1::<f32>()?;
        let y = Tensor::new(
            idx.iter()
                .map(|&i| d.train_labels[i] as u32)
                .collect::<Vec<_>>(),
            self.device,
        )?;
        let ids: Vec<u64> = (0..idx.len() as u64).collect();
        let aug = ViewConfig::supervised();
        let mut adam = Adam::new(AdamConfig {
            lr,
            weight_decay: wd,
            ..Default::default()
        })?;
        p = p.to_vars()?;
        let head = |p: &Params, z: &Tensor| -> Result<Tensor> {
            let z = if l2 {
                scarce_ssl::loss::l2_normalize(z, 1e-12)?
            } else {
                z.clone()
            };
            ops::linear(&z, p.require("fc.weight")?, Some(p.require("fc.bias")?))
        };
        let per = d.per();
        let batch_rng = Stream::new(seed, "label-efficiency-batches");
        for step in 0..steps {
            // Full batch up to MAX_BATCH labelled images; beyond, a fresh random minibatch.
            let pick: Vec<usize> = if idx.len() <= MAX_BATCH {
                (0..idx.len()).collect()
            } else {
                batch_rng.at(step as u64).permutation(idx.len())[..MAX_BATCH].to_vec()
            };
            let mut px = Vec::with_capacity(pick.len() * per);
            for &j in &pick {
                px.extend_from_slice(&raw[j * per..(j + 1) * per]);
            }
            let pick_ids: Vec<u64> = pick.iter().map(|&j| ids[j]).collect();
            let v = views(&px, &d.sample_shape, &pick_ids, step as u64, seed, &aug)
                .map_err(|e| Error::param("augmentation", e.to_string()))?;
            let mut shape = vec![pick.len()];
            shape.extend_from_slice(&d.sample_shape);
            let x = d.normalise(&Tensor::from_vec(v, shape, self.device)?)?;
            let y = if pick.len() == idx.len() {
                y.clone()
            } else {
                let sel = Tensor::new(
                    pick.iter().map(|&j| j as u32).collect::<Vec<_>>(),
                    self.device,
                )?;
                y.index_select(&sel, 0)?
            };
            let mut ctx = Ctx::train(std::mem::take(&mut buffers));
            let z = self.model.forward(&p, &x, &mut ctx)?;
            buffers = ctx.buffers;
            let loss = ops::cross_entropy(&head(&p, &z)?, &y)?;
            let g = p.grads(&loss.backward()?)?;
            adam.step(&mut p, &g)?;
        }
        let enc = Encoder {
            model: self.model.clone(),
            params: p.detach(),
            buffers,
        };
        predict(&enc, l2, test)
    }
}

/// Test probabilities of an encoder whose weights hold a linear head `fc.*` (behind an L2
/// normalisation when `l2`).
fn predict(enc: &Encoder<Conv4>, l2: bool, test: &Tensor) -> Result<Vec<Vec<f64>>> {
    let z = enc.features(test, 256)?;
    let z = if l2 {
        scarce_ssl::loss::l2_normalize(&z, 1e-12)?
    } else {
        z
    };
    let p = &enc.params;
    let logits = ops::linear(&z, p.require("fc.weight")?, Some(p.require("fc.bias")?))?;
    rows_f64(&ops::softmax(&logits, 1)?)
}

fn linear_init(rng: &Stream, classes: usize, dim: usize, device: &Device) -> Result<Params> {
    let b = 1.0 / (dim as f64).sqrt();
    let mut p = Params::new();
    p.insert(
        "fc.weight",
        rng.at(0)
            .uniform_tensor((classes, dim), -b, b, DType::F32, device)?,
    );
    p.insert(
        "fc.bias",
        rng.at(1)
            .uniform_tensor(classes, -b, b, DType::F32, device)?,
    );
    Ok(p)
}

/// The probe's weights as a linear layer over all classes (binary: the positive class's
/// row, the other row zero, as the anchor's LP-FT).
fn probe_as_linear(probe: &LogisticRegression, device: &Device) -> Result<Params> {
    let (c, d) = (probe.classes, probe.dim);
    let mut w = vec![0f32; c * d];
    let mut b = vec![0f32; c];
    let rows: Vec<usize> = if c == 2 { vec![1] } else { (0..c).collect() };
    for (r, &class) in rows.iter().enumerate() {
        for j in 0..d {
            w[class * d + j] = probe.coef[r][j] as f32;
        }
        b[class] = probe.intercept[r] as f32;
    }
    let mut p = Params::new();
    p.insert("fc.weight", Tensor::from_vec(w, (c, d), device)?);
    p.insert("fc.bias", Tensor::from_vec(b, c, device)?);
    Ok(p)
}

fn pretrain_cached(
    data: &Data,
    cfg: &Config,
    device: &Device,
    on_epoch: &mut dyn FnMut(scarce_ssl::simclr::EpochReport),
) -> Result<(Encoder<Conv4>, PretrainInfo)> {
    let model = data.conv4()?;
    let n = data.train_labels.len();
    let per_epoch = (n / cfg.simclr.batch_size.max(1)).max(1);
    let simclr = SimClrConfig {
        epochs: cfg.simclr_steps.div_ceil(per_epoch),
        ..cfg.simclr.clone()
    };
    let settings = serde_json::json!({ "simclr": simclr, "sample_shape": data.sample_shape,
        "images": n });
    let file = cfg
        .cache
        .as_ref()
        .map(|dir| dir.join(format!("simclr_conv4_{}.safetensors", data.name)));
    if let Some(f) = file.as_ref().filter(|f| f.is_file()) {
        let (enc, meta) = Encoder::load(model.clone(), f, device)?;
        // Settings compared as values, so a setting added since (at its default) still
        // matches the file.
        let same = serde_json::from_value::<SimClrConfig>(meta.config["simclr"].clone())
            .is_ok_and(|c| c == simclr)
            && meta.config["sample_shape"] == settings["sample_shape"]
            && meta.config["images"] == settings["images"];
        if same {
            let losses: Vec<f64> = meta
                .extra
                .get("losses")
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let cached_wall_s = meta.extra.get("wall_s").and_then(|s| s.parse().ok());
            tracing::info!("SimCLR encoder for {} read from {}", data.name, f.display());
            return Ok((
                enc,
                PretrainInfo {
                    epochs: simclr.epochs,
                    images: data.train_labels.len(),
                    losses,
                    wall_s: 0.0,
                    cached_wall_s,
                },
            ));
        }
        tracing::info!(
            "{} was made with other settings: pretraining again",
            f.display()
        );
    }
    let (mean, std) = data.mean_std;
    let out = scarce_ssl::pretrain(
        model,
        64,
        Unlabelled {
            pixels: &data.train,
            sample_shape: &data.sample_shape,
            mean,
            std,
        },
        &simclr,
        device,
        on_epoch,
    )?;
    if let Some(f) = &file {
        if let Some(dir) = f.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.into(),
                source,
            })?;
        }
        let mut extra = BTreeMap::new();
        extra.insert(
            "losses".into(),
            serde_json::to_string(&out.losses).unwrap_or_default(),
        );
        extra.insert("wall_s".into(), format!("{:.1}", out.wall_s));
        extra.insert("dataset".into(), data.name.clone());
        out.encoder.save(
            f,
            &CheckpointMeta {
                kind: "simclr_conv4".into(),
                config: settings,
                version: String::new(),
                extra,
            },
        )?;
    }
    let info = PretrainInfo {
        epochs: out.losses.len(),
        images: data.train_labels.len(),
        losses: out.losses,
        wall_s: out.wall_s,
        cached_wall_s: None,
    };
    Ok((out.encoder, info))
}

/// Progress callbacks: pretraining epochs, then one call per finished row.
pub trait Progress {
    /// After each SimCLR epoch.
    fn epoch(&mut self, _report: scarce_ssl::simclr::EpochReport) {}
    /// After each (method, budget, draw).
    fn row(&mut self, _row: &Row) {}
}

impl Progress for () {}

/// Every labelled set of the benchmark: `draws[seed][K]` = training indices.
pub fn draws(data: &Data, cfg: &Config) -> Result<BTreeMap<String, BTreeMap<String, Vec<usize>>>> {
    let mut draws = BTreeMap::new();
    for s in 0..cfg.draws as u64 {
        let mut per_k = BTreeMap::new();
        for &b in &cfg.budgets {
            per_k.insert(b.to_string(), data.draw(s, b)?);
        }
        draws.insert(s.to_string(), per_k);
    }
    Ok(draws)
}

/// Runs the benchmark on one data set.
pub fn run(
    data: &Data,
    cfg: &Config,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<Report> {
    if cfg.draws == 0 || cfg.budgets.is_empty() || cfg.methods.is_empty() {
        return Err(Error::param(
            "Config",
            "needs at least one draw, budget and method",
        ));
    }
    // Every draw first, so a budget no class can meet fails before any training.
    let draws = draws(data, cfg)?;
    let test = data.test_tensor(device)?;
    let model = data.conv4()?;
    let ft = FineTune {
        data,
        model: model.clone(),
        device,
    };
    let needs_encoder = cfg.methods.iter().any(|m| m.needs_encoder());
    let (encoder, pretrain) = match &cfg.transfer {
        Some((_, file)) if needs_encoder => {
            let (e, _) = Encoder::load(model.clone(), file, device)?;
            (Some(e), None)
        }
        _ if needs_encoder => {
            let mut cb = |r| progress.epoch(r);
            let (e, i) = pretrain_cached(data, cfg, device, &mut cb)?;
            (Some(e), Some(i))
        }
        _ => (None, None),
    };
    let row_name = |m: Method| match &cfg.transfer {
        Some((label, _)) if m.needs_encoder() => m.name().replace("simclr", label),
        _ => m.name().to_string(),
    };
    // Frozen features of the whole training split and the test split, L2-normalised.
    let frozen = match &encoder {
        Some(e) => {
            let f = |x: &Tensor| -> Result<Vec<Vec<f64>>> {
                Ok(scarce_ssl::probe::l2_normalize_rows(&rows_f64(
                    &e.features(x, 256)?,
                )?))
            };
            Some((f(&data.train_tensor(device)?)?, f(&test)?))
        }
        None => None,
    };
    let mut rows = Vec::new();
    for &budget in &cfg.budgets {
        for s in 0..cfg.draws as u64 {
            let idx = &draws[&s.to_string()][&budget.to_string()];
            let labels: Vec<usize> = idx.iter().map(|&i| data.train_labels[i]).collect();
            for &method in &cfg.methods {
                let started = Instant::now();
                let rng = Stream::new(s, "label-efficiency-init").child(method.name());
                let (mean, std) = data.mean_std;
                let pool = Unlabelled {
                    pixels: &data.train,
                    sample_shape: &data.sample_shape,
                    mean,
                    std,
                };
                let per = data.per();
                let labelled_px: Vec<f32> = idx
                    .iter()
                    .flat_map(|&i| data.train[i * per..(i + 1) * per].iter().copied())
                    .collect();
                let labelled = Labelled {
                    pixels: &labelled_px,
                    sample_shape: &data.sample_shape,
                    labels: &labels,
                    classes: data.classes,
                };
                let fixmatch_cfg = |lr: f64| FixMatchConfig {
                    lr,
                    seed: s,
                    ..cfg.fixmatch.clone()
                };
                let probs = match method {
                    Method::Conv4Scratch => {
                        let mut p = model.init(&rng.child("conv4"), device)?;
                        p.insert_prefixed("", &linear_init(&rng, data.classes, 64, device)?);
                        ft.run(p, model.buffers(device)?, false, idx, cfg.scratch, s, &test)?
                    }
                    Method::FixmatchScratch => {
                        let mut p = model.init(&rng.child("conv4"), device)?;
                        p.insert_prefixed("", &linear_init(&rng, data.classes, 64, device)?);
                        let cfg = fixmatch_cfg(cfg.scratch.1);
                        let enc = fixmatch(
                            model.clone(),
                            p,
                            model.buffers(device)?,
                            false,
                            labelled,
                            pool,
                            &cfg,
                            device,
                        )?;
                        predict(&enc, false, &test)?
                    }
                    _ => {
                        let missing = || Error::param("method", "no encoder was pretrained");
                        let enc = encoder.as_ref().ok_or_else(missing)?;
                        let (train_f, test_f) = frozen.as_ref().ok_or_else(missing)?;
                        let support: Vec<Vec<f64>> =
                            idx.iter().map(|&i| train_f[i].clone()).collect();
                        match method {
                            Method::SimclrProbe => LogisticRegression::fit(
                                &support,
                                &labels,
                                data.classes,
                                cfg.probe_c,
                            )?
                            .predict_proba(test_f)?,
                            Method::SimclrProtonet => {
                                protonet(&support, &labels, data.classes, test_f)?
                            }
                            Method::SimclrSelftrain => {
                                self_train(&support, &labels, data.classes, cfg.probe_c, train_f)?
                                    .predict_proba(test_f)?
                            }
                            Method::SimclrLpft
                            | Method::SimclrFinetune
                            | Method::SimclrSelftrainLpft => {
                                let mut p = enc.params.clone();
                                let (head, l2) = if method != Method::SimclrFinetune {
                                    let probe = if method == Method::SimclrLpft {
                                        LogisticRegression::fit(
                                            &support,
                                            &labels,
                                            data.classes,
                                            cfg.probe_c,
                                        )?
                                    } else {
                                        self_train(
                                            &support,
                                            &labels,
                                            data.classes,
                                            cfg.probe_c,
                                            train_f,
                                        )?
                                    };
                                    (probe_as_linear(&probe, device)?, true)
                                } else {
                                    (linear_init(&rng, data.classes, 64, device)?, false)
                                };
                                p.insert_prefixed("", &head);
                                let (steps, lr) = cfg.finetune;
                                ft.run(p, enc.buffers.clone(), l2, idx, (steps, lr, 0.0), s, &test)?
                            }
                            Method::FixmatchSimclr => {
                                let probe = LogisticRegression::fit(
                                    &support,
                                    &labels,
                                    data.classes,
                                    cfg.probe_c,
                                )?;
                                let mut p = enc.params.clone();
                                p.insert_prefixed("", &probe_as_linear(&probe, device)?);
                                let cfg = fixmatch_cfg(cfg.finetune.1);
                                let out = fixmatch(
                                    model.clone(),
                                    p,
                                    enc.buffers.clone(),
                                    true,
                                    labelled,
                                    pool,
                                    &cfg,
                                    device,
                                )?;
                                predict(&out, true, &test)?
                            }
                            Method::Conv4Scratch | Method::FixmatchScratch => {
                                return Err(Error::param(
                                    "method",
                                    "a scratch method has no encoder",
                                ))
                            }
                        }
                    }
                };
                let (auroc, bacc) = score(&probs, &data.test_labels, data.classes)?;
                let row = Row {
                    dataset: data.name.clone(),
                    method: row_name(method),
                    k: budget.to_string(),
                    draw: s,
                    auroc,
                    balanced_accuracy: bacc,
                    wall_s: started.elapsed().as_secs_f64(),
                };
                progress.row(&row);
                rows.push(row);
            }
        }
    }
    Ok(Report {
        dataset: data.name.clone(),
        rows,
        draws,
        pretrain,
    })
}

/// Miscoverage of the conformal pseudo-label filter, fixed a priori.
const SELF_TRAIN_ALPHA: f64 = 0.1;

/// The probe refitted on the labelled features plus the pool features whose conformal set
/// (leave-one-out calibration on the labelled set) is a single class.
fn self_train(
    support: &[Vec<f64>],
    labels: &[usize],
    classes: usize,
    c: f64,
    pool: &[Vec<f64>],
) -> Result<LogisticRegression> {
    let probe = LogisticRegression::fit(support, labels, classes, c)?;
    // Leave-one-out probability of each labelled image's true class.
    let mut p_true = Vec::with_capacity(support.len());
    for i in 0..support.len() {
        let (xs, ys): (Vec<Vec<f64>>, Vec<usize>) = support
            .iter()
            .zip(labels)
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (x, &y))| (x.clone(), y))
            .unzip();
        let fit = LogisticRegression::fit(&xs, &ys, classes, c)?;
        p_true.push(fit.predict_proba(std::slice::from_ref(&support[i]))?[0][labels[i]]);
    }
    let qhat = scarce_ssl::pseudo::conformal_threshold(&p_true, SELF_TRAIN_ALPHA)?;
    let kept = scarce_ssl::pseudo::singleton_labels(&probe.predict_proba(pool)?, qhat);
    let mut xs = support.to_vec();
    let mut ys = labels.to_vec();
    for (x, l) in pool.iter().zip(kept) {
        if let Some(l) = l {
            xs.push(x.clone());
            ys.push(l);
        }
    }
    tracing::debug!(
        "self-training kept {} of {} pool images",
        xs.len() - support.len(),
        pool.len()
    );
    LogisticRegression::fit(&xs, &ys, classes, c)
}

/// ProtoNet with cosine similarity on L2-normalised features: softmax over
/// `10 · cos(feature, class mean)` (the scale of Chen et al. 2019's cosine classifier).
fn protonet(
    support: &[Vec<f64>],
    labels: &[usize],
    classes: usize,
    query: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>> {
    let d = support[0].len();
    let mut means = vec![vec![0f64; d]; classes];
    let mut counts = vec![0usize; classes];
    for (f, &l) in support.iter().zip(labels) {
        counts[l] += 1;
        for j in 0..d {
            means[l][j] += f[j];
        }
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(Error::param(
            "labels",
            format!("class {c} has no labelled image"),
        ));
    }
    let means = scarce_ssl::probe::l2_normalize_rows(&means);
    Ok(query
        .iter()
        .map(|q| {
            let mut z: Vec<f64> = means
                .iter()
                .map(|m| 10.0 * m.iter().zip(q).map(|(a, b)| a * b).sum::<f64>())
                .collect();
            let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - mx).exp()).sum();
            for v in z.iter_mut() {
                *v = (*v - mx).exp() / s;
            }
            z
        })
        .collect())
}

/// The rest of a table's header row after `| method |`: one column per budget, then the
/// separator row.
fn budget_header(ks: &[String]) -> String {
    let mut h: String = ks.iter().map(|k| format!(" K = {k} |")).collect();
    h.push_str("\n| --- |");
    h.push_str(&" --- |".repeat(ks.len()));
    h.push('\n');
    h
}

/// Mean and 95 % Student-t half-width (n − 1 degrees of freedom; NaN for one value).
pub fn mean_t95(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    (mean, t975(n - 1) * sd / (n as f64).sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (table to 30, then the
/// normal's 1.96 plus the first Cornish–Fisher term).
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if (1..=30).contains(&df) {
        T[df - 1]
    } else {
        let z = 1.959964;
        z + (z * z * z + z) / (4.0 * df as f64)
    }
}

impl Report {
    /// The results of `method` at `k`, in draw order.
    fn cell(&self, method: &str, k: &str) -> Vec<&Row> {
        let mut v: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.method == method && r.k == k)
            .collect();
        v.sort_by_key(|r| r.draw);
        v
    }

    fn methods(&self) -> Vec<String> {
        let mut m: Vec<String> = Vec::new();
        for r in &self.rows {
            if !m.contains(&r.method) {
                m.push(r.method.clone());
            }
        }
        m
    }

    fn budgets(&self) -> Vec<String> {
        let mut k: Vec<String> = Vec::new();
        for r in &self.rows {
            if !k.contains(&r.k) {
                k.push(r.k.clone());
            }
        }
        k
    }

    /// The tables as Markdown: AUROC and balanced accuracy per method and budget, the paired
    /// AUROC difference against Conv4 from scratch, and wall times.
    pub fn markdown(&self) -> String {
        let ks = self.budgets();
        let mut out = format!("### {}\n\nTest AUROC, mean ± 95 % t-interval over draws (balanced accuracy below it)\n\n| method |", self.dataset);
        out.push_str(&budget_header(&ks));
        for m in self.methods() {
            out.push_str(&format!("| {m} |"));
            for k in &ks {
                let c = self.cell(&m, k);
                if c.is_empty() {
                    out.push_str(" not run |");
                    continue;
                }
                let (a, ah) = mean_t95(&c.iter().map(|r| r.auroc).collect::<Vec<_>>());
                let (b, bh) = mean_t95(&c.iter().map(|r| r.balanced_accuracy).collect::<Vec<_>>());
                out.push_str(&format!(
                    " {a:.3} ± {ah:.3}<br>{b:.3} ± {bh:.3} (n = {}) |",
                    c.len()
                ));
            }
            out.push('\n');
        }
        let base = Method::Conv4Scratch.name();
        if self.rows.iter().any(|r| r.method == base) {
            out.push_str(&format!(
                "\nPaired AUROC difference against `{base}` (same draws), mean ± 95 % t-interval\n\n| method |"
            ));
            out.push_str(&budget_header(&ks));
            for m in self.methods().into_iter().filter(|m| m != base) {
                out.push_str(&format!("| {m} |"));
                for k in &ks {
                    let b = self.cell(base, k);
                    let diffs: Vec<f64> = self
                        .cell(&m, k)
                        .iter()
                        .filter_map(|r| {
                            b.iter()
                                .find(|x| x.draw == r.draw)
                                .map(|x| r.auroc - x.auroc)
                        })
                        .collect();
                    if diffs.is_empty() {
                        out.push_str(" not run |");
                        continue;
                    }
                    let (d, h) = mean_t95(&diffs);
                    let mark = if d - h > 0.0 { " (above 0)" } else { "" };
                    out.push_str(&format!(" {d:+.3} ± {h:.3}{mark} |"));
                }
                out.push('\n');
            }
        }
        out.push_str("\nWall time per draw (seconds, mean)\n\n| method |");
        out.push_str(&budget_header(&ks));
        for m in self.methods() {
            out.push_str(&format!("| {m} |"));
            for k in &ks {
                let c = self.cell(&m, k);
                if c.is_empty() {
                    out.push_str(" not run |");
                    continue;
                }
                let t = c.iter().map(|r| r.wall_s).sum::<f64>() / c.len() as f64;
                out.push_str(&format!(" {t:.1} |"));
            }
            out.push('\n');
        }
        if let Some(p) = &self.pretrain {
            let wall = p.cached_wall_s.unwrap_or(p.wall_s);
            out.push_str(&format!(
                "\nSimCLR pretraining: Conv4 on the {} unlabelled training images, {} epochs, {:.0} s; loss {:.3} → {:.3}.\n",
                p.images,
                p.epochs,
                wall,
                p.losses.first().copied().unwrap_or(f64::NAN),
                p.losses.last().copied().unwrap_or(f64::NAN)
            ));
        }
        out
    }

    /// AUROC against labels per class, one line per method with its 95 % interval as bars.
    pub fn chart(&self) -> scarce_eval::plot::Chart {
        use scarce_eval::plot::{Chart, Rgb};
        const COLOURS: [Rgb; 8] = [
            [31, 119, 180],
            [255, 127, 14],
            [44, 160, 44],
            [214, 39, 40],
            [148, 103, 189],
            [140, 86, 75],
            [227, 119, 194],
            [127, 127, 127],
        ];
        let mut chart = Chart::new(format!(
            "{}: test AUROC vs labelled images per class",
            self.dataset
        ))
        .x_axis("labelled images per class (log10)", None)
        .y_axis("test AUROC (mean, 95% t-interval)", None);
        let ks: Vec<(String, f64)> = self
            .budgets()
            .into_iter()
            .filter_map(|k| k.parse::<f64>().ok().map(|v| (k, v.log10())))
            .collect();
        for (i, m) in self.methods().iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut line = Vec::new();
            let mut bars = Vec::new();
            for (k, x) in &ks {
                let c = self.cell(m, k);
                if c.is_empty() {
                    continue;
                }
                let (a, h) = mean_t95(&c.iter().map(|r| r.auroc).collect::<Vec<_>>());
                // Offset the methods a little so their bars do not hide one another.
                let x = x + 0.012 * i as f64 - 0.03;
                line.push((x, a));
                if h.is_finite() {
                    bars.push([(x - 0.004, a - h), (x + 0.004, a + h)]);
                }
            }
            chart = chart.line(m.clone(), line, colour).boxes("", bars, colour);
        }
        chart
    }
}
