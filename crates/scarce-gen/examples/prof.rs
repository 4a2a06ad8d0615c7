use candle_core::{DType, Device, Tensor};
use scarce_core::ops::{self, ConvOpts};
use scarce_core::Stream;
use std::time::Instant;
fn time<F: FnMut()>(name: &str, mut f: F) {
    f();
    let t = Instant::now();
    for _ in 0..5 { f(); }
    println!("{name:40} {:8.2} ms", t.elapsed().as_secs_f64() * 1e3 / 5.0);
}
fn main() {
    {
        let d = Device::Cpu;
        let m = scarce_gen::Diffusion::new(Default::default()).unwrap();
        let p = m.init(&Stream::new(0, "i"), &d).unwrap();
        let x = Stream::new(1, "x").normal_tensor((16, 1, 32, 32), 0.0, 1.0, DType::F32, &d).unwrap();
        let t: Vec<f64> = (0..16).map(|i| i as f64 * 50.0).collect();
        time("unet forward", || { m.unet.forward(&p, &x, &t, None).unwrap(); });
        if std::env::var("ONLY").is_ok() { for _ in 0..20 { m.unet.forward(&p, &x, &t, None).unwrap(); } return; }
    }
    let d = Device::Cpu;
    let s = Stream::new(0, "x");
    for (c, hw) in [(32usize, 32usize), (64, 16), (64, 8)] {
        let x = s.normal_tensor((16, c, hw, hw), 0.0, 1.0, DType::F32, &d).unwrap();
        let w = s.normal_tensor((c, c, 3, 3), 0.0, 0.1, DType::F32, &d).unwrap();
        let b = Tensor::zeros(c, DType::F32, &d).unwrap();
        let o = ConvOpts::<2>::default().padding(1);
        time(&format!("conv3x3 c{c} {hw}"), || { ops::conv2d(&x, &w, Some(&b), &o).unwrap(); });
        let g = Tensor::ones(c, DType::F32, &d).unwrap();
        time(&format!("group_norm c{c} {hw}"), || { ops::group_norm(&x, 32, Some(&g), Some(&b), 1e-6).unwrap(); });
        time(&format!("silu c{c} {hw}"), || { x.silu().unwrap(); });
        time(&format!("add c{c} {hw}"), || { (&x + &x).unwrap(); });
        time(&format!("cat c{c} {hw}"), || { Tensor::cat(&[&x, &x], 1).unwrap(); });
        time(&format!("upsample c{c} {hw}"), || { ops::interpolate(&x, &ops::Resize::Scale(vec![2.0, 2.0]), ops::InterpMode::Nearest).unwrap(); });
        let x2 = Tensor::cat(&[&x, &x], 1).unwrap();
        let w2 = s.normal_tensor((c, 2 * c, 3, 3), 0.0, 0.1, DType::F32, &d).unwrap();
        time(&format!("conv3x3 2c->c c{c} {hw}"), || { ops::conv2d(&x2, &w2, Some(&b), &o).unwrap(); });
    }
}
