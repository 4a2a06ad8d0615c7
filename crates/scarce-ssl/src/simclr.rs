//! SimCLR pretraining (Chen et al. 2020) of any [`Model`] on unlabelled images: two views of
//! each image (scarce-augment's [`ViewConfig`]), encoder → projection head → NT-Xent, Adam.
//! The defaults are the PyTorch + lightly anchor's (`shared/bench/label_efficiency.py`):
//! batch 256, Adam 1e-3, temperature 0.5, head width 256 → 128 for a narrow encoder.

use std::time::Instant;

use candle_core::{Device, Tensor};
use scarce_augment::views::{views, ViewConfig};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::rng::Stream;
use scarce_core::{Ctx, Error, Model, Params, Result};

use crate::encoder::Encoder;
use crate::head::ProjectionHead;
use crate::loss::nt_xent;

/// SimCLR's recipe.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SimClrConfig {
    /// Passes over the unlabelled images.
    pub epochs: usize,
    /// Images per step (each gives two views); the last partial batch is dropped.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's L2 weight decay.
    pub weight_decay: f64,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Projection head hidden width.
    pub head_hidden: usize,
    /// Projection head output width.
    pub head_out: usize,
    /// How the two views are drawn.
    pub views: ViewConfig,
    /// Seed of the initial weights, the shuffles and the views.
    pub seed: u64,
}

impl Default for SimClrConfig {
    fn default() -> Self {
        SimClrConfig {
            epochs: 100,
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 0.0,
            temperature: 0.5,
            head_hidden: 256,
            head_out: 128,
            views: ViewConfig::default(),
            seed: 0,
        }
    }
}

/// Unlabelled images in `[0, 1]`, contiguous `[N, *sample_shape]`, with the per-channel-
/// agnostic scalar normalisation applied to every view before the encoder.
#[derive(Debug, Clone, Copy)]
pub struct Unlabelled<'a> {
    /// The pixels.
    pub pixels: &'a [f32],
    /// `[C, H, W]` or `[C, D, H, W]`.
    pub sample_shape: &'a [usize],
    /// Subtracted from every view.
    pub mean: f64,
    /// Divides every view.
    pub std: f64,
}

impl Unlabelled<'_> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.sample_shape.iter().product::<usize>().max(1)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one epoch did, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean NT-Xent over the epoch's steps.
    pub loss: f64,
    /// Seconds since the start.
    pub elapsed_s: f64,
}

/// A pretrained encoder and its training history.
#[derive(Debug, Clone)]
pub struct Pretrained<M> {
    /// The encoder (the projection head is dropped).
    pub encoder: Encoder<M>,
    /// Mean loss per epoch.
    pub losses: Vec<f64>,
    /// Wall time in seconds.
    pub wall_s: f64,
}

/// One SimCLR learner mid-training: encoder and head weights, their running statistics and
/// the optimiser. [`pretrain`] drives it over a data set; [`SimClr::step`] is one update
/// (what the benchmarks time).
#[derive(Debug)]
pub struct SimClr<M> {
    model: M,
    head: ProjectionHead,
    params: Params,
    enc_buffers: Params,
    head_buffers: Params,
    adam: Adam,
    temperature: f64,
}

impl<M: Model> SimClr<M> {
    /// Fresh weights for `model` (output `[B, feature_dim]`) and the projection head, drawn
    /// from `cfg.seed`.
    pub fn new(model: M, feature_dim: usize, cfg: &SimClrConfig, device: &Device) -> Result<Self> {
        let head = ProjectionHead::new(feature_dim, cfg.head_hidden, cfg.head_out)?;
        let root = Stream::new(cfg.seed, "simclr");
        let mut p = model.init(&root.child("encoder"), device)?;
        p.insert_prefixed("head.", &head.init(&root.child("head"), device)?);
        Ok(SimClr {
            enc_buffers: model.buffers(device)?,
            head_buffers: head.buffers(device)?,
            params: p.to_vars()?,
            model,
            head,
            adam: Adam::new(AdamConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            })?,
            temperature: cfg.temperature,
        })
    }

    fn project(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut ctx = Ctx::train(std::mem::take(&mut self.enc_buffers));
        let h = self.model.forward(&self.params, x, &mut ctx)?;
        self.enc_buffers = ctx.buffers;
        let mut hctx = Ctx::train(std::mem::take(&mut self.head_buffers));
        let z = self
            .head
            .forward(&self.params.strip_prefix("head."), &h, &mut hctx)?;
        self.head_buffers = hctx.buffers;
        Ok(z)
    }

    /// One update on two normalised views of the same images; returns the NT-Xent loss.
    pub fn step(&mut self, view0: &Tensor, view1: &Tensor) -> Result<f64> {
        if view0.dims() != view1.dims() {
            return Err(Error::shape(
                "view1",
                format!("{:?}", view0.dims()),
                view1.dims(),
            ));
        }
        let z0 = self.project(view0)?;
        let z1 = self.project(view1)?;
        let loss = nt_xent(&z0, &z1, self.temperature)?;
        let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let g = self.params.grads(&loss.backward()?)?;
        self.adam.step(&mut self.params, &g)?;
        Ok(value)
    }

    /// The encoder as it stands (the head left behind).
    pub fn encoder(&self) -> Result<Encoder<M>>
    where
        M: Clone,
    {
        let mut params = Params::new();
        for (name, t) in self.params.iter().filter(|(n, _)| !n.starts_with("head.")) {
            params.insert(name.to_string(), t.detach());
        }
        Ok(Encoder {
            model: self.model.clone(),
            params,
            buffers: self.enc_buffers.clone(),
        })
    }
}

/// Pretrains `model` (whose output is `[B, feature_dim]`) with SimCLR on `data`, calling
/// `on_epoch` after every epoch.
pub fn pretrain<M: Model + Clone>(
    model: M,
    feature_dim: usize,
    data: Unlabelled<'_>,
    cfg: &SimClrConfig,
    device: &Device,
    mut on_epoch: impl FnMut(EpochReport),
) -> Result<Pretrained<M>> {
    let n = data.len();
    if cfg.batch_size < 2 || n < cfg.batch_size {
        return Err(Error::param(
            "SimClrConfig.batch_size",
            format!(
                "{} with {n} unlabelled images: need 2 <= batch_size <= images",
                cfg.batch_size
            ),
        ));
    }
    if data.std.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(Error::param("Unlabelled.std", "must be > 0"));
    }
    let per: usize = data.sample_shape.iter().product();
    if per == 0 || data.pixels.len() != n * per {
        return Err(Error::param(
            "Unlabelled.pixels",
            format!(
                "{} values are not a whole number of {:?} images",
                data.pixels.len(),
                data.sample_shape
            ),
        ));
    }
    let mut learner = SimClr::new(model, feature_dim, cfg, device)?;
    let root = Stream::new(cfg.seed, "simclr");
    let started = Instant::now();
    let mut losses = Vec::with_capacity(cfg.epochs);
    let mut shape = vec![cfg.batch_size];
    shape.extend_from_slice(data.sample_shape);
    let mut batch = vec![0f32; cfg.batch_size * per];
    for epoch in 0..cfg.epochs {
        let order = root.child("shuffle").at(epoch as u64).permutation(n);
        let mut total = 0.0;
        let steps = n / cfg.batch_size;
        for step in 0..steps {
            let ids: Vec<u64> = order[step * cfg.batch_size..(step + 1) * cfg.batch_size]
                .iter()
                .map(|&i| i as u64)
                .collect();
            for (k, &i) in ids.iter().enumerate() {
                let i = i as usize;
                batch[k * per..(k + 1) * per].copy_from_slice(&data.pixels[i * per..(i + 1) * per]);
            }
            // Views keyed by (epoch, image): a new pair every epoch.
            let view_seed = cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut x = Vec::with_capacity(2);
            for v in 0..2 {
                let pix = views(&batch, data.sample_shape, &ids, v, view_seed, &cfg.views)
                    .map_err(|e| Error::param("SimClrConfig.views", e.to_string()))?;
                x.push(
                    Tensor::from_vec(pix, shape.as_slice(), device)?
                        .affine(1.0 / data.std, -data.mean / data.std)?,
                );
            }
            total += learner.step(&x[0], &x[1])?;
        }
        let mean = total / steps as f64;
        if !mean.is_finite() {
            return Err(Error::param(
                "SimClrConfig.lr",
                format!("the loss diverged at epoch {epoch}"),
            ));
        }
        losses.push(mean);
        on_epoch(EpochReport {
            epoch,
            loss: mean,
            elapsed_s: started.elapsed().as_secs_f64(),
        });
    }
    Ok(Pretrained {
        encoder: learner.encoder()?,
        losses,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
