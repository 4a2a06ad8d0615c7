//! Peak memory and time of a second-order MAML meta-step through Conv4-64 + Linear(64, 5):
//! 5-way 1-shot, 15 queries per class, one inner SGD step (lr 0.4), 1×28×28 inputs, f32,
//! batch norm with batch statistics. `scarce_meta::MetaLearner::meta_gradient` takes the
//! meta-batch task by task, so the peak must not grow with the meta-batch. Random inputs:
//! memory and time do not depend on the values.
//!
//! Run: `cargo run --release --example maml_memory -- [--meta-batch B]` (default 32)
//! Prints the peak resident set size (VmHWM) of the process and the meta-step time.

#[path = "common/cli.rs"]
mod cli;

use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::{second_order, Ctx, DType, Device, Model, Params, Stream, Tensor};
use scarce::meta::{Algorithm, Loss, MetaLearner, MetaState, Order, Task, WithHead};
use std::time::Instant;

fn vm_hwm_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Memory and time of one second-order MAML meta-step (Conv4-64, 5-way 1-shot, 15 queries).
#[derive(clap::Parser)]
struct Args {
    /// Tasks in the meta-batch.
    #[arg(long, default_value_t = 32)]
    meta_batch: usize,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    second_order::enable()?;
    let Args { meta_batch } = clap::Parser::parse();
    let dev = Device::Cpu;
    let (n_way, k_shot, n_query) = (5, 1, 15);
    let model = WithHead::new(Conv4::new(Conv4Config::default())?, 64, n_way)?;
    let learner = MetaLearner::new(
        &model,
        Loss::CrossEntropy,
        Algorithm::Maml {
            order: Order::Second,
        },
        1,
        0.4,
    )?;
    let rng = Stream::new(0, "maml-memory");
    let state = MetaState {
        params: model.init(&rng.child("init"), &dev)?,
        lrs: Params::new(),
    }
    .to_vars()?;
    let labels = |per: usize| -> Result<Tensor, Box<dyn std::error::Error>> {
        let v: Vec<u32> = (0..n_way as u32)
            .flat_map(|c| std::iter::repeat_n(c, per))
            .collect();
        Ok(Tensor::new(v.as_slice(), &dev)?)
    };
    let before = vm_hwm_mib().unwrap_or(f64::NAN);
    let mut times = vec![];
    for step in 0..3u64 {
        let tasks: Vec<Task> = (0..meta_batch as u64)
            .map(|t| -> Result<Task, Box<dyn std::error::Error>> {
                let r = rng.at(step).at(t);
                Ok(Task {
                    support_x: r.child("s").uniform_tensor(
                        (n_way * k_shot, 1, 28, 28),
                        0.0,
                        1.0,
                        DType::F32,
                        &dev,
                    )?,
                    support_y: labels(k_shot)?,
                    query_x: r.child("q").uniform_tensor(
                        (n_way * n_query, 1, 28, 28),
                        0.0,
                        1.0,
                        DType::F32,
                        &dev,
                    )?,
                    query_y: labels(n_query)?,
                })
            })
            .collect::<Result<_, _>>()?;
        let t0 = Instant::now();
        let g = learner.meta_gradient(&state, &tasks, step as usize, &mut Ctx::transductive())?;
        times.push(t0.elapsed().as_secs_f64());
        println!(
            "meta-step {step}: loss {:.4}, |meta-grad| {:.4}, {:.2} s",
            g.loss,
            g.params.l2_norm()?.to_scalar::<f32>()?,
            times[step as usize]
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "second-order MAML, Conv4-64, 5-way 1-shot 15-query, meta-batch {meta_batch}: peak RSS {:.0} MiB \
         (before the first step {before:.0} MiB), meta-step {:.2} s (median of 3, {:.0} ms per task)",
        vm_hwm_mib().unwrap_or(f64::NAN),
        times[1],
        times[1] * 1e3 / meta_batch as f64
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run())
}
