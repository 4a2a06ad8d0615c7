//! Meta-gradients against PyTorch float64 (`fixtures/maml/`, README there): MAML second and
//! first order, Meta-SGD (parameters and rates), Reptile and ANIL, on the sinusoid MLP and a
//! small CNN with batch norm. Every case file in the folder is checked; settings and shapes
//! come from each file. Every case runs on every device-parity target (`fixture::parity_targets`).

use candle_core::{DType, Device, Tensor};
use scarce_core::backbone::{Conv4, Conv4Config, Mlp, MlpConfig};
use scarce_core::fixture::{check_family_on, Case};
use scarce_core::{Ctx, Model, Params};
use scarce_meta::{Algorithm, Loss, MetaLearner, MetaState, Order, Task, WithHead};

/// Relative tolerance in f64, the same on every device.
const TOL: f64 = 1e-8;

type R<T> = scarce_core::Result<T>;

fn meta_err(e: scarce_meta::Error) -> scarce_core::Error {
    scarce_core::Error::param("scarce-meta", e.to_string())
}

/// Our name for a fixture parameter: the CNN's `features.{4i+j}` is block `i` of Conv4
/// (`j` = 0 conv, 1 batch norm) and `classifier` is the head; MLP names are PyTorch's already.
fn our_name(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("features.") {
        if let Some((k, field)) = rest.split_once('.') {
            if let Ok(k) = k.parse::<usize>() {
                return format!("encoder.{}.{}.{field}", k / 4, k % 4);
            }
        }
    }
    if let Some(field) = name.strip_prefix("classifier.") {
        return format!("head.{field}");
    }
    name.to_string()
}

/// The tensors of `case` whose names start with `prefix`, renamed to ours; for a meta-batch
/// entry `task` is selected along the leading axis.
fn group(case: &Case, dev: &Device, prefix: &str, task: Option<usize>) -> R<Params> {
    let mut names: Vec<&String> = case
        .tensors
        .keys()
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    let mut p = Params::new();
    for n in names {
        let mut t = case.f64(n, dev)?;
        if let Some(i) = task {
            t = t.get(i)?;
        }
        p.insert(our_name(&n[prefix.len()..]), t);
    }
    Ok(p)
}

/// The largest difference over a group of tensors relative to the group's largest value.
/// Per-tensor scaling would not do: the gradient of a conv bias followed by batch norm is 0
/// in exact arithmetic, and both PyTorch and we return rounding noise there.
fn largest_err(ours: &Params, want: &Params, what: &str) -> R<f64> {
    let mut scale = 1e-300f64;
    for (_, w) in want.iter() {
        scale = scale.max(w.abs()?.max_all()?.to_scalar::<f64>()?);
    }
    let mut worst = 0.0f64;
    for (n, w) in want.iter() {
        let o = ours.require(n)?;
        if o.dims() != w.dims() {
            return Err(scarce_core::Error::shape(
                format!("{what}.{n}"),
                format!("{:?}", w.dims()),
                o.dims(),
            ));
        }
        let e = (o - w)?.abs()?.max_all()?.to_scalar::<f64>()? / scale;
        if e.is_nan() || e > TOL {
            return Err(scarce_core::Error::param(
                format!("{what}.{n}"),
                format!("relative error {e:.3e} > {TOL:e}"),
            ));
        }
        worst = worst.max(e);
    }
    Ok(worst)
}

fn labels(t: Tensor) -> R<Tensor> {
    Ok(t.to_dtype(DType::U32)?)
}

/// Task `i` of the case (support/query, or Reptile's points as both).
fn task(case: &Case, dev: &Device, i: Option<usize>, classification: bool) -> R<Task> {
    let get = |name: &str| -> R<Tensor> {
        let t = case.f64(name, dev)?;
        Ok(match i {
            Some(i) => t.get(i)?,
            None => t,
        })
    };
    let y = |name: &str| -> R<Tensor> {
        if classification {
            let t = case.tensor(name, dev)?;
            labels(match i {
                Some(i) => t.get(i)?,
                None => t,
            })
        } else {
            get(name)
        }
    };
    if case.has("x") {
        return Ok(Task {
            support_x: get("x")?,
            support_y: get("y")?,
            query_x: get("x")?,
            query_y: get("y")?,
        });
    }
    Ok(Task {
        support_x: get("support_x")?,
        support_y: y("support_y")?,
        query_x: get("query_x")?,
        query_y: y("query_y")?,
    })
}

fn num(case: &Case, key: &str) -> R<f64> {
    case.meta_str(key)?
        .parse()
        .map_err(|_| scarce_core::Error::param(key, "not a number in the case metadata"))
}

fn check_case(case: &Case, dev: &Device) -> R<f64> {
    let algorithm = case.meta_str("algorithm")?.to_string();
    let model_name = case.meta_str("model")?.to_string();
    let steps = num(case, "inner_steps")? as usize;
    let meta_batch = num(case, "meta_batch")? as usize;
    let lr = if case.meta.contains_key("inner_lr") {
        num(case, "inner_lr")?
    } else {
        0.01 // Meta-SGD: the starting value only; the rates come from the `lr.*` tensors
    };
    let params = group(case, dev, "param.", None)?;
    let classification = model_name.starts_with("cnn");
    let tasks: Vec<Task> = if meta_batch > 1 {
        (0..meta_batch)
            .map(|i| task(case, dev, Some(i), classification))
            .collect::<R<_>>()?
    } else {
        vec![task(case, dev, None, classification)?]
    };
    if classification {
        // Conv blocks of `hidden` channels on the image; read every size from the tensors.
        let w0 = params.require("encoder.0.0.weight")?.dims().to_vec();
        let blocks = params
            .names()
            .iter()
            .filter(|n| n.ends_with(".0.weight") && n.starts_with("encoder."))
            .count();
        let head = params.require("head.weight")?.dims().to_vec();
        let body = Conv4::new(Conv4Config {
            in_channels: w0[1],
            hidden: w0[0],
            blocks,
            bn_eps: num(case, "bn_eps")?,
            ..Default::default()
        })?;
        let model = WithHead::new(body, head[1], head[0])?;
        run(
            case,
            dev,
            &model,
            Loss::CrossEntropy,
            &algorithm,
            steps,
            lr,
            params,
            &tasks,
        )
    } else {
        let mut sizes = vec![params.require("net.0.weight")?.dim(1)?];
        let mut k = 0;
        while let Some(w) = params.get(&format!("net.{k}.weight")) {
            sizes.push(w.dim(0)?);
            k += 2;
        }
        let model = Mlp::new(MlpConfig::new(&sizes))?;
        run(
            case,
            dev,
            &model,
            Loss::Mse,
            &algorithm,
            steps,
            lr,
            params,
            &tasks,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn run<M: Model>(
    case: &Case,
    dev: &Device,
    model: &M,
    loss: Loss,
    algorithm: &str,
    steps: usize,
    lr: f64,
    params: Params,
    tasks: &[Task],
) -> R<f64> {
    let learner = |alg: Algorithm| MetaLearner::new(model, loss, alg, steps, lr).map_err(meta_err);
    let mut worst = 0.0f64;
    let mut ctx = Ctx::transductive();
    match algorithm {
        "maml" | "anil" => {
            for (order, key) in [(Order::Second, "metagrad."), (Order::First, "fo_metagrad.")] {
                let alg = if algorithm == "maml" {
                    Algorithm::Maml { order }
                } else {
                    Algorithm::Anil { order }
                };
                let l = learner(alg)?;
                let state = MetaState {
                    params: params.clone(),
                    lrs: Params::new(),
                }
                .to_vars()
                .map_err(meta_err)?;
                let g = l
                    .meta_gradient(&state, tasks, 0, &mut ctx)
                    .map_err(meta_err)?;
                worst = worst.max(largest_err(&g.params, &group(case, dev, key, None)?, key)?);
                let want_loss = case.f64("meta_loss", dev)?.to_scalar::<f64>()?;
                worst = worst.max(((g.loss - want_loss) / want_loss).abs());
                for (i, t) in tasks.iter().enumerate() {
                    let (_, adapted) =
                        l.task_objective(&state, t, 0, &mut ctx).map_err(meta_err)?;
                    let want = group(case, dev, "adapted.", (tasks.len() > 1).then_some(i))?;
                    worst = worst.max(largest_err(&adapted.params, &want, "adapted")?);
                }
            }
        }
        "meta-sgd" => {
            let l = learner(Algorithm::MetaSgd)?;
            let state = MetaState {
                params: params.clone(),
                lrs: group(case, dev, "lr.", None)?,
            }
            .to_vars()
            .map_err(meta_err)?;
            let g = l
                .meta_gradient(&state, tasks, 0, &mut ctx)
                .map_err(meta_err)?;
            worst = worst.max(largest_err(
                &g.params,
                &group(case, dev, "metagrad.", None)?,
                "metagrad",
            )?);
            worst = worst.max(largest_err(
                &g.lrs,
                &group(case, dev, "metagrad_lr.", None)?,
                "metagrad_lr",
            )?);
        }
        "reptile" => {
            let eps = num(case, "epsilon")?;
            let l = learner(Algorithm::Reptile)?;
            let state = MetaState {
                params: params.clone(),
                lrs: Params::new(),
            };
            let g = l
                .meta_gradient(&state, tasks, 0, &mut ctx)
                .map_err(meta_err)?;
            // One outer SGD step of size ε on Reptile's direction.
            let updated = params.axpy(-eps, &g.params)?;
            worst = worst.max(largest_err(
                &updated,
                &group(case, dev, "reptile.", None)?,
                "reptile",
            )?);
        }
        other => {
            return Err(scarce_core::Error::param(
                "algorithm",
                format!("{other}: not one this test knows"),
            ))
        }
    }
    Ok(worst)
}

#[test]
fn maml_family_matches_pytorch() {
    let targets = scarce_core::fixture::parity_targets();
    let Some(report) = check_family_on("maml", &targets, check_case).unwrap() else {
        return;
    };
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.checked > 0, "no maml fixture cases found");
}
