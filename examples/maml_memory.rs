//! Peak memory and time of a second-order MAML meta-step through Conv4-64: 5-way 1-shot,
//! 15 queries per class, meta-batch 4, one inner SGD step, 1×28×28 inputs, f32, batch norm
//! with batch statistics. Random inputs: memory and time do not depend on the values.
//!
//! Run: `cargo run --release --example maml_memory`
//! Prints the peak resident set size (VmHWM) of the process and the step time.

use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::{ops, second_order, Ctx, DType, Device, Model, Params, Result, Stream, Tensor};
use std::time::Instant;

fn vm_hwm_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Conv4 embedding and a linear head over all parameters in `p`.
fn logits(model: &Conv4, p: &Params, x: &Tensor) -> Result<Tensor> {
    let z = model.forward(p, x, &mut Ctx::transductive())?;
    ops::linear(&z, p.require("head.weight")?, p.get("head.bias"))
}

fn main() -> Result<()> {
    second_order::enable()?;
    // Peak memory is measured with the allocator's defaults (no retained free memory).
    let dev = Device::Cpu;
    let (n_way, k_shot, n_query, meta_batch, inner_lr) = (5, 1, 15, 4, 0.4);
    let model = Conv4::new(Conv4Config::default())?;
    let rng = Stream::new(0, "maml-memory");
    let mut p = model.init(&rng.child("init"), &dev)?;
    p.insert(
        "head.weight",
        rng.child("head")
            .uniform_tensor((n_way, 64), -0.125, 0.125, DType::F32, &dev)?,
    );
    p.insert("head.bias", Tensor::zeros(n_way, DType::F32, &dev)?);
    let p = p.to_vars()?;
    let labels = |per: usize| -> Result<Tensor> {
        let v: Vec<u32> = (0..n_way as u32)
            .flat_map(|c| std::iter::repeat_n(c, per))
            .collect();
        Ok(Tensor::new(v.as_slice(), &dev)?)
    };
    let (ys, yq) = (labels(k_shot)?, labels(n_query)?);
    let before = vm_hwm_mib().unwrap_or(f64::NAN);
    let mut times = vec![];
    for step in 0..3 {
        let t0 = Instant::now();
        let mut meta_loss: Option<Tensor> = None;
        for task in 0..meta_batch {
            let r = rng.at(step).at(task as u64);
            let xs = r.child("s").uniform_tensor(
                (n_way * k_shot, 1, 28, 28),
                0.0,
                1.0,
                DType::F32,
                &dev,
            )?;
            let xq = r.child("q").uniform_tensor(
                (n_way * n_query, 1, 28, 28),
                0.0,
                1.0,
                DType::F32,
                &dev,
            )?;
            let inner = ops::cross_entropy(&logits(&model, &p, &xs)?, &ys)?;
            let g = p.grads(&inner.backward()?)?;
            let adapted = p.axpy(-inner_lr, &g)?;
            let outer = ops::cross_entropy(&logits(&model, &adapted, &xq)?, &yq)?;
            meta_loss = Some(match meta_loss {
                None => outer,
                Some(m) => (m + outer)?,
            });
        }
        let meta_loss = (meta_loss.expect("meta-batch is not empty") / meta_batch as f64)?;
        let meta_grads = p.grads(&meta_loss.backward()?)?;
        let norm = meta_grads.l2_norm()?.to_scalar::<f32>()?;
        times.push(t0.elapsed().as_secs_f64());
        println!(
            "meta-step {step}: loss {:.4}, |meta-grad| {norm:.4}, {:.2} s",
            meta_loss.to_scalar::<f32>()?,
            times[step as usize]
        );
    }
    let peak = vm_hwm_mib().unwrap_or(f64::NAN);
    println!(
        "second-order MAML, Conv4-64, 5-way 1-shot 15-query, meta-batch 4: peak RSS {peak:.0} MiB \
         (before the first step {before:.0} MiB), meta-step {:.2} s (median of 3)",
        {
            let mut t = times.clone();
            t.sort_by(f64::total_cmp);
            t[1]
        }
    );
    Ok(())
}
