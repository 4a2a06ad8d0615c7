use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::optim::{Adam, AdamConfig, Optimizer};
use scarce_core::{ops, Ctx, DType, Device, Model, Stream, Tensor};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    let model = Conv4::new(Conv4Config::default()).unwrap();
    let mut params = model
        .init(&Stream::new(0, "init"), &dev)
        .unwrap()
        .to_vars()
        .unwrap();
    let mut opt = Adam::new(AdamConfig::default()).unwrap();
    let x = Stream::new(0, "images")
        .normal_tensor((100, 1, 28, 28), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let yq: Vec<u32> = (0..5u32).flat_map(|c| std::iter::repeat_n(c, 15)).collect();
    let yq = Tensor::new(yq.as_slice(), &dev).unwrap();
    let (mut tf, mut tb, mut to) = (0.0, 0.0, 0.0);
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut buffers = model.buffers(&dev).unwrap();
    for it in 0..iters {
        let t0 = Instant::now();
        let mut ctx = Ctx::train(std::mem::take(&mut buffers));
        let z = model.forward(&params, &x, &mut ctx).unwrap();
        let protos = z
            .narrow(0, 0, 25)
            .unwrap()
            .reshape((5, 5, 64))
            .unwrap()
            .mean(1)
            .unwrap();
        let zq = z.narrow(0, 25, 75).unwrap();
        let d = zq
            .unsqueeze(1)
            .unwrap()
            .broadcast_sub(&protos.unsqueeze(0).unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .sum(2)
            .unwrap();
        let loss = ops::cross_entropy(&d.neg().unwrap(), &yq).unwrap();
        let t1 = Instant::now();
        let g = params.grads(&loss.backward().unwrap()).unwrap();
        let t2 = Instant::now();
        opt.step(&mut params, &g).unwrap();
        buffers = ctx.buffers;
        let t3 = Instant::now();
        if it == 2 {}
        if it == 2 {}
        if it >= 3 {
            tf += (t1 - t0).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
            to += (t3 - t2).as_secs_f64();
        }
    }
    let n = (iters - 3) as f64 / 1e3;
    println!(
        "forward {:.1} ms backward {:.1} ms adam {:.1} ms",
        tf / n,
        tb / n,
        to / n
    );
}
