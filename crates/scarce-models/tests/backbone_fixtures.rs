//! ResNet-18 and the ViT against torchvision / timm (`shared/fixtures/backbones`): each case's
//! weights rebuilt from the SplitMix64 formula (checked against the stored first elements and
//! sums, and the layout against the stored names, kinds and fan-ins), then one train-mode
//! forward and backward — logits, loss, the input gradient, the stored parameter gradients
//! and rows, every parameter's gradient norm, batch-norm running statistics after the step —
//! and one eval-mode forward — logits, pooled features, the ViT's block-0 attention. In f64
//! to the README's 1e-12 (values) / 1e-10 (gradients), and in f32 to its suggested 1e-5 /
//! 1e-4 / 1e-3. The float32 checkpoint (a `*.weights.safetensors` file written by
//! `safetensors.torch.save_file`) loads by name and reproduces its case's eval logits.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use scarce_core::{ops, Ctx, Error, Model, Params, Result};
use scarce_fixtures::{check_family_on, parity_targets, rel_err, rel_err_slices, within, Case};
use scarce_models::{formula, state_dict, ResNet, ResNetConfig, Stem, TensorSpec, Vit, VitConfig};

/// Tolerances for one precision: eval values, train values, gradients.
struct Tol {
    eval: f64,
    train: f64,
    grad: f64,
}

const F64: Tol = Tol {
    eval: 1e-12,
    train: 1e-12,
    grad: 1e-10,
};
const F32: Tol = Tol {
    eval: 1e-5,
    train: 1e-4,
    grad: 1e-3,
};

enum Net {
    ResNet(ResNet),
    Vit(Vit),
}

impl Net {
    fn from_case(c: &Case) -> Result<Net> {
        let in_channels: usize = c.meta_json("in_channels")?;
        let classes: usize = c.meta_json("num_classes")?;
        match c.meta_str("arch")? {
            "resnet18" => {
                let stem = match c.meta_str("stem")? {
                    "imagenet" => Stem::ImageNet,
                    "cifar" => Stem::Small,
                    s => return Err(Error::param("stem", format!("unknown stem `{s}`"))),
                };
                let mut cfg = ResNetConfig::resnet18(in_channels, classes, stem);
                cfg.bn_eps = c.meta_json("bn_eps")?;
                Ok(Net::ResNet(ResNet::new(cfg)?))
            }
            "vit" => {
                let mut cfg = VitConfig::new(
                    c.meta_json("img_size")?,
                    c.meta_json("patch_size")?,
                    in_channels,
                    classes,
                    (
                        c.meta_json("embed_dim")?,
                        c.meta_json("depth")?,
                        c.meta_json("num_heads")?,
                    ),
                );
                cfg.mlp_ratio = c.meta_json("mlp_ratio")?;
                cfg.ln_eps = c.meta_json("vit.norm_eps")?;
                Ok(Net::Vit(Vit::new(cfg)?))
            }
            a => Err(Error::param("arch", format!("unknown arch `{a}`"))),
        }
    }

    fn layout(&self) -> Vec<TensorSpec> {
        match self {
            Net::ResNet(m) => m.layout(),
            Net::Vit(m) => m.layout(),
        }
    }

    fn model(&self) -> &dyn Model {
        match self {
            Net::ResNet(m) => m,
            Net::Vit(m) => m,
        }
    }

    fn features(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        match self {
            Net::ResNet(m) => m.features(p, x, ctx),
            Net::Vit(m) => m.features(p, x),
        }
    }
}

/// The layout agrees with the stored names, kinds and fan-ins, entry by entry.
fn check_layout(c: &Case, layout: &[TensorSpec]) -> Result<()> {
    let names: Vec<String> = c.meta_json("state_dict_names")?;
    let kinds: Vec<String> = c.meta_json("state_dict_kinds")?;
    let fans: Vec<usize> = c.meta_json("state_dict_fan_in")?;
    if names.len() != layout.len() {
        return Err(Error::param(
            "layout",
            format!("{} tensors where torch has {}", layout.len(), names.len()),
        ));
    }
    for (i, s) in layout.iter().enumerate() {
        if s.name != names[i] || s.kind.as_str() != kinds[i] || s.fan_in != fans[i] {
            return Err(Error::param(
                "layout",
                format!(
                    "entry {i}: {} {} {} where torch has {} {} {}",
                    s.name,
                    s.kind.as_str(),
                    s.fan_in,
                    names[i],
                    kinds[i],
                    fans[i]
                ),
            ));
        }
    }
    Ok(())
}

/// The formula's first element and sum of every tensor against `weights.first` / `.sum`.
fn check_formula(c: &Case, layout: &[TensorSpec], seed: u64) -> Result<f64> {
    let first = c.f64("weights.first", &Device::Cpu)?.to_vec1::<f64>()?;
    let sum = c.f64("weights.sum", &Device::Cpu)?.to_vec1::<f64>()?;
    let mut worst = 0.0f64;
    for (i, s) in layout.iter().enumerate() {
        let n: usize = s.shape.iter().product();
        let v: Vec<f64> = (0..n as u64)
            .map(|e| formula::value(seed, i as u64, e, s.kind, s.fan_in))
            .collect();
        if v[0] != first[i] || v[0].is_nan() {
            return Err(Error::param(
                &s.name,
                format!("formula element 0 = {} where torch has {}", v[0], first[i]),
            ));
        }
        let (total, scale) = v.iter().fold((0.0, 0.0), |(t, a), x| (t + x, a + x.abs()));
        worst = worst.max(within(
            &format!("weights.sum {}", s.name),
            (total - sum[i]).abs() / scale,
            1e-12,
        )?);
    }
    Ok(worst)
}

fn check(c: &Case, dev: &Device, dtype: DType, tol: &Tol) -> Result<f64> {
    if !c.meta.contains_key("arch") {
        return check_checkpoint(c, dev);
    }
    let net = Net::from_case(c)?;
    let layout = net.layout();
    check_layout(c, &layout)?;
    let seed: u64 = c.meta_json("weight_seed")?;
    let worst = std::cell::Cell::new(check_formula(c, &layout, seed)?);
    let (params, buffers) = formula::state(&layout, seed, dtype, dev)?;
    let cmp = |name: &str, got: &Tensor, tol: f64| -> Result<()> {
        let want = c.f64(name, dev)?;
        let got = got.to_dtype(DType::F64)?.reshape(want.shape())?;
        worst.set(worst.get().max(within(name, rel_err(&got, &want)?, tol)?));
        Ok(())
    };

    // Train: batch statistics, running averages updated, one backward.
    let x = c.f64("x", dev)?.to_dtype(dtype)?;
    let labels = c.tensor("labels", dev)?;
    let xv = Var::from_tensor(&x)?;
    let vars = params.to_vars()?;
    let mut ctx = Ctx::train(buffers.clone());
    if let Ok(m) = c.meta_json::<f64>("bn_momentum") {
        ctx.bn_momentum = m;
    }
    let logits = net.model().forward(&vars, xv.as_tensor(), &mut ctx)?;
    let loss = ops::cross_entropy(&logits, &labels)?;
    cmp("train.logits", &logits, tol.train)?;
    cmp("train.loss", &loss, tol.train)?;
    let grads = loss.backward()?;
    let g = |t: &Tensor, name: &str| {
        grads
            .get(t)
            .cloned()
            .ok_or_else(|| Error::param(name, "no gradient reached it"))
    };
    cmp("train.grad_x", &g(xv.as_tensor(), "x")?, tol.grad)?;
    for name in c.meta_json::<Vec<String>>("grad_params")? {
        cmp(
            &format!("train.grad.{name}"),
            &g(vars.require(&name)?, &name)?,
            tol.grad,
        )?;
    }
    let rows: usize = c.meta_json("grad_rows")?;
    for name in c.meta_json::<Vec<String>>("grad_rows_params")? {
        let grad = g(vars.require(&name)?, &name)?.narrow(0, 0, rows)?;
        cmp(&format!("train.grad_rows.{name}"), &grad, tol.grad)?;
    }
    let norms: Vec<f64> = c
        .meta_json::<Vec<String>>("grad_norm_names")?
        .iter()
        .map(|name| -> Result<f64> {
            let t = g(vars.require(name)?, name)?.to_dtype(DType::F64)?;
            Ok(t.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?)
        })
        .collect::<Result<_>>()?;
    let want = c.f64("train.grad_norms", dev)?.to_vec1::<f64>()?;
    worst.set(worst.get().max(within(
        "train.grad_norms",
        rel_err_slices(&norms, &want)?,
        tol.grad,
    )?));
    for name in c.meta_json::<Vec<String>>("buffers")? {
        cmp(
            &format!("train.buffer.{name}"),
            ctx.buffers.require(&name)?,
            tol.train,
        )?;
    }

    // Eval: a fresh model with the formula's running statistics.
    let p = params.detach();
    let mut ctx = Ctx::eval(buffers);
    cmp(
        "eval.logits",
        &net.model().forward(&p, &x, &mut ctx)?,
        tol.eval,
    )?;
    cmp("eval.features", &net.features(&p, &x, &mut ctx)?, tol.eval)?;
    if let Net::Vit(vit) = &net {
        let attn = vit.attention(&p, &x.narrow(0, 0, 1)?, 0)?.i(0)?;
        cmp("eval.attn_block0", &attn, tol.eval)?;
    }
    Ok(worst.get())
}

/// A float32 checkpoint: its sidecar names the case it was written from; every tensor loads
/// by name, equals the formula rounded to f32, and the eval logits match the case's.
fn check_checkpoint(c: &Case, dev: &Device) -> Result<f64> {
    let sidecar = c.path.with_extension("json");
    let text = std::fs::read_to_string(&sidecar).map_err(|source| Error::Io {
        path: sidecar.clone(),
        source,
    })?;
    let side: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: sidecar.clone(),
        reason: e.to_string(),
    })?;
    let source = side["source_case"].as_str().ok_or_else(|| Error::Format {
        path: sidecar.clone(),
        reason: "no source_case".into(),
    })?;
    let dir = c.path.parent().unwrap_or(Path::new("."));
    let case = Case::load(&dir.join(format!("{source}.safetensors")))?;
    let net = Net::from_case(&case)?;
    let layout = net.layout();
    let (params, buffers, report) = state_dict::load(&c.path, &layout, true, DType::F32, dev)?;
    assert!(report.is_clean() && buffers.is_empty());
    let seed: u64 = case.meta_json("weight_seed")?;
    let (want, _) = formula::state(&layout, seed, DType::F32, dev)?;
    for (name, t) in params.iter() {
        // Bit for bit: the file holds the formula's f64 values rounded to f32.
        let stored = c.tensor(name, dev)?;
        for (what, got) in [("loaded", t), ("stored", &stored)] {
            let diff = (got - want.require(name)?)?.abs()?.flatten_all()?.max(0)?;
            if diff.to_scalar::<f32>()? != 0.0 {
                return Err(Error::param(
                    name,
                    format!("{what} tensor differs from the formula"),
                ));
            }
        }
    }
    let x = case.f64("x", dev)?.to_dtype(DType::F32)?;
    let logits = net
        .model()
        .forward(&params, &x, &mut Ctx::eval(Params::new()))?;
    let want = case.f64("eval.logits", dev)?;
    within("checkpoint eval.logits", rel_err(&logits, &want)?, F32.eval)
}

fn run(dtype: DType, tol: &'static Tol) {
    let report = check_family_on("backbones", &parity_targets(), |c, dev| {
        check(c, dev, dtype, tol)
    })
    .expect("reading the backbones fixtures");
    if let Some(r) = report {
        assert!(r.failures.is_empty(), "{:#?}", r.failures);
        assert!(r.checked > 0);
    }
}

#[test]
fn backbones_match_torchvision_and_timm_in_f64() {
    run(DType::F64, &F64);
}

#[test]
fn backbones_match_torchvision_and_timm_in_f32() {
    run(DType::F32, &F32);
}
