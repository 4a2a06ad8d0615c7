//! The ProtoNet learner against PyTorch (`shared/fixtures/protonet`, f64): Conv4 forward on
//! support and query together, then this crate's `ProtoNet` head — prototypes, logits
//! (squared Euclidean or scaled cosine, per the case's `metric`), cross-entropy loss, and
//! the gradient of every backbone weight (and the embeddings and batch-norm buffers). Every case in the folder is checked, on every
//! device-parity target (`fixture::parity_targets`).

use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::{ops, Ctx, DType, Device, Error, Model, Params, Result, Tensor};
use scarce_fixtures::{check_family_on, rel_err, Case};
use scarce_metric::classifier::prototypes;
use scarce_metric::{FewShotClassifier, Metric, ProtoNet};

/// Relative tolerance in f64, the same on every device.
const TOL: f64 = 1e-10;

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?)
}

fn check(c: &Case, dev: &Device) -> Result<f64> {
    let model = Conv4::new(Conv4Config {
        in_channels: c.meta_json("in_channels")?,
        hidden: c.meta_json("hidden")?,
        bn_eps: c.meta_json("bn_eps").unwrap_or(1e-5),
        ..Default::default()
    })?;
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
    let labels: Vec<u32> = c
        .tensor("support_labels", dev)?
        .to_dtype(DType::I64)?
        .to_vec1::<i64>()?
        .into_iter()
        .map(|v| v as u32)
        .collect();
    let n_way: usize = c.meta_json("n_way")?;
    let head = match c.meta_str("metric")? {
        "euclidean" => ProtoNet::euclidean(),
        "cosine" => ProtoNet {
            metric: Metric::Cosine {
                init_scale: c.meta_json("temperature")?,
                learnable: false,
            },
        },
        m => {
            return Err(Error::param(
                "metric",
                format!("unknown metric `{m}` in {}", c.name),
            ))
        }
    };
    let logits = head.logits(&Params::new(), &zs, &labels, n_way, &zq)?;
    let loss = ops::cross_entropy(&logits, &c.tensor("query_labels", dev)?)?;

    // Conv biases feed batch norm: their true gradient is 0 and both sides hold rounding
    // noise, so errors are relative to max(the tensor's scale, 1e-3 × largest gradient).
    let floor = 1e-3
        * c.tensors
            .iter()
            .filter(|(k, _)| k.starts_with("grad."))
            .map(|(_, t)| max_abs(&t.to_dtype(DType::F64)?))
            .collect::<Result<Vec<f64>>>()?
            .into_iter()
            .fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
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
    // The backbone's side (scarce-core's fixture test checks it too; here it is the input
    // the learner's head starts from).
    cmp("support_embeddings", &zs, c.f64("support_embeddings", dev)?)?;
    cmp("query_embeddings", &zq, c.f64("query_embeddings", dev)?)?;
    for (n, b) in ctx.buffers.iter() {
        cmp(
            &format!("buffer.{n}"),
            b,
            c.f64(&format!("buffer.{n}"), dev)?,
        )?;
    }
    cmp(
        "prototypes",
        &prototypes(&zs, &labels, n_way)?,
        c.f64("prototypes", dev)?,
    )?;
    cmp("logits", &logits, c.f64("logits", dev)?)?;
    cmp("loss", &loss, c.f64("loss", dev)?)?;
    for (n, g) in p.grads(&loss.backward()?)?.iter() {
        cmp(&format!("grad.{n}"), g, c.f64(&format!("grad.{n}"), dev)?)?;
    }
    Ok(worst)
}

/// Conv4's convolution biases (`encoder.{i}.0.bias`) feed batch norm in train mode, which
/// subtracts the batch mean: their gradient is 0 in exact arithmetic.
fn zero_in_exact_arithmetic(name: &str) -> bool {
    name.starts_with("grad.encoder.") && name.ends_with(".0.bias")
}

#[test]
fn protonet_learner_matches_pytorch() {
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
        "the protonet fixture folder holds no case"
    );
}
