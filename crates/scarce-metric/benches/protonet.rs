//! ProtoNet workloads on real Omniglot episodes (bundled data, 28×28, Conv4-64):
//! `train_step` — a 5-way 5-shot 15-query (and 20-way) episode through the backbone,
//! prototype logits, cross-entropy, backward and Adam, as the trainer runs it;
//! `eval_episode` — a 5-way 1-shot and 5-shot 15-query test episode, batch norm in eval
//! mode, logits and accuracy. Compare with `shared/bench/protonet_step.py` and
//! `protonet_eval.py` (PyTorch, easyfsl) run on the same machine.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::{ops, Ctx, Model, Stream};
use scarce_episodes::omniglot::{Omniglot, OmniglotSet};
use scarce_episodes::{Collator, EpisodeConfig, EpisodeSampler};
use scarce_metric::trainer::episode_logits;
use scarce_metric::ProtoNet;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let dir = scarce_episodes::data_dir().join("omniglot");
    let data = Omniglot::load(&dir, OmniglotSet::Background, 28)
        .unwrap()
        .dataset;
    let collator = Collator::new(&data, &dev);
    let model = Conv4::new(Conv4Config::default()).unwrap();
    let head = ProtoNet::euclidean();
    let mut g = c.benchmark_group("protonet");
    g.sample_size(20);
    for way in [5, 20] {
        let sampler = EpisodeSampler::new(&data, EpisodeConfig::new(way, 5, 15), 0).unwrap();
        let batch = collator.collate(&sampler.episode(0).unwrap()).unwrap();
        let mut params = model
            .init(&Stream::new(0, "init"), &dev)
            .unwrap()
            .to_vars()
            .unwrap();
        let mut buffers = model.buffers(&dev).unwrap();
        let mut adam = Adam::new(AdamConfig {
            lr: 1e-3,
            ..Default::default()
        })
        .unwrap();
        let empty = scarce_core::Params::new();
        g.bench_function(format!("train_step_{way}w5s15q"), |b| {
            b.iter(|| {
                let mut ctx = Ctx::train(std::mem::take(&mut buffers));
                let logits =
                    episode_logits(&model, &head, &params, &empty, &mut ctx, &batch).unwrap();
                let loss = ops::cross_entropy(&logits, &batch.query_labels).unwrap();
                let grads = params.grads(&loss.backward().unwrap()).unwrap();
                adam.step(&mut params, &grads).unwrap();
                buffers = ctx.buffers;
            })
        });
    }
    let params = model.init(&Stream::new(0, "init"), &dev).unwrap();
    let buffers = model.buffers(&dev).unwrap();
    for shot in [1, 5] {
        let sampler = EpisodeSampler::new(&data, EpisodeConfig::new(5, shot, 15), 0).unwrap();
        let batch = collator.collate(&sampler.episode(0).unwrap()).unwrap();
        let empty = scarce_core::Params::new();
        g.bench_function(format!("eval_episode_5w{shot}s15q"), |b| {
            b.iter(|| {
                let mut ctx = Ctx::eval(buffers.clone());
                let logits =
                    episode_logits(&model, &head, &params, &empty, &mut ctx, &batch).unwrap();
                logits.argmax(1).unwrap().to_dtype(DType::U32).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
