//! Meta-gradients against PyTorch float64 (`fixtures/maml/`, README there): MAML second and
//! first order, Meta-SGD (parameters and rates), Reptile and ANIL, on the sinusoid MLP and a
//! small CNN with batch norm. Every case file in the folder is checked; settings and shapes
//! come from each file. Every case runs on every device-parity target (`fixture::parity_targets`).

use candle_core::{DType, Device, Tensor};
use scarce_core::backbone::{Conv4, Conv4Config, Mlp, MlpConfig};
use scarce_core::{Ctx, Model, Params};
use scarce_fixtures::{check_family_on, rel_err, rel_err_slices, within, Case};
use scarce_meta::{Adapted, Algorithm, Loss, MetaLearner, MetaState, Order, Task, WithHead};

/// Relative tolerance in f64, the same on every device.
const TOL: f64 = 1e-10;

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
        scale = scale.max(max_abs(w)?);
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
        let e = rel_err(o, w)? * max_abs(w)?.max(1e-300) / scale;
        within(&format!("{what}.{n}"), e, TOL)?;
        worst = worst.max(e);
    }
    Ok(worst)
}

/// The largest |entry| (NaN-blind; [`rel_err`] catches NaN).
fn max_abs(t: &Tensor) -> R<f64> {
    let v = t.flatten_all()?.to_vec1::<f64>()?;
    Ok(v.iter()
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs())))
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

/// The tensor `name` flattened to values.
fn values(case: &Case, dev: &Device, name: &str) -> R<Vec<f64>> {
    Ok(case.f64(name, dev)?.flatten_all()?.to_vec1::<f64>()?)
}

/// `got` against the case's tensor `name` (flattened; a length mismatch fails).
fn compare(case: &Case, dev: &Device, name: &str, got: &[f64]) -> R<f64> {
    let e = rel_err_slices(got, &values(case, dev, name)?)?;
    within(name, e, TOL)
}

/// The adapted parameters and inner losses of every task against `adapted.*` and
/// `inner_losses` (`[steps]`, or `[B, steps]` in task order).
fn compare_inner_loops(case: &Case, dev: &Device, adapted: &[Adapted], what: &str) -> R<f64> {
    let mut worst = 0.0f64;
    let batch = adapted.len() > 1;
    for (i, a) in adapted.iter().enumerate() {
        let want = group(case, dev, "adapted.", batch.then_some(i))?;
        // ANIL's `adapted.*` holds the head only; every tensor it holds must match.
        worst = worst.max(largest_err(&a.params, &want, what)?);
    }
    let losses: Vec<f64> = adapted
        .iter()
        .flat_map(|a| a.support_losses.iter().copied())
        .collect();
    Ok(worst.max(compare(case, dev, "inner_losses", &losses)?))
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
    // Task parameters of the sinusoid meta-batches: the task points themselves are stored.
    case.not_compared(
        "amplitude",
        "sinusoid task parameter; the task points are given",
    );
    case.not_compared(
        "phase",
        "sinusoid task parameter; the task points are given",
    );
    let mut worst = 0.0f64;
    let mut ctx = Ctx::transductive();
    // (algorithm, the fixture's meta-gradient prefix) for the learners with an objective.
    let runs: Vec<(Algorithm, &str)> = match algorithm {
        "maml" => vec![
            (
                Algorithm::Maml {
                    order: Order::Second,
                },
                "metagrad.",
            ),
            (
                Algorithm::Maml {
                    order: Order::First,
                },
                "fo_metagrad.",
            ),
        ],
        "anil" => vec![
            (
                Algorithm::Anil {
                    order: Order::Second,
                },
                "metagrad.",
            ),
            (
                Algorithm::Anil {
                    order: Order::First,
                },
                "fo_metagrad.",
            ),
        ],
        "meta-sgd" => vec![(Algorithm::MetaSgd, "metagrad.")],
        "reptile" => {
            let eps = num(case, "epsilon")?;
            let l = learner(Algorithm::Reptile)?;
            let state = MetaState {
                params: params.clone(),
                lrs: Params::new(),
            };
            let adapted = tasks
                .iter()
                .map(|t| {
                    l.adapt(&state, t, steps, Order::First, &mut ctx)
                        .map_err(meta_err)
                })
                .collect::<R<Vec<_>>>()?;
            worst = worst.max(compare_inner_loops(case, dev, &adapted, "adapted")?);
            let g = l
                .meta_gradient(&state, tasks, 0, &mut ctx)
                .map_err(meta_err)?;
            // One outer SGD step of size ε on Reptile's direction.
            let updated = params.axpy(-eps, &g.params)?;
            return Ok(worst.max(largest_err(
                &updated,
                &group(case, dev, "reptile.", None)?,
                "reptile",
            )?));
        }
        other => {
            return Err(scarce_core::Error::param(
                "algorithm",
                format!("{other}: not one this test knows"),
            ))
        }
    };
    let lrs = if algorithm == "meta-sgd" {
        group(case, dev, "lr.", None)?
    } else {
        Params::new()
    };
    for (alg, key) in runs {
        let l = learner(alg)?;
        let state = MetaState {
            params: params.clone(),
            lrs: lrs.clone(),
        }
        .to_vars()
        .map_err(meta_err)?;
        let g = l
            .meta_gradient(&state, tasks, 0, &mut ctx)
            .map_err(meta_err)?;
        worst = worst.max(largest_err(&g.params, &group(case, dev, key, None)?, key)?);
        if algorithm == "meta-sgd" {
            worst = worst.max(largest_err(
                &g.lrs,
                &group(case, dev, "metagrad_lr.", None)?,
                "metagrad_lr",
            )?);
        }
        worst = worst.max(compare(case, dev, "meta_loss", &[g.loss])?);
        if case.has("query_losses") {
            worst = worst.max(compare(case, dev, "query_losses", &g.task_losses)?);
        }
        let adapted = tasks
            .iter()
            .map(|t| {
                l.task_objective(&state, t, 0, &mut ctx)
                    .map(|(_, a)| a)
                    .map_err(meta_err)
            })
            .collect::<R<Vec<_>>>()?;
        worst = worst.max(compare_inner_loops(case, dev, &adapted, "adapted")?);
    }
    Ok(worst)
}

#[test]
fn maml_family_matches_pytorch() {
    let targets = scarce_fixtures::parity_targets();
    let Some(report) = check_family_on("maml", &targets, check_case).unwrap() else {
        return;
    };
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.checked > 0, "no maml fixture cases found");
}
