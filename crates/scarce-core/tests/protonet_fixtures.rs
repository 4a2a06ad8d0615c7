//! Conv4 against PyTorch on a full ProtoNet episode (`shared/fixtures/protonet`): embeddings,
//! prototypes, logits, loss, every weight gradient and the batch-norm running statistics,
//! in f64, on every device-parity target (`fixture::parity_targets`). The ProtoNet head here is the fixture's definition written with core ops; the
//! learner itself belongs to scarce-metric.

use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::{ops, Ctx, DType, Device, Error, Model, Params, Result, Tensor};
use scarce_fixtures::{check_family_on, rel_err, Case};

/// Relative tolerance in f64, the same on every device.
const TOL: f64 = 1e-10;

fn episode_logits(
    c: &Case,
    zs: &Tensor,
    zq: &Tensor,
    ys: &[i64],
    n_way: usize,
) -> Result<(Tensor, Tensor)> {
    let mut protos = Vec::with_capacity(n_way);
    for k in 0..n_way {
        let rows: Vec<u32> = (0..ys.len())
            .filter(|&i| ys[i] == k as i64)
            .map(|i| i as u32)
            .collect();
        if rows.is_empty() {
            return Err(Error::param(
                "support_labels",
                format!("class {k} has no support example"),
            ));
        }
        let idx = Tensor::new(rows.as_slice(), zs.device())?;
        protos.push(zs.index_select(&idx, 0)?.mean_keepdim(0)?);
    }
    let protos = Tensor::cat(&protos, 0)?;
    let logits = match c.meta_str("metric")? {
        "euclidean" => {
            let diff = zq.unsqueeze(1)?.broadcast_sub(&protos.unsqueeze(0)?)?;
            diff.sqr()?.sum(2)?.neg()?
        }
        "cosine" => {
            let t: f64 = c.meta_json("temperature")?;
            let unit = |z: &Tensor| -> Result<Tensor> {
                let n = z.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
                Ok(z.broadcast_div(&n)?)
            };
            (unit(zq)?.matmul(&unit(&protos)?.t()?)? * t)?
        }
        m => return Err(Error::param("metric", m)),
    };
    Ok((protos, logits))
}

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?)
}

fn check(c: &Case, dev: &Device) -> Result<f64> {
    let config = Conv4Config {
        in_channels: c.meta_json("in_channels")?,
        hidden: c.meta_json("hidden")?,
        bn_eps: c.meta_json("bn_eps").unwrap_or(1e-5),
        ..Default::default()
    };
    let model = Conv4::new(config)?;
    // Weights from the file, by the model's own names (a missing or misnamed one is an error).
    let template = model.init(&scarce_core::Stream::new(0, "names"), dev)?;
    let mut p = Params::new();
    for n in template.names() {
        p.insert(n, c.f64(&format!("param.{n}"), dev)?);
    }
    let p = p.to_vars()?;
    let mut ctx = Ctx::train(model.buffers(dev)?.to_dtype(DType::F64)?);
    ctx.bn_momentum = c.meta_json("bn_momentum").unwrap_or(0.1);
    let xs = c.f64("support_images", dev)?;
    let xq = c.f64("query_images", dev)?;
    let ns = xs.dim(0)?;
    let z = model.forward(&p, &Tensor::cat(&[&xs, &xq], 0)?, &mut ctx)?;
    let (zs, zq) = (z.narrow(0, 0, ns)?, z.narrow(0, ns, z.dim(0)? - ns)?);
    let ys = c
        .tensor("support_labels", dev)?
        .to_dtype(DType::I64)?
        .to_vec1::<i64>()?;
    let (protos, logits) = episode_logits(c, &zs, &zq, &ys, c.meta_json("n_way")?)?;
    let loss = ops::cross_entropy(&logits, &c.tensor("query_labels", dev)?)?;

    let mut worst: f64 = 0.0;
    // Conv biases feed straight into batch norm, so their gradient is zero in exact
    // arithmetic and both sides hold rounding noise (~1e-14). Errors are therefore relative
    // to the tensor's own largest entry, floored at 1e-3 of the case's largest gradient entry.
    let floor = 1e-3
        * c.tensors
            .iter()
            .filter(|(k, _)| k.starts_with("grad."))
            .map(|(_, t)| max_abs(&t.to_dtype(DType::F64)?))
            .collect::<Result<Vec<f64>>>()?
            .into_iter()
            .fold(0.0, f64::max);
    let mut cmp = |name: &str, got: &Tensor, want: Tensor| -> Result<()> {
        let want = want.reshape(got.shape())?;
        let scale = max_abs(&want)?;
        // The floor only for the tensors that are zero in exact arithmetic.
        let floor = if zero_in_exact_arithmetic(name) {
            floor
        } else {
            0.0
        };
        let e = rel_err(got, &want)? * scale.max(1e-300) / scale.max(floor).max(1e-300);
        if e.is_nan() || e > TOL {
            return Err(Error::param(
                name,
                format!("relative error {e:e} > {TOL:e}"),
            ));
        }
        worst = worst.max(e);
        Ok(())
    };
    cmp("support_embeddings", &zs, c.f64("support_embeddings", dev)?)?;
    cmp("query_embeddings", &zq, c.f64("query_embeddings", dev)?)?;
    cmp("prototypes", &protos, c.f64("prototypes", dev)?)?;
    cmp("logits", &logits, c.f64("logits", dev)?)?;
    cmp("loss", &loss, c.f64("loss", dev)?)?;
    let grads = p.grads(&loss.backward()?)?;
    for (n, g) in grads.iter() {
        cmp(&format!("grad.{n}"), g, c.f64(&format!("grad.{n}"), dev)?)?;
    }
    for (n, b) in ctx.buffers.iter() {
        cmp(
            &format!("buffer.{n}"),
            b,
            c.f64(&format!("buffer.{n}"), dev)?,
        )?;
    }
    Ok(worst)
}

/// Conv4's convolution biases (`encoder.{i}.0.bias`) feed batch norm in train mode, which
/// subtracts the batch mean: their gradient is 0 in exact arithmetic.
fn zero_in_exact_arithmetic(name: &str) -> bool {
    name.starts_with("grad.encoder.") && name.ends_with(".0.bias")
}

#[test]
fn conv4_protonet_episode_matches_pytorch() {
    let targets = scarce_fixtures::parity_targets();
    let Some(report) = check_family_on("protonet", &targets, check).unwrap() else {
        return;
    };
    assert!(
        report.failures.is_empty(),
        "failures:\n{}",
        report.failures.join("\n")
    );
    assert!(
        report.checked > 0,
        "the protonet fixture folder exists but holds no case"
    );
}
