//! Training: an interrupted run resumes from its checkpoint to the same weights as an
//! uninterrupted one; a foreign checkpoint is refused by name; a diverging run stops with the
//! step named and the last good checkpoint kept.

use candle_core::{DType, Device};
use scarce_core::Stream;
use scarce_gen::train::OutDir;
use scarce_gen::{train, Diffusion, DiffusionConfig, Error, ImageSet, TrainConfig, UNetConfig};

fn model() -> Diffusion {
    Diffusion::new(DiffusionConfig {
        unet: UNetConfig {
            channels: vec![4, 8],
            attention: vec![false, true],
            head_channels: 8,
            groups: 2,
            num_classes: Some(2),
            ..Default::default()
        },
        train_timesteps: 50,
        p_uncond: 0.2,
        ..Default::default()
    })
    .unwrap()
}

fn data() -> ImageSet {
    let x = Stream::new(9, "data")
        .uniform_tensor((6, 1, 8, 8), -1.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    ImageSet::new(x, Some(vec![0, 1, 0, 1, 1, 0])).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("scarce-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn resume_is_bit_identical() {
    let (m, d) = (model(), data());
    let cfg = TrainConfig {
        steps: 4,
        batch_size: 3,
        checkpoint_every: 2,
        ..Default::default()
    };
    let straight = train(&m, &d, &cfg, None, |_| {}).unwrap();
    let dir = OutDir(tmp("resume"));
    // "Interrupted" after 2 steps, then restarted with the full budget.
    train(
        &m,
        &d,
        &TrainConfig {
            steps: 2,
            ..cfg.clone()
        },
        Some(&dir),
        |_| {},
    )
    .unwrap();
    let resumed = train(&m, &d, &cfg, Some(&dir), |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, 2);
    assert_eq!(resumed.losses.len(), 2);
    assert_eq!(&straight.losses[2..], &resumed.losses[..]);
    for (n, a) in straight.ema.iter() {
        let b = resumed.ema.require(n).unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{n}");
    }
    // Another config in the same folder is refused, naming the file.
    let other = TrainConfig { lr: 1e-3, ..cfg };
    let e = train(&m, &d, &other, Some(&dir), |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("another"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir.0);
}

#[test]
fn divergence_names_the_step_and_keeps_the_checkpoint() {
    let m = model();
    let dir = OutDir(tmp("diverge"));
    let cfg = TrainConfig {
        steps: 2,
        batch_size: 3,
        checkpoint_every: 1,
        ..Default::default()
    };
    train(&m, &data(), &cfg, Some(&dir), |_| {}).unwrap();
    let before = std::fs::read(dir.checkpoint()).unwrap();
    // Data with a NaN in every image: the loss of the next step is NaN.
    let bad = ImageSet::new(
        (data().images * f64::NAN).unwrap(),
        Some(vec![0, 1, 0, 1, 1, 0]),
    )
    .unwrap();
    // Same run config (data is not part of it), more steps: resumes at step 2 and diverges.
    let e = train(
        &m,
        &bad,
        &TrainConfig { steps: 4, ..cfg },
        Some(&dir),
        |_| {},
    )
    .unwrap_err();
    match &e {
        Error::NonFinite {
            step, checkpoint, ..
        } => {
            assert_eq!(*step, 2);
            assert_eq!(checkpoint.as_deref(), Some(dir.checkpoint().as_path()));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(e.to_string().contains("step 2"));
    assert_eq!(
        std::fs::read(dir.checkpoint()).unwrap(),
        before,
        "the good checkpoint was kept"
    );
    let _ = std::fs::remove_dir_all(&dir.0);
}

#[test]
fn synthetic_dataset_has_provenance_and_mixes_at_the_ratio() {
    use scarce_gen::synthetic::file_sha256;
    use scarce_gen::SyntheticDataset;
    let m = model();
    let dir = OutDir(tmp("synthetic"));
    let cfg = TrainConfig {
        steps: 1,
        batch_size: 2,
        ..Default::default()
    };
    let t = train(&m, &data(), &cfg, Some(&dir), |_| {}).unwrap();
    let s = SyntheticDataset::generate(
        &m,
        &t.ema,
        &dir.checkpoint(),
        &[3, 2],
        &[8, 8],
        5,
        2,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(s.images.dims(), &[5, 1, 8, 8]);
    assert_eq!(s.labels(), vec![0, 0, 0, 1, 1]);
    let hash = file_sha256(&dir.checkpoint()).unwrap();
    assert_eq!(hash.len(), 64);
    assert!(s.provenance.iter().all(|p| p.checkpoint_sha256 == hash
        && p.seed == 5
        && p.generator == "scarce-gen/diffusion"));
    assert_eq!(
        s.provenance.iter().map(|p| p.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 0, 1]
    );
    // Real: 4 of class 0, 2 of class 1. Ratio 0.4 → 0.4/0.6 × (4, 2) = (2.67, 1.33) → (3, 1).
    let real = scarce_episodes::Dataset::from_f32(
        "real",
        &[1, 8, 8],
        vec![0.5; 6 * 64],
        vec![0, 0, 0, 0, 1, 1],
    )
    .unwrap();
    let mixed = s.mix_into(&real, 0.4).unwrap();
    assert_eq!(mixed.len(), 10);
    assert_eq!(mixed.class_samples(0).len(), 7);
    assert_eq!(mixed.class_samples(1).len(), 3);
    let synthetic_sites = (0..mixed.len())
        .filter(|&i| mixed.site(i).is_some_and(|s| s.starts_with("synthetic:")))
        .count();
    assert_eq!(synthetic_sites, 4);
    let _ = std::fs::remove_dir_all(&dir.0);
}
