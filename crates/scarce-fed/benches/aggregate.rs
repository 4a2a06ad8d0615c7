//! `aggregate`: FedAvg of 10 client updates of 11.2M parameters (ResNet-18 size), the
//! workload of `shared/bench/fedavg_aggregate.py` (Flower's numpy `aggregate`), and the
//! coordinate-wise median of the same round.
//!
//! Run: `cargo bench -p scarce-fed --bench aggregate`

use criterion::{criterion_group, criterion_main, Criterion};
use scarce_fed::aggregate::{median, weighted_mean};
use scarce_fed::{ClientUpdate, Weights};

fn bench(c: &mut Criterion) {
    let n_params = 11_200_000usize;
    let clients: Vec<ClientUpdate> = (0..10)
        .map(|i| ClientUpdate {
            weights: Weights {
                names: vec!["flat".into()],
                shapes: vec![vec![n_params]],
                layers: vec![(0..n_params)
                    .map(|j| ((i * 31 + j) % 1000) as f64 * 1e-3)
                    .collect()],
            },
            num_examples: 100 + i as u64,
        })
        .collect();
    let mut g = c.benchmark_group("aggregate");
    g.sample_size(10);
    g.bench_function("fedavg_10x11.2M", |b| {
        b.iter(|| weighted_mean(&clients).unwrap())
    });
    g.bench_function("median_10x11.2M", |b| b.iter(|| median(&clients).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
