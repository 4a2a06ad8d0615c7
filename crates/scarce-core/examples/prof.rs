use scarce_core::{ops, DType, Device, Stream, Tensor};
use std::time::Instant;
fn t<F: FnMut() -> Tensor>(name: &str, mut f: F) {
    let _ = f();
    let s = Instant::now();
    let n = 5;
    for _ in 0..n { let y = f(); let g = y.sum_all().unwrap().backward().unwrap(); drop(g); }
    let fb = s.elapsed().as_secs_f64() / n as f64 * 1e3;
    let s = Instant::now();
    for _ in 0..n { let _ = f(); }
    let fw = s.elapsed().as_secs_f64() / n as f64 * 1e3;
    println!("{name:30} fwd {fw:8.2} ms  fwd+bwd {fb:8.2} ms");
}
fn main() {
    let dev = Device::Cpu;
    let s = Stream::new(1, "p");
    let x = candle_core::Var::from_tensor(&s.at(0).normal_tensor((100, 64, 28, 28), 0.0, 1.0, DType::F32, &dev).unwrap()).unwrap();
    let x = x.as_tensor().clone();
    let x14 = candle_core::Var::from_tensor(&s.at(0).normal_tensor((100, 64, 14, 14), 0.0, 1.0, DType::F32, &dev).unwrap()).unwrap().as_tensor().clone();
    let w = candle_core::Var::from_tensor(&s.at(1).normal_tensor((64, 64, 3, 3), 0.0, 0.05, DType::F32, &dev).unwrap()).unwrap().as_tensor().clone();
    let g = candle_core::Var::from_tensor(&Tensor::ones(64, DType::F32, &dev).unwrap()).unwrap().as_tensor().clone();
    let o = ops::ConvOpts::default().padding(1);
    t("conv 14x14", || ops::conv2d(&x14, &w, None, &o).unwrap());
    t("bn 28x28", || ops::batch_norm_train(&x, Some(&g), Some(&g), 1e-5).unwrap().0);
    t("relu 28x28", || ops::relu(&x).unwrap());
    t("candle relu 28x28", || x.relu().unwrap());
    t("maxpool 28x28", || ops::max_pool2d(&x, &ops::PoolOpts::new(2)).unwrap());
    t("mul 28x28", || (&x * &x).unwrap());
    t("sum_keepdim 0,2,3", || x.sum_keepdim(vec![0, 2, 3]).unwrap());
    let a = s.at(5).normal_tensor((64, 576), 0.0, 1.0, DType::F32, &dev).unwrap();
    let b = s.at(6).normal_tensor((576, 19600), 0.0, 1.0, DType::F32, &dev).unwrap();
    let st = Instant::now(); for _ in 0..5 { let _ = a.matmul(&b).unwrap(); } println!("matmul 64x576x19600 {:.2} ms", st.elapsed().as_secs_f64()/5.0*1e3);
    let c = s.at(7).normal_tensor((64, 19600), 0.0, 1.0, DType::F32, &dev).unwrap();
    let st = Instant::now(); for _ in 0..5 { let _ = c.matmul(&b.t().unwrap()).unwrap(); } println!("matmul dW (c @ b^T) {:.2} ms", st.elapsed().as_secs_f64()/5.0*1e3);
    let st = Instant::now(); for _ in 0..5 { let _ = a.t().unwrap().matmul(&c).unwrap(); } println!("matmul dcols (a^T @ c) {:.2} ms", st.elapsed().as_secs_f64()/5.0*1e3);
}
