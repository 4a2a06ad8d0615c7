//! Few-shot classification of medical images with an embedding that never saw them:
//! a Conv4 ProtoNet trained on Omniglot (the quickstart's checkpoint) classifies
//! BreastMNIST and PneumoniaMNIST test images from K = 1, 5, 10 labelled training images
//! per class, beside the same Conv4 (plus a linear layer) trained from scratch on the same
//! K images. AUROC on the whole test split, mean ± 95% CI over `--sets` (default 100)
//! sampled support sets.
//!
//!     cargo run --release --example quickstart            # first, for the checkpoint
//!     cargo run --release --example medical_fewshot [-- --backbone FILE --sets N --out DIR]
//!
//! Data: `data/medmnist/` (bundled, CC BY 4.0). Writes `results.md` and `results.json` under
//! the output folder (default `target/medical_fewshot`).

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::time::Instant;

use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::optim::{Adam, AdamConfig, Optimizer};
use scarce::core::{ops, Ctx, DType, Device, Model, Params, Stream, Tensor};
use scarce::episodes::medmnist::{load_medmnist, Split};
use scarce::episodes::{Dataset, EpisodeConfig, EpisodeSampler};
use scarce::metric::trainer::{episodes_err, load_learner};
use scarce::metric::{FewShotClassifier, Learner, ProtoNet};

/// Every sample of `ds` as one `[N, C, H, W]` tensor.
fn images(ds: &Dataset, dev: &Device) -> scarce::core::Result<Tensor> {
    let per = ds.sample_len();
    let mut v = vec![0f32; ds.len() * per];
    for (i, chunk) in v.chunks_mut(per).enumerate() {
        ds.read(i, chunk).map_err(episodes_err)?;
    }
    let mut dims = vec![ds.len()];
    dims.extend_from_slice(ds.sample_shape());
    Ok(Tensor::from_vec(v, dims, dev)?)
}

/// Embeddings in eval mode, in chunks of 256 images.
fn embed(model: &Conv4, l: &Learner, x: &Tensor) -> scarce::core::Result<Tensor> {
    let mut out = Vec::new();
    let n = x.dim(0)?;
    for start in (0..n).step_by(256) {
        let mut ctx = Ctx::eval(l.buffers.clone());
        out.push(model.forward(
            &l.backbone,
            &x.narrow(0, start, 256.min(n - start))?,
            &mut ctx,
        )?);
    }
    Ok(Tensor::cat(&out, 0)?)
}

fn positive_scores(logits: &Tensor) -> scarce::core::Result<Vec<f64>> {
    let p = ops::softmax(logits, 1)?
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?;
    Ok(p.into_iter().map(|r| r[1]).collect())
}

/// Conv4 + linear layer from scratch on the support images: `steps` Adam steps, then
/// scores for the test images (batch norm with the running statistics it gathered).
fn scratch_scores(
    x: &Tensor,
    y: &[u32],
    test: &Tensor,
    seed: u64,
    steps: usize,
) -> scarce::core::Result<Vec<f64>> {
    let dev = x.device();
    let model = Conv4::new(Conv4Config::default())?;
    let rng = Stream::new(seed, "scratch");
    let mut p = model.init(&rng.child("conv4"), dev)?;
    let d = 64;
    let bound = 1.0 / (d as f64).sqrt();
    p.insert(
        "fc.weight",
        rng.at(1)
            .uniform_tensor((2, d), -bound, bound, DType::F32, dev)?,
    );
    p.insert(
        "fc.bias",
        rng.at(2)
            .uniform_tensor(2, -bound, bound, DType::F32, dev)?,
    );
    let mut p = p.to_vars()?;
    let mut buffers = model.buffers(dev)?;
    let mut adam = Adam::new(AdamConfig {
        lr: 1e-3,
        ..Default::default()
    })?;
    let yt = Tensor::new(y, dev)?;
    for _ in 0..steps {
        let mut ctx = Ctx::train(std::mem::take(&mut buffers));
        let z = model.forward(&p, x, &mut ctx)?;
        let logits = ops::linear(&z, p.require("fc.weight")?, Some(p.require("fc.bias")?))?;
        let loss = ops::cross_entropy(&logits, &yt)?;
        let g = p.grads(&loss.backward()?)?;
        adam.step(&mut p, &g)?;
        buffers = ctx.buffers;
    }
    let learner = Learner {
        backbone: p.detach(),
        head: Params::new(),
        buffers,
    };
    let z = embed(&model, &learner, test)?;
    let logits = ops::linear(
        &z,
        &learner.backbone.require("fc.weight")?.clone(),
        Some(learner.backbone.require("fc.bias")?),
    )?;
    positive_scores(&logits)
}

/// K-shot BreastMNIST / PneumoniaMNIST on the quickstart's Omniglot embedding.
#[derive(clap::Parser)]
struct Args {
    /// The embedding checkpoint (the quickstart's best).
    #[arg(long, default_value = "target/quickstart/best.safetensors")]
    backbone: PathBuf,
    /// Random support sets per K.
    #[arg(long, default_value_t = 100)]
    sets: usize,
    /// Output folder.
    #[arg(long, default_value = "target/medical_fewshot")]
    out: PathBuf,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        backbone,
        sets,
        out,
    } = clap::Parser::parse();
    if !backbone.is_file() {
        return Err(format!(
            "no backbone checkpoint at {}: run `cargo run --release --example quickstart` first, or pass --backbone FILE",
            backbone.display()
        )
        .into());
    }
    std::fs::create_dir_all(&out)?;
    let started = Instant::now();
    let dev = Device::Cpu;
    let model = Conv4::new(Conv4Config::default())?;
    let id = serde_json::json!({ "kind": "conv4", "hidden": 64, "in_channels": 1 });
    let head = ProtoNet::euclidean();
    let (omniglot, _, _) = load_learner(&backbone, &id, &head.name(), &dev)?;
    let data = scarce::episodes::data_dir().join("medmnist");
    let scratch_steps = 30;
    let mut table = String::from(
        "| data set | K per class | ProtoNet on the Omniglot embedding: AUROC | Conv4 from scratch on the K images: AUROC |\n| --- | --- | --- | --- |\n",
    );
    let mut json = serde_json::Map::new();
    let bar = cli::bar(2 * 3 * sets, "support sets");
    for name in ["breastmnist", "pneumoniamnist"] {
        let file = data.join(format!("{name}.safetensors"));
        let train = load_medmnist(&file, Split::Train).map_err(episodes_err)?;
        let test = load_medmnist(&file, Split::Test).map_err(episodes_err)?;
        let test_x = images(&test, &dev)?;
        let truth: Vec<bool> = test.labels().iter().map(|&l| l == 1).collect();
        let train_x = images(&train, &dev)?;
        let train_z = embed(&model, &omniglot, &train_x)?;
        let test_z = embed(&model, &omniglot, &test_x)?;
        for k in [1, 5, 10] {
            let sampler = EpisodeSampler::new(&train, EpisodeConfig::new(2, k, 0), 100 + k as u64)
                .map_err(episodes_err)?;
            let (mut proto_auc, mut scratch_auc) = (Vec::new(), Vec::new());
            for i in 0..sets as u64 {
                bar.inc(1);
                let e = sampler.episode(i).map_err(episodes_err)?;
                // Labels as the data set's classes (not the episode's order).
                let y: Vec<u32> = e
                    .support
                    .iter()
                    .map(|&s| train.labels()[s] as u32)
                    .collect();
                let idx = Tensor::new(
                    e.support.iter().map(|&s| s as u32).collect::<Vec<_>>(),
                    &dev,
                )?;
                let logits = head.logits(
                    &Params::new(),
                    &train_z.index_select(&idx, 0)?,
                    &y,
                    2,
                    &test_z,
                )?;
                proto_auc.push(scarce::eval::auroc(&truth, &positive_scores(&logits)?)?);
                let scores = scratch_scores(
                    &train_x.index_select(&idx, 0)?,
                    &y,
                    &test_x,
                    i,
                    scratch_steps,
                )?;
                scratch_auc.push(scarce::eval::auroc(&truth, &scores)?);
            }
            let (p, s) = (
                scarce::eval::mean_ci95(&proto_auc)?,
                scarce::eval::mean_ci95(&scratch_auc)?,
            );
            let line = format!(
                "| {name} | {k} | {:.3} ± {:.3} | {:.3} ± {:.3} |",
                p.mean, p.ci95, s.mean, s.ci95
            );
            bar.println(&line);
            table.push_str(&line);
            table.push('\n');
            json.insert(
                format!("{name}_k{k}"),
                serde_json::json!({ "protonet_auroc": [p.mean, p.ci95], "scratch_auroc": [s.mean, s.ci95], "support_sets": sets }),
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    table.push_str(&format!(
        "\n{sets} support sets per row; test splits whole (156 and 624 images); from scratch: {scratch_steps} Adam steps (lr 1e-3); {secs:.0} s.\n"
    ));
    bar.finish();
    std::fs::write(out.join("results.md"), &table)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{secs:.0} s; results in {}", out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run())
}
