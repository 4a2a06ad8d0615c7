use scarce_core::{DType, Device, Stream, Tensor};
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
    let y = s.at(1).normal_tensor((100, 64, 28, 28), 0.0, 1.0, DType::F32, &dev).unwrap();
    let c = s.at(2).normal_tensor((1, 64, 1, 1), 0.0, 1.0, DType::F32, &dev).unwrap();
    let z = x.zeros_like().unwrap();
    time("x + y", || (&x + &y).unwrap());
    time("x * 2 (affine)", || (&x * 2.0).unwrap());
    time("x.broadcast_mul(c [1,C,1,1])", || x.broadcast_mul(&c).unwrap());
    time("x.broadcast_add(c)", || x.broadcast_add(&c).unwrap());
    time("c.broadcast_as(x).add(x)", || (c.broadcast_as(x.shape()).unwrap() + &x).unwrap());
    time("x.reshape(N,C,S).sum(2)", || x.reshape((100, 64, 784)).unwrap().sum(2).unwrap());
    time("x.sum_keepdim([0,2,3])", || x.sum_keepdim(vec![0, 2, 3]).unwrap());
    time("x.gt(0.0)", || x.gt(0.0).unwrap());
    time("x.ge(&z)", || x.ge(&z).unwrap());
    let m = x.gt(0.0).unwrap();
    time("m.where_cond(x, z)", || m.where_cond(&x, &z).unwrap());
    time("m.to_dtype(f32)", || m.to_dtype(DType::F32).unwrap());
    time("zeros_like", || x.zeros_like().unwrap());
    time("x.relu()", || x.relu().unwrap());
    time("x.sqr()", || x.sqr().unwrap());
    time("x.exp()", || x.exp().unwrap());
    time("x.transpose(0,1).contiguous()", || x.transpose(0, 1).unwrap().contiguous().unwrap());
    time("x.sum_all()", || x.sum_all().unwrap());
    let idx = Tensor::arange(0u32, 28, &dev).unwrap();
    time("index_select dim 3 (28)", || x.index_select(&idx, 3).unwrap());
    time("x.copy()", || x.copy().unwrap());
}
