//! `simclr_step`: one SimCLR update — two views of 256 images of 1×28×28 through the encoder
//! and lightly's projection head, NT-Xent (T = 0.5), backward, Adam — with a Conv4-64 encoder
//! (head 64→256→128) and a ResNet-18 with the MedMNIST 3×3 stem (head 512→512→128).
//! `simclr_views`: drawing the two views of 256 images. `dino_step`: one DINO update with a
//! Conv4-64 student and EMA teacher, head 64→512→1024, 2 global + 4 local views of 64 images. The same workloads as
//! `scripts/bench/simclr_step.py` (PyTorch + lightly) for side-by-side figures.

use criterion::{criterion_group, criterion_main, Criterion};
use scarce_augment::views::{views, ViewConfig};
use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::{DType, Device, Model, Stream, Tensor};
use scarce_models::{ResNet, ResNetConfig, Stem};
use scarce_ssl::{DinoConfig, DinoLearner, DinoTrainConfig, SimClr, SimClrConfig};

const BATCH: usize = 256;

fn two_views(dev: &Device) -> (Tensor, Tensor) {
    let v = |i: u64| {
        Stream::new(i, "views")
            .normal_tensor((BATCH, 1, 28, 28), 0.0, 1.0, DType::F32, dev)
            .unwrap()
    };
    (v(0), v(1))
}

fn bench_encoder<M: Model>(c: &mut Criterion, name: &str, model: M, dim: usize, hidden: usize) {
    let dev = Device::Cpu;
    let cfg = SimClrConfig {
        head_hidden: hidden,
        ..SimClrConfig::default()
    };
    let mut learner = SimClr::new(model, dim, &cfg, &dev).unwrap();
    let (a, b) = two_views(&dev);
    let mut group = c.benchmark_group("simclr_step");
    group.sample_size(10);
    group.bench_function(name, |bench| bench.iter(|| learner.step(&a, &b).unwrap()));
    group.finish();
}

fn simclr_step(c: &mut Criterion) {
    bench_encoder(
        c,
        "conv4_b256",
        Conv4::new(Conv4Config::default()).unwrap(),
        64,
        256,
    );
    let resnet = ResNet::new(ResNetConfig::resnet18(1, 0, Stem::Small)).unwrap();
    bench_encoder(c, "resnet18_28_b256", resnet, 512, 512);
}

fn simclr_views(c: &mut Criterion) {
    let images: Vec<f32> = (0..BATCH * 784).map(|i| (i % 251) as f32 / 251.0).collect();
    let ids: Vec<u64> = (0..BATCH as u64).collect();
    let cfg = ViewConfig::default();
    c.bench_function("simclr_views/two_views_b256", |b| {
        b.iter(|| {
            for v in 0..2 {
                views(&images, &[1, 28, 28], &ids, v, 0, &cfg).unwrap();
            }
        })
    });
}

fn dino_step(c: &mut Criterion) {
    let dev = Device::Cpu;
    let cfg = DinoTrainConfig {
        loss: DinoConfig {
            output_dim: 1024,
            ..DinoConfig::default()
        },
        hidden: 512,
        ..DinoTrainConfig::default()
    };
    let model = Conv4::new(Conv4Config::default()).unwrap();
    let mut learner = DinoLearner::new(model, 64, &cfg, &dev).unwrap();
    let v = |i: u64| {
        Stream::new(i, "views")
            .normal_tensor((64, 1, 28, 28), 0.0, 1.0, DType::F32, &dev)
            .unwrap()
    };
    let global = [v(0), v(1)];
    let local = [v(2), v(3), v(4), v(5)];
    let mut group = c.benchmark_group("dino_step");
    group.sample_size(10);
    group.bench_function("conv4_b64_2g4l", |b| {
        b.iter(|| learner.step(&global, &local).unwrap())
    });
    group.finish();
}

criterion_group!(benches, simclr_step, simclr_views, dino_step);
criterion_main!(benches);
