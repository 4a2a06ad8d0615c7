//! The flat f32 FedAvg equals the f64 weighted mean to f32 rounding, streamed or not, and
//! names the client at fault.

use scarce_fed::flat::{fedavg_f32, fedavg_f32_into, FlatUpdate, StreamingMean};
use scarce_fed::Error;

/// Updates whose length is not a multiple of the chunk or of 4 clients, so every tail runs.
fn clients(n: usize, len: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| {
            (0..len)
                .map(|j| (((i * 7919 + j * 104_729) % 2001) as f32 - 1000.0) * 1e-3)
                .collect()
        })
        .collect()
}

fn updates(values: &[Vec<f32>]) -> Vec<FlatUpdate<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| FlatUpdate {
            values: v,
            num_examples: 10 + 3 * i as u64,
        })
        .collect()
}

/// Σ n_i x_i / Σ n_i in f64, the closed form.
fn reference(u: &[FlatUpdate]) -> Vec<f64> {
    let total: u64 = u.iter().map(|u| u.num_examples).sum();
    (0..u[0].values.len())
        .map(|j| {
            u.iter()
                .map(|u| u.num_examples as f64 * u.values[j] as f64)
                .sum::<f64>()
                / total as f64
        })
        .collect()
}

#[test]
fn flat_fedavg_matches_the_f64_mean() {
    for n in [1, 3, 4, 7, 10] {
        let values = clients(n, 20_001);
        let u = updates(&values);
        let want = reference(&u);
        let got = fedavg_f32(&u).unwrap();
        let mut streamed = StreamingMean::new(20_001);
        for (i, c) in u.iter().enumerate() {
            streamed.add(i, *c).unwrap();
        }
        assert_eq!(streamed.clients(), n);
        let streamed = streamed.finish().unwrap();
        let mut worst = 0f64;
        for ((w, g), s) in want.iter().zip(&got).zip(&streamed) {
            // f32 products and sums of values below 1: a few units of f32 rounding.
            worst = worst.max((*g as f64 - w).abs()).max((*s as f64 - w).abs());
        }
        println!("{n} clients: largest difference from the f64 mean {worst:.2e}");
        assert!(worst < 1e-6, "{worst}");
    }
}

#[test]
fn flat_fedavg_names_the_bad_client() {
    let mut values = clients(5, 10_000);
    values[3][9_999] = f32::NAN;
    match fedavg_f32(&updates(&values)) {
        Err(Error::Client { client: 3, reason }) => assert!(reason.contains("9999"), "{reason}"),
        other => panic!("{other:?}"),
    }
    values[3][9_999] = 0.0;
    values[4].pop();
    match fedavg_f32(&updates(&values)) {
        Err(Error::Client { client: 4, .. }) => {}
        other => panic!("{other:?}"),
    }
    values[4].push(0.0);
    let mut out = vec![0f32; 3];
    assert!(matches!(
        fedavg_f32_into(&updates(&values), &mut out),
        Err(Error::Config { .. })
    ));
    // A refused update leaves the streamed mean as it was.
    let mut m = StreamingMean::new(10_000);
    m.add(0, updates(&values)[0]).unwrap();
    values[1][5] = f32::INFINITY;
    assert!(matches!(
        m.add(1, updates(&values)[1]),
        Err(Error::Client { client: 1, .. })
    ));
    assert_eq!(m.clients(), 1);
    let mean = m.finish().unwrap();
    assert_eq!(mean, values[0]);
}
