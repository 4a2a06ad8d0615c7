//! `aggregate`: FedAvg of 10 client updates of 11.2M parameters (ResNet-18 size), the
//! workload of `shared/bench/fedavg_aggregate.py` (Flower's numpy `aggregate`): flat f32
//! updates (`fedavg_f32`, the figure the issue compares with numpy's sgemv), and the f64
//! `Weights` path with its coordinate-wise median.
//!
//! Run: `cargo bench -p scarce-fed --bench aggregate`

use criterion::{criterion_group, criterion_main, Criterion};
use scarce_fed::aggregate::{median, weighted_mean};
use scarce_fed::flat::{fedavg_f32, fedavg_f32_into, FlatUpdate};
use scarce_fed::{ClientUpdate, Weights};

const CLIENTS: usize = 10;
/// ResNet-18 (CIFAR head), as `fedavg_aggregate.py` counts it.
const PARAMS: usize = 11_181_642;

fn value(i: usize, j: usize) -> f64 {
    ((i * 31 + j) % 1000) as f64 * 1e-3
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate");
    g.sample_size(20);

    let flat: Vec<Vec<f32>> = (0..CLIENTS)
        .map(|i| (0..PARAMS).map(|j| value(i, j) as f32).collect())
        .collect();
    let updates: Vec<FlatUpdate> = flat
        .iter()
        .enumerate()
        .map(|(i, v)| FlatUpdate {
            values: v,
            num_examples: 100 + i as u64,
        })
        .collect();
    g.bench_function("fedavg_f32_10x11.2M", |b| {
        b.iter(|| fedavg_f32(&updates).unwrap())
    });
    let mut out = vec![0f32; PARAMS];
    g.bench_function("fedavg_f32_into_10x11.2M", |b| {
        b.iter(|| fedavg_f32_into(&updates, &mut out).unwrap())
    });
    drop(flat);

    g.sample_size(10);
    let clients: Vec<ClientUpdate> = (0..CLIENTS)
        .map(|i| ClientUpdate {
            weights: Weights {
                names: vec!["flat".into()],
                shapes: vec![vec![PARAMS]],
                layers: vec![(0..PARAMS).map(|j| value(i, j)).collect()],
            },
            num_examples: 100 + i as u64,
        })
        .collect();
    g.bench_function("fedavg_10x11.2M", |b| {
        b.iter(|| weighted_mean(&clients).unwrap())
    });
    g.bench_function("median_10x11.2M", |b| b.iter(|| median(&clients).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
