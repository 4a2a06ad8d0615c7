//! Bad rounds are refused naming the client or setting; DP noise has the stated spread.

use scarce_fed::aggregate::{bulyan, trimmed_mean};
use scarce_fed::{screen, ClientUpdate, ClipNorm, DpFedAvg, Error, FedAvg, Strategy, Weights};

fn model(values: Vec<f64>) -> Weights {
    Weights {
        names: vec!["w".into()],
        shapes: vec![vec![values.len()]],
        layers: vec![values],
    }
}

fn client(values: Vec<f64>, n: u64) -> ClientUpdate {
    ClientUpdate {
        weights: model(values),
        num_examples: n,
    }
}

#[test]
fn bad_rounds_name_the_client_or_setting() {
    let ok = || client(vec![1.0, 2.0], 3);
    let wrong_shape = client(vec![1.0, 2.0, 3.0], 3);
    match FedAvg.aggregate(1, &[ok(), ok(), wrong_shape]) {
        Err(Error::Client { client: 2, reason }) => assert!(reason.contains("shapes"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match FedAvg.aggregate(1, &[ok(), client(vec![f64::NAN, 0.0], 1)]) {
        Err(Error::Client { client: 1, reason }) => assert!(reason.contains("NaN"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        FedAvg.aggregate(1, &[]),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        FedAvg.aggregate(1, &[client(vec![1.0], 0)]),
        Err(Error::Config { .. })
    ));
    let five: Vec<ClientUpdate> = (0..5).map(|i| client(vec![i as f64], 1)).collect();
    match bulyan(&five, 1) {
        Err(Error::Config { name, reason }) => {
            assert_eq!(name, "num_malicious");
            assert!(reason.contains("4f + 3"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(trimmed_mean(&five, 0.5).is_err());

    // Screening drops the bad clients with their errors and the round goes on.
    let mut renamed = ok();
    renamed.weights.names = vec!["other".into()];
    let (kept, rejected) = screen(
        &model(vec![0.0, 0.0]),
        vec![ok(), client(vec![f64::INFINITY, 0.0], 1), renamed, ok()],
    );
    assert_eq!(kept.len(), 2);
    let named: Vec<usize> = rejected
        .iter()
        .map(|e| match e {
            Error::Client { client, .. } => *client,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(named, vec![1, 2]);
    assert!(rejected[1].to_string().contains("names"));
    assert_eq!(
        FedAvg.aggregate(1, &kept).unwrap().layers[0],
        vec![1.0, 2.0]
    );
    assert!(DpFedAvg::new(FedAvg, model(vec![0.0]), ClipNorm::Fixed(0.0), 1.0).is_err());
}

#[test]
fn dp_noise_has_the_stated_standard_deviation_and_is_fresh() {
    let n_coords = 200_000;
    let global = model(vec![0.0; n_coords]);
    let (clip, z, clients) = (2.0, 1.5, 4usize);
    let round: Vec<ClientUpdate> = (0..clients)
        .map(|_| client(vec![0.0; n_coords], 10))
        .collect();
    let noisy = |dp: &mut DpFedAvg<FedAvg>| dp.aggregate(1, &round).unwrap().layers[0].clone();
    let mut a = DpFedAvg::new(FedAvg, global.clone(), ClipNorm::Fixed(clip), z).unwrap();
    let mut b = DpFedAvg::new(FedAvg, global, ClipNorm::Fixed(clip), z).unwrap();
    let (x, y) = (noisy(&mut a), noisy(&mut b));
    let want = z * clip / clients as f64;
    let mean = x.iter().sum::<f64>() / n_coords as f64;
    let std = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n_coords as f64).sqrt();
    println!("noise: mean {mean:.2e}, std {std:.4} (stated {want})");
    // 200 000 draws: the sample std is within 1% of σ with overwhelming probability.
    assert!((std / want - 1.0).abs() < 0.01, "{std} vs {want}");
    assert!(mean.abs() < 5.0 * want / (n_coords as f64).sqrt());
    assert_ne!(x[..8], y[..8], "two runs drew the same noise");
}

/// The robustness statement tested: 10 clients, 8 honest (a common update plus spread
/// s = 0.1 per coordinate over 2 000 coordinates) and f = 2 poisoned, sending either the
/// honest mean scaled by −10 (sign flip) or by +50 (scaling). Krum (f = 2) lands within the
/// honest cloud's radius (the largest distance of an honest client from the honest mean);
/// median and trimmed mean (cutting 2 of 10 from each end) within the norm of the
/// coordinate-wise honest envelope (per coordinate, the largest honest deviation from the
/// honest mean). FedAvg lands more than ten times that envelope away.
#[test]
fn robust_rules_resist_poisoned_clients_and_fedavg_does_not() {
    use scarce_core::rng::Stream;
    use scarce_fed::aggregate::{krum, median, weighted_mean};
    let d = 2000;
    let s = Stream::new(5, "robustness");
    let common: Vec<f64> = s.child("common").normal_vec(d, 0.5, 1.0);
    let honest: Vec<Vec<f64>> = (0..8)
        .map(|i| {
            let noise = s.at(i).normal_vec(d, 0.0, 0.1);
            common.iter().zip(&noise).map(|(c, e)| c + e).collect()
        })
        .collect();
    let mean: Vec<f64> = (0..d)
        .map(|j| honest.iter().map(|h| h[j]).sum::<f64>() / 8.0)
        .collect();
    let dist = |a: &[f64]| {
        a.iter()
            .zip(&mean)
            .map(|(x, m)| (x - m).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let radius = honest.iter().map(|h| dist(h)).fold(0.0, f64::max);
    let envelope = (0..d)
        .map(|j| {
            honest
                .iter()
                .map(|h| (h[j] - mean[j]).abs())
                .fold(0.0, f64::max)
                .powi(2)
        })
        .sum::<f64>()
        .sqrt();
    for (attack, scale) in [("sign flip ×−10", -10.0), ("scaling ×50", 50.0)] {
        let mut round: Vec<ClientUpdate> = honest.iter().map(|h| client(h.clone(), 10)).collect();
        for _ in 0..2 {
            round.push(client(mean.iter().map(|m| m * scale).collect(), 10));
        }
        let k = dist(&krum(&round, 2, 0).unwrap().weights.layers[0]);
        let med = dist(&median(&round).unwrap().layers[0]);
        let tm = dist(&trimmed_mean(&round, 0.2).unwrap().layers[0]);
        let avg = dist(&weighted_mean(&round).unwrap().layers[0]);
        println!(
            "{attack}: distance to the honest mean — Krum {k:.3}, median {med:.3}, trimmed mean {tm:.3}, FedAvg {avg:.1} (honest radius {radius:.3}, envelope {envelope:.3})"
        );
        assert!(k <= radius, "Krum {k} > {radius}");
        assert!(med <= envelope && tm <= envelope, "{med} {tm} > {envelope}");
        assert!(avg > 10.0 * envelope, "FedAvg {avg}");
    }
}
