//! The workloads of `shared/bench/ddpm_step.py`: UNet (MONAI DiffusionModelUNet layout,
//! channels 32-64-64, attention at the lowest level) forward and one DDPM training step
//! (add_noise + forward + MSE + backward + Adam) at 16×1×32×32; and DDIM 50-step sampling of
//! one image; and the UNet's 3×3 convolutions alone. Runs on the device `SCARCE_DEVICE` names
//! (`cpu` by default, `cuda` on a GPU machine).

use candle_core::DType;
use criterion::{criterion_group, criterion_main, Criterion};
use scarce_core::ops::{self, ConvOpts};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::{Pref, Stream};
use scarce_gen::{Diffusion, DiffusionConfig, Sampling};
use std::time::Duration;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let dev = scarce_core::device(Pref::from_env_or(Pref::Cpu).unwrap()).unwrap();
    let model = Diffusion::new(DiffusionConfig::default()).unwrap();
    let mut p = model
        .init(&Stream::new(0, "init"), &dev)
        .unwrap()
        .to_vars()
        .unwrap();
    let x0 = Stream::new(1, "x0")
        .normal_tensor((16, 1, 32, 32), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let t: Vec<f64> = (0..16).map(|i| (i * 61 % 1000) as f64).collect();
    let mut g = c.benchmark_group("ddpm");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("unet_forward_16x1x32x32", |b| {
        b.iter(|| {
            let y = model.unet.forward(&p, &x0, &t, None).unwrap();
            dev.synchronize().unwrap();
            y
        })
    });
    let mut opt = Adam::new(AdamConfig {
        lr: 1e-4,
        ..Default::default()
    })
    .unwrap();
    let mut step = 0u64;
    g.bench_function("train_step_16x1x32x32", |b| {
        b.iter(|| {
            step += 1;
            let loss = model
                .loss(&p, &x0, None, &Stream::new(2, "step").at(step))
                .unwrap();
            let grads = p.grads(&loss.backward().unwrap()).unwrap();
            opt.step(&mut p, &grads).unwrap();
            dev.synchronize().unwrap();
        })
    });
    g.bench_function("ddim50_sample_1x1x32x32", |b| {
        b.iter(|| {
            model
                .sample(
                    &p,
                    1,
                    &[32, 32],
                    None,
                    None,
                    Sampling::Ddim {
                        steps: 50,
                        eta: 0.0,
                    },
                    &Stream::new(3, "s"),
                    &dev,
                )
                .unwrap()
        })
    });
    g.finish();

    // The UNet's convolutions alone, to tell how far the time is convolution: a 3×3 conv of
    // 16×Cin×S×S to Cout channels is 2·16·Cout·S²·9·Cin floating-point operations forward,
    // and twice that again for its two gradients (`/grad`: forward + backward).
    let mut g = c.benchmark_group("conv3x3");
    g.sample_size(20);
    for (cin, cout, side) in [
        (32usize, 32usize, 32usize),
        (64, 64, 16),
        (64, 64, 32),
        (128, 64, 8),
    ] {
        let x = candle_core::Var::from_tensor(
            &Stream::new(4, "x")
                .normal_tensor((16, cin, side, side), 0.0, 1.0, DType::F32, &dev)
                .unwrap(),
        )
        .unwrap();
        let w = candle_core::Var::from_tensor(
            &Stream::new(5, "w")
                .normal_tensor((cout, cin, 3, 3), 0.0, 0.1, DType::F32, &dev)
                .unwrap(),
        )
        .unwrap();
        let opts = ConvOpts::<2>::default().padding(1);
        let name = format!("16x{cin}x{side}x{side}_to_{cout}");
        g.bench_function(&name, |b| {
            b.iter(|| {
                let y = ops::conv2d(&x, &w, None, &opts).unwrap();
                dev.synchronize().unwrap();
                y
            })
        });
        g.bench_function(format!("{name}/grad"), |b| {
            b.iter(|| {
                let y = ops::conv2d(&x, &w, None, &opts).unwrap();
                let grads = y.sum_all().unwrap().backward().unwrap();
                dev.synchronize().unwrap();
                grads
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
