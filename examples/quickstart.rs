//! The quickstart: a Conv4 Prototypical Network trained on Omniglot's background alphabets
//! (bundled in `data/omniglot`) and evaluated on the evaluation alphabets, 600 fixed
//! episodes each of 5-way 1-shot and 5-way 5-shot (15 queries per class), printing mean
//! accuracy ± 95% confidence interval.
//!
//!     cargo run --release --example quickstart [-- --steps N --train-way N --train-shot N
//!         --train-query N --out DIR --resume --paper]
//!
//! Training follows the Prototypical Networks protocol: 28×28 drawings, the four rotations
//! of each character as separate classes, Adam at 1e-3. The quick default — 3 000 episodes
//! of 25-way 1-shot 3-query, the rate halved after 2 000 — is sized to finish within 15
//! minutes on 2 CPU cores (`--train-way`, `--train-shot`, `--train-query`, `--steps` change
//! it). 100 background characters (and their rotations) are held out for validation on 100
//! fixed 5-way 1-shot episodes. `--paper` runs the paper's schedule instead (60-way 5-shot
//! 5-query episodes, 20 000 steps, the rate halved every 2 000) and adds 20-way tests, each
//! on the evaluation characters and on them with their rotations as classes (the paper's
//! test protocol); the other flags still override its parts.
//! Everything is written under the output folder (default `target/quickstart`):
//! `best.safetensors`, `last.safetensors`, `log.csv`, the episode sets, `results.json`.

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::time::Instant;

use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::optim::LrSchedule;
use scarce::core::{DType, Device, Model, Stream};
use scarce::episodes::omniglot::{Omniglot, OmniglotSet};
use scarce::episodes::{ClassSplit, Collator, EpisodeConfig, EpisodeSampler, EpisodeSet};
use scarce::metric::trainer::episodes_err;
use scarce::metric::{
    evaluate_with_progress, train, FewShotClassifier, Learner, ProtoNet, TrainConfig,
};

// A 60-way episode's activations (tens of MB each) are above glibc's largest mmap threshold,
// so with its malloc every one is mapped, faulted in zeroed and unmapped again each step;
// mimalloc keeps and reuses them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Conv4 Prototypical Network on Omniglot: train on the background alphabets, test on the
/// evaluation alphabets (600 fixed 5-way 1-shot and 5-shot episodes).
#[derive(clap::Parser)]
struct Args {
    /// Training episodes (default 3 000; 20 000 with --paper).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    steps: usize,
    /// Classes per training episode (default 25; 60 with --paper).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    train_way: usize,
    /// Support images per class in training (default 1; 5 with --paper).
    #[arg(long)]
    train_shot: Option<usize>,
    /// Query images per class in training (default 3; 5 with --paper).
    #[arg(long)]
    train_query: Option<usize>,
    /// Output folder: checkpoints, log, episode sets, results.
    #[arg(long, default_value = "target/quickstart")]
    out: PathBuf,
    /// Continue an interrupted run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// The paper's schedule and test protocol (Snell et al. 2017).
    #[arg(long)]
    paper: bool,
}

/// `explanation.svg`: the first query of a 5-way 1-shot test episode, its distance to each
/// class and its three nearest support drawings.
fn explain_first_query(
    model: &Conv4,
    learner: &Learner,
    data: &scarce::episodes::Dataset,
    out: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let episode = EpisodeSampler::new(data, EpisodeConfig::new(5, 1, 15), 10)?.episode(0)?;
    let batch = Collator::new(data, &dev).collate(&episode)?;
    let mut ctx = scarce::core::Ctx::eval(learner.buffers.clone());
    let zs = model.forward(&learner.backbone, &batch.support, &mut ctx)?;
    let zq = model.forward(&learner.backbone, &batch.query, &mut ctx)?;
    let labels = episode.support_labels();
    let why = scarce::metric::explain(&zq.get(0)?, &zs, &labels, 5, 3)?;
    let image = |i: usize| -> Result<Vec<f32>, scarce::episodes::Error> {
        let mut v = vec![0f32; data.sample_len()];
        data.read(i, &mut v)?;
        Ok(v)
    };
    let support: Vec<Vec<f32>> = episode
        .support
        .iter()
        .map(|&i| image(i))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&[f32]> = support.iter().map(Vec::as_slice).collect();
    let path = out.join("explanation.svg");
    scarce::metric::explanation_svg(
        &path,
        &why,
        &image(episode.query[0])?,
        &refs,
        &labels,
        (28, 28),
    )?;
    println!(
        "query 0 of test episode 0 (true class 0): predicted {}, distances {:?}; {}",
        why.predicted,
        why.class_distances
            .iter()
            .map(|d| (d * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        path.display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    use clap::Parser;
    cli::init_logging();
    let args = Args::parse();
    cli::exit(run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let dev = Device::Cpu;
    let dir = scarce::episodes::data_dir().join("omniglot");
    let background = Omniglot::load(&dir, OmniglotSet::Background, 28)?.dataset;
    let evaluation = Omniglot::load(&dir, OmniglotSet::Evaluation, 28)?.dataset;
    let split = ClassSplit::seeded(background.n_classes(), background.n_classes() - 100, 100, 0)?;
    let [train_chars, val_chars, _] = split.apply(&background)?;
    let train_set = train_chars.with_rotations(&[0, 1, 2, 3])?;
    eprintln!(
        "Omniglot: {} training classes (with rotations), {} validation characters, {} test characters",
        train_set.n_classes(),
        val_chars.n_classes(),
        evaluation.n_classes()
    );

    // Flags given on the command line win over either schedule's defaults.
    let (shot, query) = if args.paper { (5, 5) } else { (1, 3) };
    let (shot, query) = (
        args.train_shot.unwrap_or(shot),
        args.train_query.unwrap_or(query),
    );
    let (steps, way, schedule) = if args.paper {
        (
            if args.steps > 0 { args.steps } else { 20_000 },
            60,
            LrSchedule::Step {
                every: 2_000,
                gamma: 0.5,
            },
        )
    } else {
        let steps = if args.steps > 0 { args.steps } else { 3_000 };
        (
            steps,
            25,
            LrSchedule::Step {
                every: steps * 2 / 3,
                gamma: 0.5,
            },
        )
    };
    let way = if args.train_way > 0 {
        args.train_way
    } else {
        way
    };
    let sampler = EpisodeSampler::new(&train_set, EpisodeConfig::new(way, shot, query), 1)?;
    let val_episodes = EpisodeSet::generate(
        &EpisodeSampler::new(&val_chars, EpisodeConfig::new(5, 1, 15), 2)?,
        100,
    )?;

    let model = Conv4::new(Conv4Config::default())?;
    let head = ProtoNet::euclidean();
    let init = Learner {
        backbone: model.init(&Stream::new(0, "conv4-init"), &dev)?,
        head: head.init_head(&dev, DType::F32)?,
        buffers: model.buffers(&dev)?,
    };
    let cfg = TrainConfig {
        steps,
        lr: 1e-3,
        schedule,
        val_every: (steps / 4).max(1),
        log_every: 0, // the progress bar below shows the run; log.csv keeps every step
        out_dir: args.out.clone(),
        resume: args.resume,
        prefetch: 4,
        backbone_id: serde_json::json!({ "kind": "conv4", "hidden": 64, "in_channels": 1 }),
    };
    eprintln!(
        "training {steps} episodes of {way}-way {}-shot {}-query; output in {}",
        shot,
        query,
        args.out.display()
    );
    let bar = cli::bar(steps, "training");
    let outcome = train(
        &model,
        &head,
        init,
        &sampler,
        &Collator::new(&train_set, &dev),
        &val_episodes,
        &Collator::new(&val_chars, &dev),
        &cfg,
        |p| {
            bar.set_position(p.step as u64);
            if let Some(v) = p.val_accuracy {
                bar.set_message(format!("val {v:.2}% (best {:.2}%)", p.best_val));
            }
        },
    )?;
    bar.finish();
    let trained_s = started.elapsed().as_secs_f64();
    eprintln!(
        "best validation accuracy {:.2}% at step {} ({trained_s:.0} s so far)",
        outcome.best_val, outcome.best_step
    );

    let mut results = serde_json::Map::new();
    // The paper's protocol also counts each rotation of a test character as a class of
    // its own; `--paper` reports both that and the plain evaluation characters.
    let rotated = if args.paper {
        Some(evaluation.with_rotations(&[0, 1, 2, 3])?)
    } else {
        None
    };
    let mut test_sets = vec![("", "characters", &evaluation)];
    if let Some(rotated) = &rotated {
        test_sets.push(("_rot", "characters x 4 rotations", rotated));
    }
    // The paper's table adds 20-way tests; the quick run keeps to 5-way to stay in budget.
    let ways: &[usize] = if args.paper { &[5, 20] } else { &[5] };
    for (suffix, classes, test_data) in test_sets {
        let test_collator = Collator::new(test_data, &dev);
        for &test_way in ways {
            for (shot, offset) in [(1, 0), (5, 1)] {
                let cfg = EpisodeConfig::new(test_way, shot, 15);
                // Seeds 10, 11 for the 5-way sets, 40, 41 for the 20-way ones.
                let seed = 2 * test_way as u64 + offset;
                let sampler = EpisodeSampler::new(test_data, cfg, seed)?;
                let set = EpisodeSet::generate(&sampler, 600)?;
                let name = format!("{test_way}way_{shot}shot{suffix}");
                set.save(&args.out.join(format!("test_{name}.json")))
                    .map_err(episodes_err)?;
                let bar = cli::bar(set.episodes.len(), "testing");
                bar.set_message(name.clone());
                let accs = evaluate_with_progress(
                    &model,
                    &head,
                    &outcome.best,
                    &test_collator,
                    &set,
                    |done, _| bar.set_position(done as u64),
                )?;
                bar.finish_and_clear();
                let m = scarce::eval::mean_ci95(&accs)?;
                println!(
                    "Omniglot {test_way}-way {shot}-shot, 600 test episodes ({classes}): {m} %"
                );
                let entry = serde_json::json!({ "mean": m.mean, "ci95": m.ci95, "episodes": m.n });
                results.insert(name, entry);
            }
        }
    }
    explain_first_query(&model, &outcome.best, &evaluation, &args.out)?;
    let total = started.elapsed().as_secs_f64();
    results.insert("train_steps".into(), steps.into());
    results.insert("train_way".into(), way.into());
    results.insert("train_shot".into(), shot.into());
    results.insert("train_query".into(), query.into());
    results.insert("seconds".into(), total.into());
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!(
        "total time {total:.0} s; checkpoint, log and episode sets in {}",
        args.out.display()
    );
    Ok(())
}
