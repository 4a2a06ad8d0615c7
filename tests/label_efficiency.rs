//! The label-efficiency benchmark's smoke run (`--quick`: K = 10, two draws, short
//! schedules) on the bundled BreastMNIST: the table has every method and budget, every
//! score is a real AUROC / balanced accuracy, the draws are the protocol's (K per class,
//! nested over K, the same for every method), and bad requests are refused by name.

use scarce::core::Device;
use scarce::label_efficiency::{draws, run, Budget, Config, Data, Method};

fn breast() -> Data {
    let f = scarce::episodes::data_dir().join("medmnist/breastmnist.safetensors");
    Data::load(&f).unwrap_or_else(|e| panic!("bundled data {}: {e}", f.display()))
}

#[test]
fn quick_run_produces_a_sane_table() {
    let data = breast();
    let cfg = Config::quick();
    let report = run(&data, &cfg, &Device::Cpu, &mut ()).unwrap();
    assert_eq!(
        report.rows.len(),
        cfg.draws * cfg.budgets.len() * Method::ALL.len()
    );
    for r in &report.rows {
        assert!((0.0..=1.0).contains(&r.auroc), "{r:?}");
        assert!((0.0..=1.0).contains(&r.balanced_accuracy), "{r:?}");
        assert!(r.wall_s.is_finite());
    }
    // Ranking the test images at random gives 0.5; a trained model from ten labelled images
    // per class must do better than chance on average (BreastMNIST is far from random).
    let scratch: Vec<f64> = report
        .rows
        .iter()
        .filter(|r| r.method == Method::Conv4Scratch.name())
        .map(|r| r.auroc)
        .collect();
    assert!(
        scratch.iter().sum::<f64>() / scratch.len() as f64 > 0.5,
        "{scratch:?}"
    );
    let md = report.markdown();
    for m in Method::ALL {
        assert!(md.contains(m.name()), "{md}");
    }
    assert!(
        md.contains("K = 10") && md.contains("Paired AUROC difference"),
        "{md}"
    );
    let p = report.pretrain.as_ref().unwrap();
    assert!(p.losses.iter().all(|l| l.is_finite()) && !p.losses.is_empty());
    let svg = scarce::eval::plot::Figure::new(1, (600, 400))
        .chart(report.chart())
        .to_svg()
        .unwrap();
    assert!(svg.contains("simclr_conv4_lpft") && svg.contains("labelled images per class"));
}

#[test]
fn draws_are_k_per_class_and_nested() {
    let data = breast();
    let cfg = Config {
        budgets: vec![Budget::PerClass(5), Budget::PerClass(20)],
        draws: 3,
        ..Config::quick()
    };
    let d = draws(&data, &cfg).unwrap();
    for s in 0..3 {
        let small = &d[&s.to_string()]["5"];
        let big = &d[&s.to_string()]["20"];
        for c in 0..data.classes {
            let of = |v: &[usize]| v.iter().filter(|&&i| data.train_labels[i] == c).count();
            assert_eq!((of(small), of(big)), (5, 20));
        }
        assert!(
            small.iter().all(|i| big.contains(i)),
            "draw {s} is not nested"
        );
    }
    assert_ne!(d["0"]["20"], d["1"]["20"]);
}

#[test]
fn a_budget_larger_than_a_class_is_refused_by_name() {
    let data = breast();
    // BreastMNIST's smaller class has 147 training images.
    let err = data.draw(0, Budget::PerClass(148)).unwrap_err().to_string();
    assert!(
        err.contains("148") && err.contains("class 0") && err.contains("147"),
        "{err}"
    );
    let cfg = Config {
        budgets: vec![Budget::PerClass(10), Budget::PerClass(500)],
        ..Config::quick()
    };
    let err = run(&data, &cfg, &Device::Cpu, &mut ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("500"), "{err}");
    assert!("0".parse::<Budget>().is_err() && "all".parse::<Budget>() == Ok(Budget::All));
    assert!("maml"
        .parse::<Method>()
        .unwrap_err()
        .contains("unknown method `maml`"));
}
