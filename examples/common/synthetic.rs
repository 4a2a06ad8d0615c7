//! Shared by the generator examples: data as tensors, the Conv4 classifier that serves as the
//! audits' embedding network and as the K-shot learner, and the audit table.

#![allow(dead_code)] // each example uses a subset of these helpers

use std::fmt::Write as _;

use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::optim::{Adam, AdamConfig, Optimizer};
use scarce::core::{ops, Ctx, DType, Device, Model, Params, Stream, Tensor};
use scarce::episodes::Dataset;
use scarce::gen::audit::{
    frechet_distance, kid, memorisation, precision_recall, rows, Memorisation,
};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// All images of a data set as `[N, 1, 28, 28]` in `[0, 1]`, and the labels.
pub fn tensor(ds: &Dataset, dev: &Device) -> Res<(Tensor, Vec<usize>)> {
    let len = ds.sample_len();
    let mut v = vec![0f32; ds.len() * len];
    for (i, chunk) in v.chunks_mut(len).enumerate() {
        ds.read(i, chunk)?;
    }
    let mut shape = vec![ds.len()];
    shape.extend_from_slice(ds.sample_shape());
    Ok((Tensor::from_vec(v, shape, dev)?, ds.labels().to_vec()))
}

/// A Conv4 (32 channels) with a linear head: the embedding network of the audits and the
/// K-shot classifier.
pub struct Classifier {
    body: Conv4,
}

impl Classifier {
    pub fn new() -> Res<Self> {
        Ok(Classifier {
            body: Conv4::new(Conv4Config {
                hidden: 32,
                ..Default::default()
            })?,
        })
    }

    fn init(&self, seed: u64, dev: &Device) -> Res<(Params, Params)> {
        let rng = Stream::new(seed, "classifier");
        let mut p = self.body.init(&rng, dev)?;
        let b = 1.0 / 32f64.sqrt();
        p.insert(
            "head.weight",
            rng.child("head.w")
                .uniform_tensor((2, 32), -b, b, DType::F32, dev)?,
        );
        p.insert(
            "head.bias",
            rng.child("head.b")
                .uniform_tensor(2, -b, b, DType::F32, dev)?,
        );
        Ok((p, self.body.buffers(dev)?))
    }

    fn features(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Res<Tensor> {
        Ok(self.body.forward(p, x, ctx)?)
    }

    fn logits(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Res<Tensor> {
        let f = self.features(p, x, ctx)?;
        Ok(ops::linear(
            &f,
            p.require("head.weight")?,
            Some(p.require("head.bias")?),
        )?)
    }

    /// Adam on cross-entropy, `steps` batches drawn with replacement; returns weights and
    /// the running batch-norm statistics.
    pub fn train(
        &self,
        x: &Tensor,
        y: &[usize],
        steps: usize,
        batch: usize,
        seed: u64,
    ) -> Res<(Params, Params)> {
        let dev = x.device();
        let (p, buffers) = self.init(seed, dev)?;
        let mut p = p.to_vars()?;
        let mut ctx = Ctx::train(buffers);
        let mut opt = Adam::new(AdamConfig {
            lr: 1e-3,
            ..Default::default()
        })?;
        let rng = Stream::new(seed, "classifier batches");
        let n = y.len() as u64;
        for s in 0..steps {
            let idx: Vec<u32> = (0..batch as u64)
                .map(|i| rng.at(s as u64).below(i, n) as u32)
                .collect();
            let it = Tensor::from_vec(idx.clone(), batch, dev)?;
            let xb = x.index_select(&it, 0)?;
            let yb = Tensor::from_vec(
                idx.iter()
                    .map(|&i| y[i as usize] as u32)
                    .collect::<Vec<_>>(),
                batch,
                dev,
            )?;
            let loss = ops::cross_entropy(&self.logits(&p, &xb, &mut ctx)?, &yb)?;
            let g = p.grads(&loss.backward()?)?;
            opt.step(&mut p, &g)?;
        }
        Ok((p.detach(), ctx.buffers))
    }

    pub fn accuracy(&self, p: &Params, buffers: &Params, x: &Tensor, y: &[usize]) -> Res<f64> {
        let mut ctx = Ctx::eval(buffers.clone());
        let mut right = 0;
        for start in (0..y.len()).step_by(256) {
            let len = 256.min(y.len() - start);
            let pred = self
                .logits(p, &x.narrow(0, start, len)?, &mut ctx)?
                .argmax(1)?
                .to_vec1::<u32>()?;
            right += pred
                .iter()
                .zip(&y[start..start + len])
                .filter(|(a, b)| **a as usize == **b)
                .count();
        }
        Ok(right as f64 / y.len() as f64)
    }

    pub fn embed(&self, p: &Params, buffers: &Params, x: &Tensor) -> Res<Vec<Vec<f64>>> {
        let mut ctx = Ctx::eval(buffers.clone());
        let mut out = Vec::new();
        for start in (0..x.dim(0)?).step_by(256) {
            let len = 256.min(x.dim(0)? - start);
            out.extend(rows(&self.features(
                p,
                &x.narrow(0, start, len)?,
                &mut ctx,
            )?)?);
        }
        Ok(out)
    }
}

/// Fréchet distance, KID and precision / recall of `synth01` (images in `[0, 1]`) against
/// the test split in the classifier's feature space, beside the floor of as many real
/// training images; and the memorisation audit in pixel space. Returns markdown.
pub fn audit_tables(
    clf: &Classifier,
    (pe, be): (&Params, &Params),
    train01: &Tensor,
    test01: &Tensor,
    synth01: &Tensor,
) -> Res<String> {
    let n = synth01.dim(0)?;
    let dev = train01.device();
    let f_test = clf.embed(pe, be, test01)?;
    let f_synth = clf.embed(pe, be, synth01)?;
    let idx: Vec<u32> = Stream::new(2, "floor")
        .permutation(train01.dim(0)?)
        .into_iter()
        .take(n)
        .map(|i| i as u32)
        .collect();
    let real = train01.index_select(&Tensor::from_vec(idx, n, dev)?, 0)?;
    let f_real = clf.embed(pe, be, &real)?;
    let kid_rng = Stream::new(3, "kid");
    let subset = 300.min(n).min(f_test.len());
    let mut md = String::new();
    writeln!(md, "| vs real test split | Fréchet distance | KID | precision | recall |\n|---|---|---|---|---|")?;
    for (name, f) in [
        (format!("synthetic ({n} images)"), &f_synth),
        ("real train (floor, same count)".to_string(), &f_real),
    ] {
        let fd = frechet_distance(f, &f_test)?;
        let (k, ksd) = kid(&f_test, f, 50, subset, &kid_rng)?;
        let (p, r) = precision_recall(&f_test, f, 3)?;
        writeln!(
            md,
            "| {name} | {fd:.3} | {k:.3} ± {ksd:.3} | {p:.3} | {r:.3} |"
        )?;
    }
    let train_rows = rows(train01)?;
    let mem = memorisation(&rows(synth01)?, &train_rows, 0.01)?;
    let reference = memorisation(&rows(test01)?, &train_rows, 0.01)?;
    let median = Memorisation::median;
    writeln!(
        md,
        "\nMemorisation (pixel space, nearest training image):\n"
    )?;
    writeln!(md, "| set | median distance to nearest training image | flagged (< 1% quantile of real-to-real, {:.3}) |\n|---|---|---|", mem.threshold)?;
    writeln!(
        md,
        "| synthetic | {:.3} | {} of {n} ({:.1}%) |",
        median(&mem.nearest_distance),
        mem.flagged.len(),
        100.0 * mem.flagged_fraction()
    )?;
    writeln!(
        md,
        "| real test (reference) | {:.3} | {} of {} ({:.1}%) |",
        median(&reference.nearest_distance),
        reference.flagged.len(),
        reference.nearest_distance.len(),
        100.0 * reference.flagged_fraction()
    )?;
    writeln!(
        md,
        "| real train to other train | {:.3} | — |",
        median(&mem.real_distance)
    )?;
    Ok(md)
}

/// `per_class` samples of every class from a trained generator, in `[0, 1]`, with one grid
/// per class (`samples_{name}.png` in `out`, up to 64 images).
pub fn sample_per_class(
    model: &dyn scarce::gen::Generative,
    p: &Params,
    per_class: usize,
    size: &[usize],
    names: &[&str],
    out: &std::path::Path,
) -> Res<(Tensor, Vec<usize>)> {
    let dev = Device::Cpu;
    let mut parts = Vec::new();
    let mut labels = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let x = model.sample(
            p,
            per_class,
            size,
            Some(&vec![c; per_class]),
            &Stream::new(1, "samples").at(c as u64),
            &dev,
        )?;
        scarce::gen::grid::save_grid(
            &x.narrow(0, 0, 64.min(per_class))?,
            8,
            &out.join(format!("samples_{name}.png")),
        )?;
        parts.push(((x + 1.0)? * 0.5)?);
        labels.extend(std::iter::repeat_n(c, per_class));
    }
    Ok((Tensor::cat(&parts, 0)?, labels))
}

/// Images in `[0, 1]` and their labels.
pub type Labelled = (Tensor, Vec<usize>);

/// The train and test splits of a bundled MedMNIST file as tensors in `[0, 1]`.
pub fn medmnist(file: &str) -> Res<(Labelled, Labelled)> {
    use scarce::episodes::medmnist::{load_medmnist, Split};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/medmnist")
        .join(file);
    let dev = Device::Cpu;
    Ok((
        tensor(&load_medmnist(&path, Split::Train)?, &dev)?,
        tensor(&load_medmnist(&path, Split::Test)?, &dev)?,
    ))
}

/// `--name value` options of an example, with their defaults, parsed by clap: `--help` lists
/// them, and an unknown option or a missing value exits with clap's message.
pub fn options(
    about: &'static str,
    defaults: &[(&'static str, &'static str)],
) -> Res<std::collections::BTreeMap<String, String>> {
    let command = defaults.iter().fold(
        clap::Command::new(env!("CARGO_CRATE_NAME")).about(about),
        |c, &(name, default)| c.arg(clap::Arg::new(name).long(name).default_value(default)),
    );
    let matches = command.get_matches();
    Ok(defaults
        .iter()
        .map(|&(name, _)| {
            let v = matches.get_one::<String>(name).cloned().unwrap_or_default();
            (name.to_string(), v)
        })
        .collect())
}
