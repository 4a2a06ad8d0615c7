use scarce_core::{ops, DType, Device, Stream, Tensor};
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
    let mut x = s.at(0).normal_tensor((100, 1, 28, 28), 0.0, 1.0, DType::F32, &dev).unwrap();
    let mut cin = 1;
    for layer in 0..4 {
        let w = s.at(10 + layer).normal_tensor((64, cin, 3, 3), 0.0, 0.1, DType::F32, &dev).unwrap();
        let b = Tensor::zeros(64, DType::F32, &dev).unwrap();
        let g = Tensor::ones(64, DType::F32, &dev).unwrap();
        println!("layer {layer} input {:?}", x.dims());
        let y = time("  conv", || ops::conv2d(&x, &w, Some(&b), &ops::ConvOpts::default().padding(1)).unwrap());
        let y = time("  bn", || ops::batch_norm_train(&y, Some(&g), Some(&b), 1e-5).unwrap().0);
        let y = time("  relu", || ops::relu(&y).unwrap());
        x = time("  pool", || ops::max_pool2d(&y, &ops::PoolOpts::new(2)).unwrap());
        cin = 64;
    }
}
