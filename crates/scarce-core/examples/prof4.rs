use scarce_core::{ops, DType, Device, Stream, Tensor};
use std::time::Instant;
fn time(name: &str, mut f: impl FnMut() -> Tensor) {
    let _ = f();
    let s = Instant::now();
    for _ in 0..5 { let _ = f(); }
    println!("{name:40} {:8.2} ms", s.elapsed().as_secs_f64() / 5.0 * 1e3);
}
fn main() {
    let dev = Device::Cpu;
    let s = Stream::new(1, "p");
    let x = s.at(0).normal_tensor((100, 64, 28, 28), 0.0, 1.0, DType::F32, &dev).unwrap();
    let c = s.at(2).normal_tensor(64, 0.0, 1.0, DType::F32, &dev).unwrap();
    time("relu (gate)", || ops::relu(&x).unwrap());
    time("channel_sum", || ops::channel_sum(&x).unwrap());
    time("channel_expand", || ops::channel_expand(&c, x.dims()).unwrap());
    time("x.relu()", || x.relu().unwrap());
    let m = ops::channel_sum(&x).unwrap();
    time("x - expand(m)", || (&x - ops::channel_expand(&m, x.dims()).unwrap()).unwrap());
    time("x.sqr()", || x.sqr().unwrap());
    time("x * x", || (&x * &x).unwrap());
    time("x - x", || (&x - &x).unwrap());
    time("bn fwd", || ops::batch_norm_train(&x, Some(&c), Some(&c), 1e-5).unwrap().0);
    time("vec alloc+fill 5M", || Tensor::zeros(x.shape(), DType::F32, &dev).unwrap());
}
#[allow(dead_code)]
fn more() {}
