//! `maml_step`: the MAML meta-gradient of one task through Conv4-64 + Linear(64, 5), 5-way
//! 1-shot 15-query, 1×28×28 inputs, one inner SGD step (lr 0.4), batch norm with batch
//! statistics; second and first order. The workload of `shared/bench/maml_step.py`
//! (learn2learn), whose figure is per task of a meta-batch.
//!
//! Run: `cargo bench -p scarce-meta --bench maml_step` (on the device `SCARCE_DEVICE` names:
//! `cpu` by default, `cuda` on a GPU machine).

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::{second_order, Ctx, Model, Params, Pref, Stream};

/// The benchmark device: `SCARCE_DEVICE`, else the CPU.
fn bench_device() -> Device {
    scarce_core::device(Pref::from_env_or(Pref::Cpu).unwrap()).unwrap()
}
use scarce_meta::{Algorithm, Loss, MetaLearner, MetaState, Order, Task, WithHead};

fn task(dev: &Device, rng: &Stream, n_way: usize, k_shot: usize, n_query: usize) -> Task {
    let labels = |per: usize| {
        let v: Vec<u32> = (0..n_way as u32)
            .flat_map(|c| std::iter::repeat_n(c, per))
            .collect();
        Tensor::new(v.as_slice(), dev).unwrap()
    };
    Task {
        support_x: rng
            .child("s")
            .normal_tensor((n_way * k_shot, 1, 28, 28), 0.0, 1.0, DType::F32, dev)
            .unwrap(),
        support_y: labels(k_shot),
        query_x: rng
            .child("q")
            .normal_tensor((n_way * n_query, 1, 28, 28), 0.0, 1.0, DType::F32, dev)
            .unwrap(),
        query_y: labels(n_query),
    }
}

fn bench(c: &mut Criterion) {
    second_order::enable().unwrap();
    let dev = bench_device();
    let model = WithHead::new(Conv4::new(Conv4Config::default()).unwrap(), 64, 5).unwrap();
    let rng = Stream::new(0, "maml_step");
    let state = MetaState {
        params: model.init(&rng.child("init"), &dev).unwrap(),
        lrs: Params::new(),
    }
    .to_vars()
    .unwrap();
    let t = [task(&dev, &rng.child("task"), 5, 1, 15)];
    let mut g = c.benchmark_group("maml_step");
    g.sample_size(20);
    for (order, name) in [
        (Order::Second, "second_order_per_task"),
        (Order::First, "first_order_per_task"),
    ] {
        let learner = MetaLearner::new(
            &model,
            Loss::CrossEntropy,
            Algorithm::Maml { order },
            1,
            0.4,
        )
        .unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let g = learner
                    .meta_gradient(&state, &t, 0, &mut Ctx::transductive())
                    .unwrap();
                dev.synchronize().unwrap();
                g
            })
        });
    }
    // A meta-batch of 8 with two tasks in flight (one per core): report per task (÷ 8).
    let batch: Vec<Task> = (0..8)
        .map(|i| task(&dev, &rng.child("batch").at(i), 5, 1, 15))
        .collect();
    for (order, name) in [
        (Order::Second, "second_order_meta_batch8_two_in_flight"),
        (Order::First, "first_order_meta_batch8_two_in_flight"),
    ] {
        let mut learner = MetaLearner::new(
            &model,
            Loss::CrossEntropy,
            Algorithm::Maml { order },
            1,
            0.4,
        )
        .unwrap();
        learner.tasks_in_flight = 2;
        g.bench_function(name, |b| {
            b.iter(|| {
                let g = learner
                    .meta_gradient(&state, &batch, 0, &mut Ctx::transductive())
                    .unwrap();
                dev.synchronize().unwrap();
                g
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
