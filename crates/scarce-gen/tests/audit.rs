//! Audits against oracles: the Fréchet distance against scipy (`shared/fixtures/metrics`,
//! skipped with a printed reason when absent), KID against a hand-computed value, precision /
//! recall and memorisation against their closed-form extremes.

use candle_core::Device;
use scarce_core::Stream;
use scarce_fixtures::{case_files, Case};
use scarce_gen::audit::{frechet_distance, kid, memorisation, precision_recall, rows};

#[test]
fn frechet_matches_scipy_fixtures() {
    let Some(files) = case_files("metrics").unwrap() else {
        return;
    };
    let mut checked = 0;
    for f in files.iter().filter(|f| {
        f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("frechet")
    }) {
        let c = Case::load(f).unwrap();
        let a = rows(&c.f64("features_a", &Device::Cpu).unwrap()).unwrap();
        let b = rows(&c.f64("features_b", &Device::Cpu).unwrap()).unwrap();
        let want = c
            .f64("frechet_distance", &Device::Cpu)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let got = frechet_distance(&a, &b).unwrap();
        let rel = (got - want).abs() / want.abs();
        println!("ok   {:<20} fd {got:.6} rel err {rel:.1e}", c.name);
        assert!(rel <= 1e-8, "{}: {got} vs {want}", c.name); // NaN fails too
        checked += 1;
    }
    println!("frechet fixtures: {checked} cases checked");
    assert!(checked > 0, "no frechet_* case in fixtures/metrics");
}

#[test]
fn kid_by_hand() {
    // d = 1, k(x, y) = (x·y + 1)³; real {0, 1}, fake {1, 2}:
    // off-diagonal k_rr = 1 + 1, k_ff = 27 + 27, k_rf = 1 + 1 + 8 + 27 = 37,
    // MMD² = (2 + 54)/(2·1) − 2·37/4 = 9.5.
    let real = vec![vec![0.0], vec![1.0]];
    let fake = vec![vec![1.0], vec![2.0]];
    let (mean, std) = kid(&real, &fake, 3, 2, &Stream::new(0, "kid")).unwrap();
    assert!((mean - 9.5).abs() < 1e-12 && std < 1e-12, "{mean} ± {std}");
    // Two samples of one distribution: KID near 0; a shifted one: clearly positive.
    let s = Stream::new(1, "x");
    let draw = |tag: &str, shift: f64| -> Vec<Vec<f64>> {
        (0..200)
            .map(|i| {
                (0..4)
                    .map(|j| s.child(tag).normal((i * 4 + j) as u64) + shift)
                    .collect()
            })
            .collect()
    };
    let (same, _) = kid(
        &draw("a", 0.0),
        &draw("b", 0.0),
        10,
        100,
        &Stream::new(2, "k"),
    )
    .unwrap();
    let (moved, _) = kid(
        &draw("a", 0.0),
        &draw("c", 1.0),
        10,
        100,
        &Stream::new(2, "k"),
    )
    .unwrap();
    assert!(
        same.abs() < 0.05 && moved > 0.5,
        "same {same}, moved {moved}"
    );
}

#[test]
fn precision_recall_extremes() {
    let s = Stream::new(3, "pr");
    let pts: Vec<Vec<f64>> = (0..50)
        .map(|i| vec![s.normal(2 * i), s.normal(2 * i + 1)])
        .collect();
    assert_eq!(precision_recall(&pts, &pts, 3).unwrap(), (1.0, 1.0));
    let far: Vec<Vec<f64>> = pts.iter().map(|p| vec![p[0] + 100.0, p[1]]).collect();
    assert_eq!(precision_recall(&pts, &far, 3).unwrap(), (0.0, 0.0));
}

#[test]
fn memorisation_flags_exact_copies_only() {
    let s = Stream::new(4, "mem");
    let train: Vec<Vec<f64>> = (0..200)
        .map(|i| (0..8).map(|j| s.normal(i * 8 + j)).collect())
        .collect();
    let mut synth: Vec<Vec<f64>> = vec![train[3].clone(), train[17].clone(), train[29].clone()];
    // Near-copies: a copy with a small perturbation.
    synth.push(train[100].iter().map(|v| v + 1e-3).collect());
    // Fresh draws from the same distribution: by chance about 1% of them come as close as the
    // closest 1% of real pairs, and no more.
    synth.extend((0..20).map(|i| (0..8).map(|j| s.child("new").normal(i * 8 + j)).collect()));
    let m = memorisation(&synth, &train, 0.01).unwrap();
    assert_eq!(&m.flagged[..4], &[0, 1, 2, 3], "{:?}", m.flagged);
    assert!(m.flagged.len() <= 5, "{:?}", m.flagged);
    assert_eq!(&m.nearest_index[..3], &[3, 17, 29]);
    assert!(m.nearest_distance[..3].iter().all(|&d| d == 0.0));
    assert!(m.threshold > 0.0);
}
