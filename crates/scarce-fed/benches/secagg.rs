//! `secagg`: one secure-aggregation session of 10 clients summing 100 000 values each (a
//! small medical model), one client dropping out after sharing its keys, all four rounds
//! of both sides in one process (no network).
//!
//! Run: `cargo bench -p scarce-fed --bench secagg`

use criterion::{criterion_group, criterion_main, Criterion};
use scarce_fed::secagg::{SecAggClient, SecAggConfig, SecAggServer, SecureSum};

fn session(cfg: &SecAggConfig, inputs: &[Vec<f64>]) -> SecureSum {
    let mut server = SecAggServer::new(cfg).unwrap();
    let (mut clients, keys): (Vec<_>, Vec<_>) = (0..cfg.clients as u32)
        .map(|i| SecAggClient::new(i, cfg).unwrap())
        .unzip();
    let keys = server.collect_keys(keys).unwrap();
    let sealed = clients
        .iter_mut()
        .map(|c| c.share_keys(&keys).unwrap())
        .collect();
    let mut routed = server.route(sealed).unwrap();
    // Client 9 drops out before sending its input.
    let masked = clients
        .iter_mut()
        .zip(inputs)
        .take(cfg.clients - 1)
        .enumerate()
        .map(|(i, (c, x))| {
            c.masked_input(&routed.remove(&(i as u32)).unwrap(), x)
                .unwrap()
        })
        .collect();
    let survivors = server.collect_masked(masked).unwrap();
    let responses = survivors
        .iter()
        .map(|&s| clients[s as usize].unmask(&survivors).unwrap())
        .collect();
    server.unmask(responses).unwrap()
}

fn bench(c: &mut Criterion) {
    let cfg = SecAggConfig {
        session: 1,
        clients: 10,
        threshold: 6,
        len: 100_000,
        range: 1.0,
        bits: 24,
    };
    let inputs: Vec<Vec<f64>> = (0..cfg.clients)
        .map(|i| {
            (0..cfg.len)
                .map(|j| (((i * 31 + j) % 2001) as f64 - 1000.0) / 1000.0)
                .collect()
        })
        .collect();
    let mut g = c.benchmark_group("secagg");
    g.sample_size(10);
    g.bench_function("session_10x100k_one_dropout", |b| {
        b.iter(|| session(&cfg, &inputs))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
