use candle_core::Var;
use scarce_core::{ops, DType, Device, Stream, Tensor};
use std::time::Instant;
fn seed_loss(y: &Tensor, r: &Tensor) -> Tensor {
    y.flatten_all()
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .matmul(r)
        .unwrap()
}
fn time(name: &str, inputs: &[&Tensor], f: impl Fn() -> Tensor) -> Tensor {
    let y = f();
    let r = Stream::new(5, "r")
        .normal_tensor((y.elem_count(), 1), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let reps = 6;
    let (mut tf, mut tb) = (0.0, 0.0);
    for i in 0..reps {
        let t0 = Instant::now();
        let y = f();
        let l = seed_loss(&y, &r);
        let t1 = Instant::now();
        let g = l.backward().unwrap();
        let t2 = Instant::now();
        for x in inputs {
            assert!(g.get(x).is_some());
        }
        if i > 0 {
            tf += (t1 - t0).as_secs_f64();
            tb += (t2 - t1).as_secs_f64();
        }
    }
    println!(
        "{name:28} fwd {:7.2} ms  bwd {:7.2} ms",
        tf / (reps - 1) as f64 * 1e3,
        tb / (reps - 1) as f64 * 1e3
    );
    y.detach()
}
fn v(t: Tensor) -> Tensor {
    Var::from_tensor(&t).unwrap().as_tensor().clone()
}
fn main() {
    let dev = Device::Cpu;
    let s = Stream::new(1, "p");
    let x0 = s
        .at(0)
        .normal_tensor((100, 1, 28, 28), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let mut x = x0.clone();
    let mut cin = 1;
    for layer in 0..3 {
        let w = v(s
            .at(10 + layer)
            .normal_tensor((64, cin, 3, 3), 0.0, 0.1, DType::F32, &dev)
            .unwrap());
        let b = v(Tensor::zeros(64, DType::F32, &dev).unwrap());
        let g = v(Tensor::ones(64, DType::F32, &dev).unwrap());
        let be = v(Tensor::zeros(64, DType::F32, &dev).unwrap());
        let xin = if layer == 0 { x.clone() } else { v(x.clone()) };
        let ins: Vec<&Tensor> = if layer == 0 { vec![&w] } else { vec![&w, &xin] };
        println!("layer {layer} input {:?}", x.dims());
        let y = time("  conv", &ins, || {
            ops::conv2d(&xin, &w, Some(&b), &ops::ConvOpts::default().padding(1)).unwrap()
        });
        let yv = v(y.clone());
        time("  (baseline affine)", &[&yv], || {
            yv.affine(1.0, 0.0).unwrap()
        });
        let y = time("  bn", &[&yv], || {
            ops::batch_norm_train(&yv, Some(&g), Some(&be), 1e-5)
                .unwrap()
                .0
        });
        let yv = v(y.clone());
        let y = time("  pool", &[&yv], || {
            ops::max_pool2d(&yv, &ops::PoolOpts::new(2)).unwrap()
        });
        let yv = v(y.clone());
        x = time("  relu", &[&yv], || ops::relu(&yv).unwrap());
        cin = 64;
    }
}
