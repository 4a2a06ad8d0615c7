use scarce_core::{DType, Device, Stream, Tensor};
use std::time::Instant;
fn time(name: &str, mut f: impl FnMut() -> Tensor) {
    let _ = f();
    let s = Instant::now();
    for _ in 0..5 { let _ = f(); }
    println!("{name:50} {:8.2} ms", s.elapsed().as_secs_f64() / 5.0 * 1e3);
}
fn main() {
    let dev = Device::Cpu;
    let s = Stream::new(1, "p");
    let r = |i, sh: (usize, usize)| s.at(i).normal_tensor(sh, 0.0, 1.0, DType::F32, &dev).unwrap();
    let (o, k, n) = (64, 576, 19600);
    let w = r(0, (o, k)); let wt = r(1, (k, o)); let cols = r(2, (k, n)); let colst = r(3, (n, k));
    let dy = r(4, (o, n)); let dyt = r(5, (n, o));
    time("W[o,k] @ cols[k,n]", || w.matmul(&cols).unwrap());
    time("colsT[n,k] @ WT[k,o]", || colst.matmul(&wt).unwrap());
    time("colsT[n,k] @ W.t()", || colst.matmul(&w.t().unwrap()).unwrap());
    time("dy[o,n] @ cols.t() (dW)", || dy.matmul(&cols.t().unwrap()).unwrap());
    time("W.t() @ dy (dcols)", || w.t().unwrap().matmul(&dy).unwrap());
    time("WT contiguous @ dy", || wt.matmul(&dy).unwrap());
    time("dyT[n,o] @ W[o,k] (dcolsT)", || dyt.matmul(&w).unwrap());
    time("dyT.t() @ colsT (dWT? [o,n]@[n,k])", || dyt.t().unwrap().matmul(&colst).unwrap());
    time("colsT.t() @ dyT ([k,n]@[n,o])", || colst.t().unwrap().matmul(&dyt).unwrap());
}
