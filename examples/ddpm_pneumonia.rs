//! Synthetic chest X-rays: a class-conditional DDPM on PneumoniaMNIST (28×28), audited, and
//! put to work in a K-shot classifier.
//!
//! 1. Trains a UNet denoiser (channels 16-32-32, attention at 7×7, classifier-free guidance
//!    by label dropout 0.1) on the 4,708 training images, with EMA weights and a checkpoint
//!    every 500 steps in the output folder: run it again after an interruption and it
//!    resumes.
//! 2. Samples `--per-class` images per class with DDIM (guidance w = 2) and writes one grid
//!    per class (`samples_normal.png`, `samples_pneumonia.png`).
//! 3. Audits them in the feature space of a Conv4 classifier trained here on the training
//!    split: Fréchet distance and KID of samples vs the test split, beside the floor of real
//!    train vs real test; precision / recall; and the memorisation audit in pixel space
//!    (distance of each sample to its nearest training image, against real-to-real nearest
//!    distances).
//! 4. K-shot (K = 5, 10 real images per class) classification, over `--trials` draws: a
//!    Conv4 trained on the K real images alone, and on the same K plus the synthetic ones.
//!    The generator saw all labelled training images, so this measures whether that
//!    knowledge reaches a classifier through synthetic data — the situation of a generator
//!    trained elsewhere (another site, a public pool) and shared instead of the images.
//!
//! Results go to `results.md` in the output folder (default `target/ddpm_pneumonia`).
//!
//!     cargo run --release --example ddpm_pneumonia [-- --steps 2400 --per-class 200 --trials 10 --out DIR]
//!
//! Data: `data/medmnist/pneumoniamnist.safetensors` (bundled, CC BY 4.0).

#[path = "common/cli.rs"]
mod cli;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use scarce::core::{Device, Stream, Tensor};
use scarce::eval::mean_ci95;
use scarce::gen::grid::save_grid;
use scarce::gen::train::OutDir;
use scarce::gen::{train, Diffusion, DiffusionConfig, ImageSet, Sampling, TrainConfig, UNetConfig};

#[path = "common/synthetic.rs"]
mod synthetic;
use synthetic::{audit_tables, medmnist, options, Classifier, Res};

/// K real images per class drawn for `trial`.
fn k_shot(labels: &[usize], k: usize, trial: u64) -> Vec<usize> {
    let perm = Stream::new(trial, "k-shot").permutation(labels.len());
    (0..2)
        .flat_map(|c| {
            perm.iter()
                .copied()
                .filter(move |&i| labels[i] == c)
                .take(k)
        })
        .collect()
}

fn run() -> Res<()> {
    let o = options(
        "Class-conditional DDPM on PneumoniaMNIST: audits, and K-shot with / without synthetic images",
        &[
        ("steps", "2400"),
        ("per-class", "200"),
        ("trials", "10"),
        ("out", "target/ddpm_pneumonia"),
    ],
    )?;
    let (steps, per_class, trials): (usize, usize, usize) = (
        o["steps"].parse()?,
        o["per-class"].parse()?,
        o["trials"].parse()?,
    );
    let out = PathBuf::from(&o["out"]);
    let dev = Device::Cpu;
    let ((train01, ytr), (test01, yte)) = medmnist("pneumoniamnist.safetensors")?;
    std::fs::create_dir_all(&out)?;
    let names = ["normal", "pneumonia"];

    // 1. The generator.
    let model = Diffusion::new(DiffusionConfig {
        unet: UNetConfig {
            channels: vec![16, 32, 32],
            attention: vec![false, false, true],
            head_channels: 32,
            groups: 8,
            num_classes: Some(2),
            ..Default::default()
        },
        p_uncond: 0.1,
        ..Default::default()
    })?;
    let cfg = TrainConfig {
        steps,
        batch_size: 32,
        lr: 1e-3,
        ema_decay: 0.995,
        checkpoint_every: 500,
        sample_every: 0,
        seed: 0,
        max_loss: None,
    };
    let data = ImageSet::new(((&train01 * 2.0)? - 1.0)?, Some(ytr.clone()))?;
    let t0 = Instant::now();
    let bar = cli::bar(cfg.steps, "training");
    let trained = train(&model, &data, &cfg, Some(&OutDir(out.clone())), |p| {
        bar.set_position(p.step as u64);
        if p.step % 50 == 0 {
            bar.set_message(format!("loss {:.4}", p.loss()));
        }
    })?;
    bar.finish();
    let train_s = t0.elapsed().as_secs_f64();
    let tail = &trained.losses[trained.losses.len().saturating_sub(200)..];
    let final_loss = tail.iter().sum::<f64>() / tail.len().max(1) as f64;

    // 2. Samples, one grid per class.
    let t1 = Instant::now();
    let mut synth = Vec::new();
    let mut synth_y = Vec::new();
    let bar = cli::bar(names.len() * per_class.div_ceil(50), "sampling");
    for (c, name) in names.iter().enumerate() {
        let mut parts = Vec::new();
        for chunk in 0..per_class.div_ceil(50) {
            bar.inc(1);
            let n = 50.min(per_class - chunk * 50);
            let x = model.sample(
                &trained.ema,
                n,
                &[28, 28],
                Some(&vec![c; n]),
                Some(2.0),
                Sampling::Ddim {
                    steps: 50,
                    eta: 0.0,
                },
                &Stream::new(1, "samples").at(c as u64).at(chunk as u64),
                &dev,
            )?;
            parts.push(x);
        }
        let x = Tensor::cat(&parts, 0)?;
        save_grid(
            &x.narrow(0, 0, 64.min(per_class))?,
            8,
            &out.join(format!("samples_{name}.png")),
        )?;
        synth.push(((x + 1.0)? * 0.5)?);
        synth_y.extend(std::iter::repeat_n(c, per_class));
    }
    bar.finish();
    let synth01 = Tensor::cat(&synth, 0)?;
    let sample_s = t1.elapsed().as_secs_f64();

    // 3. Audits in the feature space of a classifier trained on the training split.
    let clf = Classifier::new()?;
    let (pe, be) = clf.train(&train01, &ytr, 600, 64, 7)?;
    let emb_acc = clf.accuracy(&pe, &be, &test01, &yte)?;
    let audits = audit_tables(&clf, (&pe, &be), &train01, &test01, &synth01)?;

    // 4. K-shot with and without the synthetic images.
    let mut kshot = String::new();
    let bar = cli::bar(2 * trials, "K-shot draws");
    for k in [5usize, 10] {
        let (mut plain, mut mixed) = (Vec::new(), Vec::new());
        for trial in 0..trials as u64 {
            bar.inc(1);
            let idx: Vec<u32> = k_shot(&ytr, k, trial)
                .into_iter()
                .map(|i| i as u32)
                .collect();
            let y: Vec<usize> = idx.iter().map(|&i| ytr[i as usize]).collect();
            let x = train01.index_select(&Tensor::from_vec(idx.clone(), idx.len(), &dev)?, 0)?;
            let (p, b) = clf.train(&x, &y, 150, 32, 100 + trial)?;
            plain.push(100.0 * clf.accuracy(&p, &b, &test01, &yte)?);
            let xm = Tensor::cat(&[&x, &synth01], 0)?;
            let ym: Vec<usize> = y.iter().chain(&synth_y).copied().collect();
            let (p, b) = clf.train(&xm, &ym, 150, 32, 100 + trial)?;
            mixed.push(100.0 * clf.accuracy(&p, &b, &test01, &yte)?);
        }
        let (pm, mm) = (mean_ci95(&plain)?, mean_ci95(&mixed)?);
        writeln!(
            kshot,
            "| {k} | {:.1} ± {:.1} | {:.1} ± {:.1} |",
            pm.mean, pm.ci95, mm.mean, mm.ci95
        )?;
        bar.println(format!(
            "K = {k}: real only {:.1} ± {:.1} %, real + synthetic {:.1} ± {:.1} %",
            pm.mean, pm.ci95, mm.mean, mm.ci95
        ));
    }
    bar.finish();

    let mut md = String::new();
    writeln!(md, "# ddpm_pneumonia results\n")?;
    writeln!(md, "Generator: class-conditional DDPM, UNet 16-32-32 ({} parameters), linear β 1e-4..0.02, T = 1000, ε-prediction; {} steps of batch 32 (this run: {} from step {}, {:.0} s); loss over the last 200 steps {final_loss:.4}.", trained.ema.elem_count(), steps, trained.losses.len(), trained.resumed_from, train_s)?;
    writeln!(md, "Samples: {} per class, DDIM 50 steps, η = 0, guidance w = 2 ({:.0} s). Grids: samples_normal.png, samples_pneumonia.png.\n", per_class, sample_s)?;
    writeln!(
        md,
        "## Audits (features of a Conv4 trained on the training split; its test accuracy {:.1}%)\n",
        100.0 * emb_acc
    )?;
    md.push_str(&audits);
    md.push('\n');
    writeln!(md, "## K-shot classification (Conv4, 150 Adam steps, test accuracy %, mean ± 95% CI over {} draws)\n", trials)?;
    writeln!(
        md,
        "| K real per class | real only | real + {} synthetic per class |\n|---|---|---|",
        per_class
    )?;
    md.push_str(&kshot);
    std::fs::write(out.join("results.md"), &md)?;
    println!("{md}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run())
}
