use scarce_core::{ops, DType, Device, Stream};
use std::time::Instant;
fn main() {
    let x = Stream::new(1, "p").normal_tensor((100, 64, 28, 28), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let s = Instant::now();
    for _ in 0..20 { let _ = ops::max_pool2d(&x, &ops::PoolOpts::new(2)).unwrap(); }
    println!("pool {:.2} ms", s.elapsed().as_secs_f64() / 20.0 * 1e3);
}
