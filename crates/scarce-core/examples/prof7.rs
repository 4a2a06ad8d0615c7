use scarce_core::{DType, Device, Stream, Tensor};
use std::time::Instant;
fn time(name: &str, mut f: impl FnMut() -> Tensor) -> Tensor {
    let y = f();
    let s = Instant::now();
    for _ in 0..5 { let _ = f(); }
    println!("{name:40} {:8.2} ms", s.elapsed().as_secs_f64() / 5.0 * 1e3);
    y
}
fn main() {
    let dev = Device::Cpu;
    let s = Stream::new(1, "p");
    let w = s.at(1).normal_tensor((64, 9), 0.0, 1.0, DType::F32, &dev).unwrap();
    let cols = s.at(2).normal_tensor((9, 78400), 0.0, 1.0, DType::F32, &dev).unwrap();
    let y = time("matmul [64,9]@[9,78400]", || w.matmul(&cols).unwrap());
    let colst = s.at(3).normal_tensor((78400, 9), 0.0, 1.0, DType::F32, &dev).unwrap();
    time("matmul [78400,9]@[9,64]", || colst.matmul(&w.t().unwrap()).unwrap());
    let y3 = y.reshape((64, 100, 784)).unwrap();
    time("transpose(0,1).contiguous", || y3.transpose(0, 1).unwrap().contiguous().unwrap());
    let x = s.at(0).normal_tensor((100, 64, 28, 28), 0.0, 1.0, DType::F32, &dev).unwrap();
    time("x.to_vec1 copy", || { let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap(); Tensor::new(&v[..1], &dev).unwrap() });
}
