//! DP-SGD against the closed-form per-example gradients of logistic regression, its noise
//! scale; adaptive clipping's update rule and noise split; strategy state round trips.

use candle_core::{DType, Device, Tensor};
use scarce_core::Params;
use scarce_fed::strategy::StrategyState;
use scarce_fed::{
    Adaptive, AdaptiveClip, ClientUpdate, ClipNorm, DpFedAvg, DpSgd, Error, FedAvg, FedAvgM,
    FedOpt, Strategy, Weights,
};

/// Logistic regression on `features` inputs: example i has x_ij = sin(i + 3j) · scale_i,
/// label i % 2. Scales differ so some per-example norms exceed the clip and some do not.
fn data(batch: usize, features: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let x = (0..batch)
        .map(|i| {
            let scale = 0.2 + i as f64;
            (0..features)
                .map(|j| ((i + 3 * j) as f64).sin() * scale)
                .collect()
        })
        .collect();
    let y = (0..batch).map(|i| (i % 2) as f64).collect();
    (x, y)
}

fn bce_loss(params: &Params, x: &[f64], y: f64) -> scarce_fed::Result<Tensor> {
    let dev = Device::Cpu;
    let w = params.require("w")?;
    let b = params.require("b")?;
    let x = Tensor::from_slice(x, (1, x.len()), &dev)?;
    let z = x.matmul(&w.unsqueeze(1)?)?.squeeze(1)?.broadcast_add(b)?;
    // −[y log σ(z) + (1 − y) log(1 − σ(z))] = softplus(z) − y z.
    let softplus = (z.exp()? + 1.0)?.log()?;
    Ok((softplus - (z * y)?)?.sum_all()?)
}

#[test]
fn dp_sgd_clips_each_example_as_the_closed_form_says() {
    let (batch, features) = (6, 5);
    let (x, y) = data(batch, features);
    let w0: Vec<f64> = (0..features).map(|j| 0.1 * j as f64 - 0.2).collect();
    let b0 = 0.05;
    let mut params = Params::new();
    params.insert("w", Tensor::new(w0.as_slice(), &Device::Cpu).unwrap());
    params.insert("b", Tensor::new(b0, &Device::Cpu).unwrap());
    let params = params.to_vars().unwrap();
    let clip = 1.5;
    let mut dp = DpSgd::new(clip, 0.0).unwrap();
    let step = dp
        .gradient(&params, batch, |i| bce_loss(&params, &x[i], y[i]))
        .unwrap();
    // Closed form: ∇_w = (σ(z) − y) x, ∇_b = σ(z) − y; clip the pair to norm C.
    let (mut gw, mut gb, mut clipped) = (vec![0.0; features], 0.0, 0);
    for i in 0..batch {
        let z: f64 = x[i].iter().zip(&w0).map(|(a, b)| a * b).sum::<f64>() + b0;
        let r = 1.0 / (1.0 + (-z).exp()) - y[i];
        let norm = (r * r * (x[i].iter().map(|v| v * v).sum::<f64>() + 1.0)).sqrt();
        let f = if norm > clip {
            clipped += 1;
            clip / norm
        } else {
            1.0
        };
        for (g, xv) in gw.iter_mut().zip(&x[i]) {
            *g += f * r * xv / batch as f64;
        }
        gb += f * r / batch as f64;
    }
    let got_w = step
        .gradient
        .require("w")
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let got_b = step
        .gradient
        .require("b")
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let mut worst = (got_b - gb).abs();
    for (a, b) in got_w.iter().zip(&gw) {
        worst = worst.max((a - b).abs());
    }
    println!("DP-SGD (σ = 0) vs closed form: largest difference {worst:.2e}, {clipped} of {batch} clipped");
    assert!(worst < 1e-14, "{worst}");
    assert_eq!(step.clipped, clipped);
    assert!(clipped > 0 && clipped < batch);
}

#[test]
fn dp_sgd_noise_has_the_stated_spread() {
    // A zero loss gradient everywhere: what comes out is the noise / batch alone.
    let n = 100_000;
    let params = {
        let mut p = Params::new();
        p.insert("w", Tensor::zeros(n, DType::F64, &Device::Cpu).unwrap());
        p.to_vars().unwrap()
    };
    let (clip, sigma, batch) = (0.7, 1.3, 4);
    let mut dp = DpSgd::new(clip, sigma).unwrap();
    let step = dp
        .gradient(&params, batch, |_| {
            Ok((params.require("w")?.sum_all()? * 0.0)?)
        })
        .unwrap();
    let g = step
        .gradient
        .require("w")
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let mean = g.iter().sum::<f64>() / n as f64;
    let std = (g.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let want = sigma * clip / batch as f64;
    println!("DP-SGD noise std {std:.5}, stated σ·C/B = {want:.5}");
    // The sample std of 10⁵ normals is within 1% of the true one with overwhelming odds.
    assert!((std / want - 1.0).abs() < 0.01 && mean.abs() < 5.0 * want / (n as f64).sqrt());
}

#[test]
fn dp_sgd_refuses_what_would_go_silently_wrong() {
    assert!(DpSgd::new(0.0, 1.0).is_err());
    assert!(DpSgd::new(1.0, f64::NAN).is_err());
    // A plain tensor (not a Var) would get no gradient at all.
    let mut p = Params::new();
    p.insert("w", Tensor::ones(3, DType::F64, &Device::Cpu).unwrap());
    let mut dp = DpSgd::new(1.0, 0.0).unwrap();
    match dp.gradient(&p, 1, |_| Ok(p.require("w")?.sum_all()?)) {
        Err(Error::Config { name, reason }) => {
            assert_eq!(name, "params");
            assert!(reason.contains("`w`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dp_fedavg_noise_covers_the_largest_client_weight() {
    // Four clients, all updates zero (inside any clip norm), example counts 1 : 1 : 2 : 6:
    // the FedAvg mean is zero, so the output is the noise alone. One client holds 60% of the
    // weight, so its clipped update moves the mean by up to 0.6·C, not C/4.
    let n = 100_000;
    let counts = [1u64, 1, 2, 6];
    let round: Vec<ClientUpdate> = counts
        .iter()
        .map(|&c| ClientUpdate {
            weights: weights(vec![0.0; n]),
            num_examples: c,
        })
        .collect();
    let (clip, z) = (0.8, 1.1);
    let mut dp = DpFedAvg::new(FedAvg, weights(vec![0.0; n]), ClipNorm::Fixed(clip), z).unwrap();
    let largest_share = 6.0 / 10.0;
    let clients = counts.len() as f64;
    // σ × (largest share × n) × C / n, the sensitivity bound written as the issue states it.
    let want = z * (largest_share * clients) * clip / clients;
    assert!((dp.noise_stddev(&round) - want).abs() < 1e-15);
    let out = dp.aggregate(1, &round).unwrap();
    let v = &out.layers[0];
    let mean = v.iter().sum::<f64>() / n as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    println!(
        "DP-FedAvg noise std {std:.5}, z·C·w_max = {want:.5} (z·C/n would be {:.5})",
        z * clip / clients
    );
    // The sample std of 10⁵ normals is within 1% of the true one with overwhelming odds.
    assert!((std / want - 1.0).abs() < 0.01, "{std} vs {want}");
    // The multiplier the accountant is given is the noise in units of the sensitivity.
    let effective_z = std / (clip * largest_share);
    assert!((effective_z / z - 1.0).abs() < 0.01);
    let (eps_stated, _) = scarce_fed::accountant::epsilon(1.0, z, 10, 1e-5).unwrap();
    let (eps_measured, _) = scarce_fed::accountant::epsilon(1.0, effective_z, 10, 1e-5).unwrap();
    assert!(
        (eps_measured / eps_stated - 1.0).abs() < 0.03,
        "{eps_measured} vs {eps_stated}"
    );
    // Equal counts: Flower's z·C/n exactly.
    let equal: Vec<ClientUpdate> = round
        .iter()
        .map(|u| ClientUpdate {
            weights: u.weights.clone(),
            num_examples: 5,
        })
        .collect();
    assert!((dp.noise_stddev(&equal) - z * clip / clients).abs() < 1e-15);
}

fn weights(values: Vec<f64>) -> Weights {
    Weights {
        names: vec!["w".into()],
        shapes: vec![vec![values.len()]],
        layers: vec![values],
    }
}

/// Ten clients whose updates around zero have norms 1, 2, …, 10.
fn round_of_norms() -> Vec<ClientUpdate> {
    (1..=10)
        .map(|k| ClientUpdate {
            weights: weights(vec![k as f64 * 0.6, k as f64 * 0.8]),
            num_examples: 1,
        })
        .collect()
}

#[test]
fn adaptive_clipping_follows_the_paper() {
    // A negligible count noise makes the geometric step visible exactly.
    let clip = AdaptiveClip {
        initial: 1.0,
        target_quantile: 0.5,
        lr: 0.2,
        count_stddev: 1e-12,
    };
    let mut dp = DpFedAvg::new(
        FedAvg,
        weights(vec![0.0, 0.0]),
        ClipNorm::Adaptive(clip),
        0.0,
    )
    .unwrap();
    dp.aggregate(1, &round_of_norms()).unwrap();
    // One of ten updates (norm 1) is within C = 1: C ← exp(−0.2 · (0.1 − 0.5)).
    let want = (0.2f64 * 0.4).exp();
    assert!((dp.norm - want).abs() < 1e-10, "{} vs {want}", dp.norm);
    // Held at the same global model, the norm settles between the 5th and 6th norms.
    for r in 2..200 {
        dp.global = weights(vec![0.0, 0.0]);
        dp.aggregate(r, &round_of_norms()).unwrap();
    }
    println!("adaptive clip norm after 200 rounds: {:.3}", dp.norm);
    assert!(dp.norm > 4.5 && dp.norm < 6.5, "{}", dp.norm);

    // The noise split: z = 1 with σ_b = 1 leaves z_Δ = (1 − 1/4)^(−1/2) for the update.
    let split = DpFedAvg::new(
        FedAvg,
        weights(vec![0.0]),
        ClipNorm::Adaptive(AdaptiveClip {
            count_stddev: 1.0,
            ..AdaptiveClip::defaults(10)
        }),
        1.0,
    )
    .unwrap();
    assert!((split.update_noise_multiplier() - 0.75f64.powf(-0.5)).abs() < 1e-15);
    // A count noise too small to leave any budget for the update is refused.
    let refused = DpFedAvg::new(
        FedAvg,
        weights(vec![0.0]),
        ClipNorm::Adaptive(AdaptiveClip::defaults(10)),
        1.0,
    );
    assert!(matches!(refused, Err(Error::Config { name, .. }) if name == "count_stddev"));
}

/// A strategy restored from its state after round 2 gives the same round 3 as the one
/// that never stopped.
fn resumes_exactly<S: Strategy>(make: impl Fn() -> S) {
    let round = |r: u64| -> Vec<ClientUpdate> {
        (0..4)
            .map(|i| ClientUpdate {
                weights: weights(vec![(r * 7 + i) as f64 * 0.01, 1.0 - i as f64 * 0.1]),
                num_examples: 1 + i,
            })
            .collect()
    };
    let mut a = make();
    a.aggregate(1, &round(1)).unwrap();
    a.aggregate(2, &round(2)).unwrap();
    let saved: StrategyState = a.state();
    let mut b = make();
    b.restore(&saved).unwrap();
    assert_eq!(
        a.aggregate(3, &round(3)).unwrap(),
        b.aggregate(3, &round(3)).unwrap()
    );
}

#[test]
fn strategy_state_round_trips() {
    let init = || weights(vec![0.5, -0.5]);
    resumes_exactly(|| FedAvgM::new(init(), 0.7, 0.9));
    for kind in [Adaptive::Adam, Adaptive::Yogi, Adaptive::Adagrad] {
        resumes_exactly(|| FedOpt::new(kind, init(), 0.1, 0.9, 0.99, 1e-3));
    }
    // DP state: the clipping norm and the inner strategy's (noise is fresh, so compare the
    // carried state, not the noised output).
    let make = || {
        DpFedAvg::new(
            FedAvgM::new(init(), 1.0, 0.9),
            init(),
            ClipNorm::Adaptive(AdaptiveClip::defaults(4)),
            0.0,
        )
        .unwrap()
    };
    let mut a = make();
    a.aggregate(1, &round_of_norms()[..4]).unwrap();
    let mut b = make();
    b.restore(&a.state()).unwrap();
    assert_eq!(a.state(), b.state());
    assert!(a.state().weights.contains_key("inner.momentum"));
    // A saved model of another layout is refused.
    let mut other = StrategyState::default();
    other.weights.insert("global".into(), weights(vec![0.0; 3]));
    assert!(FedAvgM::new(init(), 1.0, 0.9).restore(&other).is_err());
}

#[test]
fn fedprox_term_has_its_closed_form_gradient() {
    let dev = Device::Cpu;
    let mut p = Params::new();
    p.insert("a", Tensor::new(&[1.0f64, -2.0, 0.5], &dev).unwrap());
    p.insert("b", Tensor::new(&[[3.0f64, 4.0]], &dev).unwrap());
    let mut g = Params::new();
    g.insert("a", Tensor::new(&[0.0f64, 1.0, 0.5], &dev).unwrap());
    g.insert("b", Tensor::new(&[[1.0f64, 1.0]], &dev).unwrap());
    let p = p.to_vars().unwrap();
    let mu = 0.3;
    let term = scarce_fed::fedprox::proximal_term(&p, &g, mu).unwrap();
    // ‖p − g‖² = 1 + 9 + 0 + 4 + 9 = 23.
    assert!((term.to_scalar::<f64>().unwrap() - mu / 2.0 * 23.0).abs() < 1e-15);
    let grads = p.grads(&term.backward().unwrap()).unwrap();
    let ga = grads.require("a").unwrap().to_vec1::<f64>().unwrap();
    let gb = grads
        .require("b")
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let want: Vec<f64> = [1.0, -3.0, 0.0, 2.0, 3.0].iter().map(|d| mu * d).collect();
    let got: Vec<f64> = ga.into_iter().chain(gb).collect();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-15, "{got:?} vs {want:?}");
    }
    assert!(scarce_fed::fedprox::proximal_term(&p, &g, -1.0).is_err());
}
