//! Bad input gets errors that say what is wrong, and an interrupted training resumes from
//! its last checkpoint to the very weights an uninterrupted run reaches.

use candle_core::{DType, Device, Tensor};
use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::optim::LrSchedule;
use scarce_core::{Model, Params, Stream};
use scarce_episodes::{Collator, Dataset, EpisodeConfig, EpisodeSampler, EpisodeSet};
use scarce_metric::{train, FewShotClassifier, Learner, Metric, ProtoNet, SimpleShot, TrainConfig};

fn embeddings(rows: usize, d: usize, seed: u64) -> Tensor {
    Stream::new(seed, "emb")
        .normal_tensor((rows, d), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap()
}

#[test]
fn episode_errors_name_the_problem() {
    let heads: Vec<Box<dyn FewShotClassifier>> = vec![
        Box::new(ProtoNet::euclidean()),
        Box::new(ProtoNet {
            metric: Metric::Cosine {
                init_scale: 10.0,
                learnable: false,
            },
        }),
        Box::new(SimpleShot::default()),
    ];
    for h in heads {
        let s = embeddings(4, 8, 0);
        let q = embeddings(3, 8, 1);
        let head = Params::new();
        // Labels that skip class 1 of 0..3: an empty class.
        let e = h
            .logits(&head, &s, &[0, 0, 2, 2], 3, &q)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class 1 has no support example"),
            "{}: {e}",
            h.name()
        );
        // A label past n_way.
        let e = h
            .logits(&head, &s, &[0, 1, 2, 5], 3, &q)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 5 outside 0..3"), "{}: {e}", h.name());
        // Query width differs from the support's.
        let e = h
            .logits(&head, &s, &[0, 1, 2, 0], 3, &embeddings(3, 6, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("query"), "{}: {e}", h.name());
        // Right input: logits [3, 3].
        assert_eq!(
            h.logits(&head, &s, &[0, 1, 2, 0], 3, &q).unwrap().dims(),
            &[3, 3]
        );
    }
    let learnable = ProtoNet {
        metric: Metric::Cosine {
            init_scale: 10.0,
            learnable: true,
        },
    };
    let e = learnable
        .logits(
            &Params::new(),
            &embeddings(2, 4, 0),
            &[0, 1],
            2,
            &embeddings(1, 4, 1),
        )
        .unwrap_err();
    assert!(e.to_string().contains("scale"), "{e}");
}

#[test]
fn euclidean_logits_are_negative_squared_distances() {
    // Closed form on a hand-sized episode: prototypes (1, 0) and (0, 2).
    let dev = Device::Cpu;
    let s = Tensor::new(&[[0.0f64, 0.0], [2.0, 0.0], [0.0, 2.0]], &dev).unwrap();
    let q = Tensor::new(&[[1.0f64, 1.0]], &dev).unwrap();
    let l = ProtoNet::euclidean()
        .logits(&Params::new(), &s, &[0, 0, 1], 2, &q)
        .unwrap();
    assert_eq!(l.to_vec2::<f64>().unwrap(), vec![vec![-1.0, -2.0]]);
}

struct Setup {
    model: Conv4,
    sampler: EpisodeSampler,
    collator: Collator,
    val: EpisodeSet,
    init: Learner,
}

fn setup() -> Setup {
    let dev = Device::Cpu;
    let labels: Vec<usize> = (0..6).flat_map(|c| std::iter::repeat_n(c, 12)).collect();
    let pixels = Stream::new(3, "toy-pixels").uniform_vec(labels.len() * 64, 0.0, 1.0);
    let ds = Dataset::from_f32(
        "toy",
        &[1, 8, 8],
        pixels.into_iter().map(|v| v as f32).collect(),
        labels,
    )
    .unwrap();
    let model = Conv4::new(Conv4Config {
        hidden: 4,
        blocks: 2,
        ..Default::default()
    })
    .unwrap();
    let sampler = EpisodeSampler::new(&ds, EpisodeConfig::new(3, 2, 2), 0).unwrap();
    let val = EpisodeSet::generate(
        &EpisodeSampler::new(&ds, EpisodeConfig::new(3, 1, 2), 1).unwrap(),
        3,
    )
    .unwrap();
    let init = Learner {
        backbone: model.init(&Stream::new(0, "init"), &dev).unwrap(),
        head: Params::new(),
        buffers: model.buffers(&dev).unwrap(),
    };
    Setup {
        model,
        collator: Collator::new(&ds, &dev),
        sampler,
        val,
        init,
    }
}

fn config(dir: &std::path::Path, steps: usize, resume: bool) -> TrainConfig {
    TrainConfig {
        steps,
        lr: 1e-2,
        schedule: LrSchedule::Constant,
        val_every: 2,
        log_every: 0,
        out_dir: dir.to_path_buf(),
        resume,
        prefetch: 2,
        backbone_id: serde_json::json!({ "kind": "conv4", "hidden": 4, "blocks": 2 }),
    }
}

fn flat(p: &Params) -> Vec<f32> {
    p.iter()
        .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn interrupted_training_resumes_to_the_same_weights() {
    let s = setup();
    let base = std::env::temp_dir().join(format!("scarce-metric-resume-{}", std::process::id()));
    let (straight, split) = (base.join("straight"), base.join("split"));
    let head = ProtoNet::euclidean();
    let run = |dir: &std::path::Path, steps, resume| {
        train(
            &s.model,
            &head,
            s.init.clone(),
            &s.sampler,
            &s.collator,
            &s.val,
            &s.collator,
            &config(dir, steps, resume),
            |_| {},
        )
        .unwrap()
    };
    run(&straight, 6, false);
    // The progress callback sees every step once, in order; the last step validates.
    let mut seen = Vec::new();
    train(
        &s.model,
        &head,
        s.init.clone(),
        &s.sampler,
        &s.collator,
        &s.val,
        &s.collator,
        &config(&base.join("progress"), 3, false),
        |p| seen.push(*p),
    )
    .unwrap();
    let steps: Vec<(usize, usize)> = seen.iter().map(|p| (p.step, p.steps)).collect();
    assert_eq!(steps, [(1, 3), (2, 3), (3, 3)]);
    assert!(seen[2].val_accuracy.is_some() && seen.iter().all(|p| p.loss.is_finite()));
    // "Interrupted" after 4 steps (its last checkpoint is at step 4), then resumed to 6.
    run(&split, 4, false);
    // A row the killed run logged after its last checkpoint: redone on resume, not kept.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(split.join("log.csv"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"5,0.5,50.0,1e-2,\n").unwrap();
    let resumed = run(&split, 6, true);
    assert_eq!(resumed.steps_run, 2);
    let load = |dir: &std::path::Path| {
        scarce_metric::trainer::load_learner(
            &dir.join("last.safetensors"),
            &config(dir, 6, true).backbone_id,
            "protonet-euclidean",
            &Device::Cpu,
        )
        .unwrap()
        .0
    };
    let (a, b) = (load(&straight), load(&split));
    assert_eq!(flat(&a.backbone), flat(&b.backbone));
    assert_eq!(flat(&a.buffers), flat(&b.buffers));
    // The log has one row per step, with no step lost or repeated.
    let log = std::fs::read_to_string(split.join("log.csv")).unwrap();
    let steps: Vec<usize> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=6).collect::<Vec<_>>());
    assert_eq!(
        log,
        std::fs::read_to_string(straight.join("log.csv")).unwrap()
    );
    assert!(split.join("learning_curve.svg").is_file());

    // A checkpoint of another backbone is refused, naming both.
    let mut other = config(&split, 8, true);
    other.backbone_id = serde_json::json!({ "kind": "resnet12" });
    let e = train(
        &s.model,
        &head,
        s.init.clone(),
        &s.sampler,
        &s.collator,
        &s.val,
        &s.collator,
        &other,
        |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("resnet12") && e.to_string().contains("conv4"),
        "{e}"
    );
    std::fs::remove_dir_all(&base).unwrap();
}
