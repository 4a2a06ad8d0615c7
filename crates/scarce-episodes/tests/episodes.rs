//! Episode invariants over many seeds, group awareness, determinism across thread counts,
//! saved episode sets, the loader's lifecycle, batch samplers, and the errors bad input
//! gets. Datasets are small synthetic ones built in memory.

use std::collections::HashSet;
use std::sync::Arc;

use candle_core::Device;
use scarce_episodes::folder::{load_manifest, ReadOptions};
use scarce_episodes::{
    ClassBalancedSampler, Collator, Dataset, EpisodeConfig, EpisodeLoader, EpisodeSampler,
    EpisodeSet, Episodes, Error, ShuffledBatches,
};

/// `classes` classes with `per_class[c]` samples each; sample value = its index.
fn toy(per_class: &[usize]) -> Dataset {
    let labels: Vec<usize> = per_class
        .iter()
        .enumerate()
        .flat_map(|(c, &n)| std::iter::repeat_n(c, n))
        .collect();
    let pixels = (0..labels.len() * 4).map(|v| (v / 4) as f32).collect();
    Dataset::from_f32("toy", &[1, 2, 2], pixels, labels).unwrap()
}

fn check_invariants(ds: &Dataset, cfg: EpisodeConfig, e: &scarce_episodes::Episode) {
    let distinct: HashSet<_> = e.classes.iter().collect();
    assert_eq!(distinct.len(), cfg.n_way);
    assert_eq!(e.support.len(), cfg.n_way * cfg.k_shot);
    assert_eq!(e.query.len(), cfg.n_way * cfg.q_query);
    for (pos, (&i, &l)) in e.support.iter().zip(&e.support_labels()).enumerate() {
        assert_eq!(
            ds.labels()[i],
            e.classes[l as usize],
            "support position {pos}"
        );
    }
    for (&i, &l) in e.query.iter().zip(&e.query_labels()) {
        assert_eq!(ds.labels()[i], e.classes[l as usize]);
    }
    let s: HashSet<_> = e.support.iter().collect();
    let q: HashSet<_> = e.query.iter().collect();
    assert!(s.is_disjoint(&q), "support and query share a sample");
    if !cfg.with_replacement {
        assert_eq!(s.len(), e.support.len(), "repeated support sample");
        assert_eq!(q.len(), e.query.len(), "repeated query sample");
    }
}

#[test]
fn invariants_hold_over_many_seeds() {
    let ds = toy(&[20, 25, 30, 20, 22, 40, 21, 20, 33, 20]);
    let mut checked = 0;
    for (n, k, q) in [(5, 1, 15), (5, 5, 15), (10, 5, 10), (3, 19, 1)] {
        let cfg = EpisodeConfig::new(n, k, q);
        for seed in 0..25u64 {
            let s = EpisodeSampler::new(&ds, cfg, seed).unwrap();
            for i in 0..8 {
                let e = s.episode(i).unwrap();
                check_invariants(&ds, cfg, &e);
                // A pure function of (seed, index): a fresh sampler gives the same episode.
                assert_eq!(
                    e,
                    EpisodeSampler::new(&ds, cfg, seed)
                        .unwrap()
                        .episode(i)
                        .unwrap()
                );
                checked += 1;
            }
        }
    }
    println!("{checked} episodes checked");
}

#[test]
fn episodes_vary_with_seed_and_index() {
    let ds = toy(&[20; 30]);
    let s = EpisodeSampler::new(&ds, EpisodeConfig::new(5, 1, 5), 1).unwrap();
    let t = EpisodeSampler::new(&ds, EpisodeConfig::new(5, 1, 5), 2).unwrap();
    assert_ne!(s.episode(0).unwrap().support, s.episode(1).unwrap().support);
    assert_ne!(s.episode(0).unwrap().support, t.episode(0).unwrap().support);
}

#[test]
fn no_patient_on_both_sides() {
    // 6 classes x 24 samples, patients of 3 samples each; some patients span two classes.
    let ds = toy(&[24; 6]);
    let groups: Vec<String> = (0..ds.len())
        .map(|i| format!("p{}", (i + (i / 24) % 2) / 3))
        .collect();
    let ds = ds.with_groups(groups).unwrap();
    let cfg = EpisodeConfig::new(4, 3, 6);
    for seed in 0..40 {
        let s = EpisodeSampler::new(&ds, cfg, seed).unwrap();
        for i in 0..5 {
            let e = s.episode(i).unwrap();
            check_invariants(&ds, cfg, &e);
            let sg: HashSet<_> = e.support.iter().map(|&i| ds.group(i)).collect();
            assert!(
                e.query.iter().all(|&i| !sg.contains(&ds.group(i))),
                "seed {seed} episode {i}"
            );
        }
    }
}

#[test]
fn replacement_allows_small_classes() {
    let ds = toy(&[3, 2, 6, 4]);
    let cfg = EpisodeConfig {
        with_replacement: true,
        ..EpisodeConfig::new(4, 5, 5)
    };
    for seed in 0..20 {
        let e = EpisodeSampler::new(&ds, cfg, seed)
            .unwrap()
            .episode(0)
            .unwrap();
        check_invariants(&ds, cfg, &e);
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let ds = toy(&[20, 20, 7]);
    let e = EpisodeSampler::new(&ds, EpisodeConfig::new(4, 1, 1), 0).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParam { .. }) && e.to_string().contains("n_way"),
        "{e}"
    );
    let e = EpisodeSampler::new(&ds, EpisodeConfig::new(3, 5, 5), 0).unwrap_err();
    match &e {
        Error::ClassTooSmall {
            class,
            count,
            needed,
            ..
        } => assert_eq!((*class, *count, *needed), (2, 7, 10)),
        other => panic!("{other}"),
    }
    println!("{e}");
    let empty = Dataset::from_f32("nothing", &[1, 2, 2], vec![], vec![]).unwrap();
    assert!(matches!(
        EpisodeSampler::new(&empty, EpisodeConfig::new(1, 1, 1), 0),
        Err(Error::Empty(_))
    ));
    assert!(Dataset::from_f32("bad", &[1, 2, 2], vec![0.0; 7], vec![0, 1]).is_err());
}

#[test]
fn episode_sets_round_trip_and_refuse_other_datasets() {
    let ds = toy(&[20; 8]);
    let s = EpisodeSampler::new(&ds, EpisodeConfig::new(5, 5, 5), 9).unwrap();
    let set = EpisodeSet::generate(&s, 30).unwrap();
    let dir = std::env::temp_dir().join(format!("scarce-episodes-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test_episodes.json");
    set.save(&path).unwrap();
    let back = EpisodeSet::load(&path).unwrap();
    assert_eq!(back, set);
    back.check(&ds).unwrap();
    assert!(back.check(&toy(&[20; 9])).is_err());
    std::fs::write(&path, "{not json").unwrap();
    let e = EpisodeSet::load(&path).unwrap_err().to_string();
    assert!(e.contains("test_episodes.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batches_are_identical_whatever_the_thread_count() {
    let ds = toy(&[20; 10]);
    let s = EpisodeSampler::new(&ds, EpisodeConfig::new(5, 5, 5), 3).unwrap();
    let noise =
        |px: &mut [f32], _: Option<&mut [u8]>, _: &[usize], rng: &scarce_core::rng::Stream| {
            for (j, p) in px.iter_mut().enumerate() {
                *p += rng.normal(j as u64) as f32;
            }
            Ok(())
        };
    let collator = Collator::new(&ds, &Device::Cpu).with_augment(Arc::new(noise), true, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            (0..4)
                .map(|i| {
                    let b = collator.collate(&s.episode(i).unwrap()).unwrap();
                    b.query.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn loader_yields_in_order_and_stops_when_dropped() {
    let ds = toy(&[20; 10]);
    let s = EpisodeSampler::new(&ds, EpisodeConfig::new(5, 2, 3), 3).unwrap();
    let collator = Collator::new(&ds, &Device::Cpu);
    let loader = EpisodeLoader::new(
        Episodes::Sampled {
            sampler: s.clone(),
            start: 10,
            count: Some(6),
        },
        collator.clone(),
        2,
    )
    .unwrap();
    let got: Vec<_> = loader.map(|b| b.unwrap()).collect();
    assert_eq!(got.len(), 6);
    for (k, b) in got.iter().enumerate() {
        assert_eq!(b.episode, s.episode(10 + k as u64).unwrap());
        assert_eq!(b.support.dims(), &[10, 1, 2, 2]);
        // Sample values are their dataset index: the tensor holds the episode's samples.
        let first: Vec<f32> = b.query.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(first[0] as usize, b.episode.query[0]);
        assert_eq!(
            b.query_labels.to_vec1::<u32>().unwrap(),
            b.episode.query_labels()
        );
    }
    // An endless loader: take a few, then drop it; the drop joins the worker.
    let mut endless = EpisodeLoader::new(
        Episodes::Sampled {
            sampler: s,
            start: 0,
            count: None,
        },
        collator,
        3,
    )
    .unwrap();
    for _ in 0..5 {
        endless.next().unwrap().unwrap();
    }
    drop(endless);
}

#[test]
fn batch_samplers() {
    let b = ShuffledBatches::new(10, 4, false, 1).unwrap();
    let e0 = b.epoch(0);
    assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
    let mut all: Vec<usize> = e0.concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert_ne!(b.epoch(0), b.epoch(1));
    assert_eq!(
        ShuffledBatches::new(10, 4, true, 1).unwrap().epoch(0).len(),
        2
    );

    // 1 rare case against 99 common ones: balanced draws see both about equally.
    let ds = toy(&[99, 1]);
    let s = ClassBalancedSampler::new(&ds, 64, 0).unwrap();
    let draws: Vec<usize> = (0..100).flat_map(|i| s.batch(i)).collect();
    let rare = draws.iter().filter(|&&i| ds.labels()[i] == 1).count() as f64 / draws.len() as f64;
    assert!((rare - 0.5).abs() < 0.03, "rare fraction {rare}");
}

#[test]
fn manifest_rows_and_missing_files() {
    let dir = std::env::temp_dir().join(format!("scarce-episodes-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, v) in [10u8, 200, 90].iter().enumerate() {
        image::GrayImage::from_pixel(4, 3, image::Luma([*v]))
            .save(dir.join(format!("img{i}.png")))
            .unwrap();
    }
    let good = "path,label,patient,site\nimg0.png,benign,p1,a\nimg1.png,malignant,p2,a\nimg2.png,benign,p3,b\n";
    std::fs::write(dir.join("good.csv"), good).unwrap();
    let ds = load_manifest(&dir.join("good.csv"), ReadOptions::default()).unwrap();
    assert_eq!(ds.sample_shape(), &[1, 3, 4]);
    assert_eq!(
        (ds.len(), ds.n_classes(), ds.class_name(1)),
        (3, 2, "malignant")
    );
    assert_eq!(ds.site(2), Some("b"));
    let mut px = vec![0f32; 12];
    ds.read(1, &mut px).unwrap();
    assert_eq!(px[0], 200.0 / 255.0);
    // A buffer of the wrong length (8-bit storage) or a sample past the end: named errors.
    let e = ds.read(1, &mut [0f32; 11]).unwrap_err();
    assert!(
        e.to_string().contains("11 values for a sample of 12"),
        "{e}"
    );
    assert!(ds.read(3, &mut px).is_err());

    let bad = "path,label\nimg0.png,benign\nmissing.png,benign\n";
    std::fs::write(dir.join("bad.csv"), bad).unwrap();
    let e = load_manifest(&dir.join("bad.csv"), ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::ManifestRow { row: 2, .. }), "{e}");
    assert!(e.to_string().contains("missing.png"), "{e}");
    println!("{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
