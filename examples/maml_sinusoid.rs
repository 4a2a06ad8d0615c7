//! MAML on sinusoid regression (Finn et al. 2017, §5.1): meta-train an MLP 1-40-40-1 on
//! K = 10 points per task (one inner SGD step of 0.01, Adam 1e-3 outside, meta-batch 25),
//! and beside it the paper's baseline, the same network pretrained on all tasks jointly
//! (Adam, the same number of steps and points). Both are then fine-tuned the same way
//! (SGD 0.01 on the 10 support points) on 600 unseen tasks and scored on 100 query points
//! after 1 and 10 steps.
//!
//! Run: `cargo run --release --example maml_sinusoid -- [--meta-steps N] [--out DIR]`
//! Writes `DIR` (default `target/maml_sinusoid`): `results.txt` and `fits.svg` (four test
//! tasks: the true curve in black, the 10 support points in red, MAML after 10 steps in blue,
//! the pretrained network after 10 steps in orange).

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::time::Instant;

use scarce::core::backbone::{Mlp, MlpConfig};
use scarce::core::optim::{Adam, AdamConfig, Optimizer};
use scarce::core::{second_order, Ctx, DType, Device, Model, Params, Stream, Tensor};
use scarce::eval::mean_ci95;
use scarce::eval::plot::{colours, Chart, Figure};
use scarce::meta::{
    adapt, Algorithm, InnerLoop, Loss, MetaLearner, MetaState, Order, Sinusoid, Task,
};

/// MAML against a pretrained network on sinusoid regression (Finn et al. 2017, section 5.1).
#[derive(clap::Parser)]
struct Args {
    /// Meta-training steps (25 tasks each).
    #[arg(long, default_value_t = 10_000)]
    meta_steps: usize,
    /// Output folder: checkpoints, log, plots.
    #[arg(long, default_value = "target/maml_sinusoid")]
    out: PathBuf,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // A 1-40-40-1 network's ops are too small to split across threads: one thread is several
    // times faster than two here (the split costs more than it saves). Set before any thread
    // pool starts; an explicit RAYON_NUM_THREADS wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    second_order::enable()?;
    let Args { meta_steps, out } = clap::Parser::parse();
    std::fs::create_dir_all(&out)?;
    let dev = Device::Cpu;
    let (k, meta_batch, inner_lr) = (10, 25, 0.01);
    let model = Mlp::new(MlpConfig::new(&[1, 40, 40, 1]))?;
    let init = model.init(&Stream::new(0, "maml-sinusoid"), &dev)?;
    let train = Sinusoid::new(k, k, 0)?;
    let learner = MetaLearner::new(
        &model,
        Loss::Mse,
        Algorithm::Maml {
            order: Order::Second,
        },
        1,
        inner_lr,
    )?;

    // MAML.
    let t0 = Instant::now();
    let mut maml = init.to_vars()?;
    let mut adam = Adam::new(AdamConfig::default())?;
    let bar = cli::bar(meta_steps, "MAML");
    for step in 0..meta_steps {
        let tasks: Vec<Task> = (0..meta_batch)
            .map(|j| train.task((step * meta_batch + j) as u64))
            .collect::<Result<_, _>>()?;
        let state = MetaState {
            params: maml.clone(),
            lrs: Params::new(),
        };
        let g = learner.meta_gradient(&state, &tasks, step, &mut Ctx::transductive())?;
        adam.step(&mut maml, &g.params)?;
        bar.inc(1);
        if (step + 1) % 100 == 0 {
            bar.set_message(format!("meta-loss {:.3}", g.loss));
        }
    }
    bar.finish();
    let maml_time = t0.elapsed().as_secs_f64();

    // Pretrained on all tasks jointly: the same tasks and points, one regression problem.
    let t0 = Instant::now();
    let mut pre = init.to_vars()?;
    let mut adam = Adam::new(AdamConfig::default())?;
    let bar = cli::bar(meta_steps, "pretraining");
    for step in 0..meta_steps {
        let (mut xs, mut ys) = (vec![], vec![]);
        for j in 0..meta_batch {
            let t = train.task((step * meta_batch + j) as u64)?;
            xs.extend([t.support_x, t.query_x]);
            ys.extend([t.support_y, t.query_y]);
        }
        let (x, y) = (Tensor::cat(&xs, 0)?, Tensor::cat(&ys, 0)?);
        let loss = Loss::Mse.of(&model.forward(&pre, &x, &mut Ctx::transductive())?, &y)?;
        let g = pre.grads(&loss.backward()?)?;
        adam.step(&mut pre, &g)?;
        bar.inc(1);
    }
    bar.finish();
    let pre_time = t0.elapsed().as_secs_f64();

    // 600 unseen tasks (another seed), 10 support and 100 query points each.
    let test = Sinusoid::new(k, 100, 1)?;
    let mut lines = vec![format!(
        "sinusoid regression, K = {k}, 600 unseen tasks, query MSE (mean ± 95% CI) after fine-tuning with SGD {inner_lr}"
    )];
    lines.push(format!(
        "MAML: {meta_steps} meta-steps × {meta_batch} tasks, second order, {maml_time:.0} s; pretrained: {meta_steps} Adam steps on the same points, {pre_time:.0} s"
    ));
    let bar = cli::bar(4 * 600, "testing");
    for (name, p) in [("MAML", &maml), ("pretrained", &pre)] {
        let state = MetaState {
            params: p.detach(),
            lrs: Params::new(),
        };
        for steps in [1, 10] {
            let mse: Vec<f64> = (0..600)
                .map(|i| {
                    bar.inc(1);
                    learner
                        .evaluate(&state, &test.task(i)?, steps, &mut Ctx::transductive())
                        .map(|s| s.loss)
                })
                .collect::<Result<_, _>>()?;
            let m = mean_ci95(&mse)?;
            lines.push(format!(
                "{name:<10} after {steps:>2} step(s): MSE {:.3} ± {:.3}",
                m.mean, m.ci95
            ));
        }
    }
    for l in &lines {
        println!("{l}");
    }
    std::fs::write(out.join("results.txt"), lines.join("\n") + "\n")?;

    // Fits on four test tasks after 10 steps.
    let grid: Vec<f64> = (0..=200).map(|i| -5.0 + 0.05 * i as f64).collect();
    let xg = Tensor::from_vec(
        grid.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        (grid.len(), 1),
        &dev,
    )?;
    let fitted = |p: &Params, task: &Task| -> Result<Vec<(f64, f64)>, Box<dyn std::error::Error>> {
        let a = adapt(
            &p.detach().to_vars()?,
            &InnerLoop::sgd(10, inner_lr).with_order(Order::First),
            |q| {
                Loss::Mse.of(
                    &model.forward(q, &task.support_x, &mut Ctx::transductive())?,
                    &task.support_y,
                )
            },
        )?;
        let y = model
            .forward(&a.params, &xg, &mut Ctx::transductive())?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        Ok(grid.iter().copied().zip(y).collect())
    };
    let mut figure = Figure::new(2, (560, 300));
    for i in 0..4u64 {
        let task = test.task(i)?;
        let wave = test.wave(i);
        let truth: Vec<(f64, f64)> = grid.iter().map(|&x| (x, wave.at(x))).collect();
        let (m, p) = (fitted(&maml, &task)?, fitted(&pre, &task)?);
        let xs = task
            .support_x
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let ys = task
            .support_y
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        figure = figure.chart(
            Chart::new(format!(
                "Test task {i}: after adaptation to its support points"
            ))
            .x_axis("x", Some((-5.0, 5.0)))
            .y_axis("y", Some((-5.5, 5.5)))
            .line("true sine", truth, colours::BLACK)
            .line("MAML", m, colours::BLUE)
            .line("pretrained", p, colours::ORANGE)
            .points("support", xs.into_iter().zip(ys).collect(), colours::RED),
        );
    }
    figure.save_svg(&out.join("fits.svg"))?;
    println!(
        "wrote {} and {}",
        out.join("results.txt").display(),
        out.join("fits.svg").display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run())
}
