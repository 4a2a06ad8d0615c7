//! FixMatch training (Sohn et al. 2020): supervised cross-entropy on weakly augmented
//! labelled images plus, on each unlabelled batch, cross-entropy of a strong view against the
//! confident pseudo-labels of a weak view ([`crate::loss::fixmatch_unlabelled`]). Any
//! [`Model`] with a linear head; the labelled, weak and strong images go through the network
//! as one batch, as the reference code does, so batch norm sees them together.

use candle_core::{Device, Tensor};
use scarce_augment::views::{views, ViewConfig};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::rng::Stream;
use scarce_core::{ops, Ctx, Error, Model, Params, Result};

use crate::encoder::Encoder;
use crate::loss::{fixmatch_unlabelled, l2_normalize};
use crate::simclr::Unlabelled;

/// Labelled images in `[0, 1]`, contiguous `[N, *sample_shape]`.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    /// The pixels.
    pub pixels: &'a [f32],
    /// `[C, H, W]` or `[C, D, H, W]`.
    pub sample_shape: &'a [usize],
    /// One label per image, in `0..classes`.
    pub labels: &'a [usize],
    /// Number of classes.
    pub classes: usize,
}

/// FixMatch's settings. The defaults are the reference code's where they carry over to a
/// short CPU schedule (threshold 0.95, λ_u = 1, temperature 1) and Adam where its 2^20 SGD
/// steps do not.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FixMatchConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Confidence a pseudo-label needs.
    pub threshold: f64,
    /// Weight of the unlabelled term.
    pub lambda_u: f64,
    /// Unlabelled images per step.
    pub unlabelled_batch: usize,
    /// At most this many labelled images per step (all of them when fewer).
    pub labelled_batch: usize,
    /// The weak view (labelled images and pseudo-labels).
    pub weak: ViewConfig,
    /// The strong view (what must agree with the pseudo-label).
    pub strong: ViewConfig,
    /// Seed of the batches and views.
    pub seed: u64,
}

impl Default for FixMatchConfig {
    fn default() -> Self {
        FixMatchConfig {
            steps: 300,
            lr: 1e-4,
            threshold: 0.95,
            lambda_u: 1.0,
            unlabelled_batch: 128,
            labelled_batch: 256,
            weak: ViewConfig::supervised(),
            strong: ViewConfig::strong(),
            seed: 0,
        }
    }
}

/// The images of `pixels` at `ids` (contiguous `per` values each), one view each.
fn view_batch(
    pixels: &[f32],
    shape: &[usize],
    ids: &[usize],
    view: u64,
    seed: u64,
    cfg: &ViewConfig,
) -> Result<Vec<f32>> {
    let per: usize = shape.iter().product();
    let mut src = Vec::with_capacity(ids.len() * per);
    for &i in ids {
        src.extend_from_slice(&pixels[i * per..(i + 1) * per]);
    }
    let keys: Vec<u64> = ids.iter().map(|&i| i as u64).collect();
    views(&src, shape, &keys, view, seed, cfg).map_err(|e| Error::param("views", e.to_string()))
}

/// Trains `model` with weights `params` (the encoder's plus `fc.weight` `[classes, D]` and
/// `fc.bias`) and running statistics `buffers` by FixMatch; `l2_head` puts an L2
/// normalisation between the features and the head (as after a linear probe). Returns the
/// trained weights (head included) and statistics. Pixels are normalised with the
/// unlabelled set's mean and standard deviation.
#[allow(clippy::too_many_arguments)]
pub fn fixmatch<M: Model>(
    model: M,
    params: Params,
    buffers: Params,
    l2_head: bool,
    labelled: Labelled<'_>,
    unlabelled: Unlabelled<'_>,
    cfg: &FixMatchConfig,
    device: &Device,
) -> Result<Encoder<M>> {
    if labelled.sample_shape != unlabelled.sample_shape {
        return Err(Error::param(
            "unlabelled",
            format!(
                "unlabelled images are {:?} (channels, size) but the labelled images are {:?}",
                unlabelled.sample_shape, labelled.sample_shape
            ),
        ));
    }
    let per: usize = labelled.sample_shape.iter().product();
    let n_l = labelled.labels.len();
    if n_l == 0 || labelled.pixels.len() != n_l * per {
        return Err(Error::param(
            "labelled",
            format!(
                "{} values for {n_l} labels of shape {:?}",
                labelled.pixels.len(),
                labelled.sample_shape
            ),
        ));
    }
    if let Some(&l) = labelled.labels.iter().find(|&&l| l >= labelled.classes) {
        return Err(Error::param(
            "labelled.labels",
            format!("label {l} >= classes = {}", labelled.classes),
        ));
    }
    let n_u = unlabelled.len();
    if n_u < cfg.unlabelled_batch
        || cfg.unlabelled_batch == 0
        || unlabelled.pixels.len() != n_u * per
    {
        return Err(Error::param(
            "FixMatchConfig.unlabelled_batch",
            format!("{} with {n_u} unlabelled images", cfg.unlabelled_batch),
        ));
    }
    let (mean, std) = (unlabelled.mean, unlabelled.std);
    let shape_of = |n: usize| {
        let mut s = vec![n];
        s.extend_from_slice(labelled.sample_shape);
        s
    };
    let mut p = params.to_vars()?;
    let mut buffers = buffers;
    let mut adam = Adam::new(AdamConfig {
        lr: cfg.lr,
        ..Default::default()
    })?;
    let rng = Stream::new(cfg.seed, "fixmatch");
    let head = |p: &Params, z: &Tensor| -> Result<Tensor> {
        let z = if l2_head {
            l2_normalize(z, 1e-12)?
        } else {
            z.clone()
        };
        ops::linear(&z, p.require("fc.weight")?, Some(p.require("fc.bias")?))
    };
    for step in 0..cfg.steps {
        let s = step as u64;
        let l_ids: Vec<usize> = if n_l <= cfg.labelled_batch {
            (0..n_l).collect()
        } else {
            rng.child("labelled").at(s).permutation(n_l)[..cfg.labelled_batch].to_vec()
        };
        let u_ids = rng.child("unlabelled").at(s).permutation(n_u)[..cfg.unlabelled_batch].to_vec();
        let seed = cfg.seed ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let xl = view_batch(
            labelled.pixels,
            labelled.sample_shape,
            &l_ids,
            0,
            seed,
            &cfg.weak,
        )?;
        let uw = view_batch(
            unlabelled.pixels,
            unlabelled.sample_shape,
            &u_ids,
            1,
            seed,
            &cfg.weak,
        )?;
        let us = view_batch(
            unlabelled.pixels,
            unlabelled.sample_shape,
            &u_ids,
            2,
            seed,
            &cfg.strong,
        )?;
        let nb = l_ids.len() + 2 * u_ids.len();
        let all: Vec<f32> = xl.into_iter().chain(uw).chain(us).collect();
        let x = Tensor::from_vec(all, shape_of(nb), device)?.affine(1.0 / std, -mean / std)?;
        let mut ctx = Ctx::train(std::mem::take(&mut buffers));
        let z = model.forward(&p, &x, &mut ctx)?;
        buffers = ctx.buffers;
        let logits = head(&p, &z)?;
        let nl = l_ids.len();
        let nu = u_ids.len();
        let y = Tensor::new(
            l_ids
                .iter()
                .map(|&i| labelled.labels[i] as u32)
                .collect::<Vec<_>>(),
            device,
        )?;
        let sup = ops::cross_entropy(&logits.narrow(0, 0, nl)?, &y)?;
        let unsup = fixmatch_unlabelled(
            &logits.narrow(0, nl, nu)?,
            &logits.narrow(0, nl + nu, nu)?,
            cfg.threshold,
            1.0,
        )?;
        let loss = (sup + (unsup.loss * cfg.lambda_u)?)?;
        let g = p.grads(&loss.backward()?)?;
        adam.step(&mut p, &g)?;
    }
    Ok(Encoder {
        model,
        params: p.detach(),
        buffers,
    })
}
