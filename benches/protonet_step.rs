//! `protonet_step`: one ProtoNet training step with Conv4-64 on a 5-way 5-shot 15-query
//! episode of 1×28×28 images (100 images): forward, prototype loss, backward, Adam. The same
//! workload as `shared/bench/protonet_step.py` (PyTorch) for side-by-side figures.
//! Also `conv2d_layer`: forward, sum and backward of one Conv4 layer (64→64, 3×3, 14×14,
//! batch 100), gradients for input, weight and bias.
//! Runs on the device `SCARCE_DEVICE` names (`cpu` by default, `cuda` on a GPU machine).

use criterion::{criterion_group, criterion_main, Criterion};
use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::optim::{Adam, AdamConfig, Optimizer};
use scarce::core::{ops, Ctx, DType, Device, Model, Params, Pref, Result, Stream, Tensor};

/// The benchmark device: `SCARCE_DEVICE`, else the CPU.
fn bench_device() -> Device {
    scarce::core::device(Pref::from_env_or(Pref::Cpu).unwrap()).unwrap()
}

/// Squared-Euclidean ProtoNet loss; support then query rows, class-major.
fn proto_loss(z: &Tensor, n_way: usize, k_shot: usize, yq: &Tensor) -> Result<Tensor> {
    let ns = n_way * k_shot;
    let d = z.dim(1)?;
    let protos = z.narrow(0, 0, ns)?.reshape((n_way, k_shot, d))?.mean(1)?;
    let zq = z.narrow(0, ns, z.dim(0)? - ns)?;
    let dist = zq
        .unsqueeze(1)?
        .broadcast_sub(&protos.unsqueeze(0)?)?
        .sqr()?
        .sum(2)?;
    ops::cross_entropy(&dist.neg()?, yq)
}

fn protonet_step(c: &mut Criterion) {
    let dev = bench_device();
    let (n_way, k_shot, n_query) = (5, 5, 15);
    let model = Conv4::new(Conv4Config::default()).unwrap();
    let mut params = model
        .init(&Stream::new(0, "init"), &dev)
        .unwrap()
        .to_vars()
        .unwrap();
    let mut buffers = model.buffers(&dev).unwrap();
    let mut opt = Adam::new(AdamConfig {
        lr: 1e-3,
        ..Default::default()
    })
    .unwrap();
    let n = n_way * (k_shot + n_query);
    let x = Stream::new(0, "images")
        .normal_tensor((n, 1, 28, 28), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let yq: Vec<u32> = (0..n_way as u32)
        .flat_map(|c| std::iter::repeat_n(c, n_query))
        .collect();
    let yq = Tensor::new(yq.as_slice(), &dev).unwrap();
    let mut step = || {
        let mut ctx = Ctx::train(std::mem::take(&mut buffers));
        let z = model.forward(&params, &x, &mut ctx).unwrap();
        let loss = proto_loss(&z, n_way, k_shot, &yq).unwrap();
        let grads = params.grads(&loss.backward().unwrap()).unwrap();
        opt.step(&mut params, &grads).unwrap();
        buffers = ctx.buffers;
        dev.synchronize().unwrap();
    };
    let mut g = c.benchmark_group("protonet_step");
    g.sample_size(20);
    g.bench_function("conv4-64 5w5s15q 1x28x28 f32", |b| b.iter(&mut step));
    g.finish();
}

fn conv2d_layer(c: &mut Criterion) {
    let dev = bench_device();
    let s = Stream::new(1, "conv-bench");
    let x = s
        .at(0)
        .normal_tensor((100, 64, 14, 14), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let p: Params = [
        (
            "w".to_string(),
            s.at(1)
                .normal_tensor((64, 64, 3, 3), 0.0, 0.05, DType::F32, &dev)
                .unwrap(),
        ),
        (
            "b".to_string(),
            Tensor::zeros(64, DType::F32, &dev).unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    let mut p = p;
    p.insert("x", x);
    let p = p.to_vars().unwrap();
    let x = p.require("x").unwrap();
    let opts = ops::ConvOpts::default().padding(1);
    let mut g = c.benchmark_group("conv2d");
    g.sample_size(20);
    g.bench_function("fwd+bwd 100x64x14x14 k3 p1 -> 64", |b| {
        b.iter(|| {
            let y = ops::conv2d(x, p.require("w").unwrap(), p.get("b"), &opts).unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            assert!(g.get(x).is_some());
            dev.synchronize().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, protonet_step, conv2d_layer);
criterion_main!(benches);
