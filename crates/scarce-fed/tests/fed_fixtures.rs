//! Every case of `fixtures/fed/` (Flower's own aggregation, float64; README there): the
//! one-round rules, the server optimisers over two rounds with their state, and DP-FedAvg's
//! clipping. Layer count, client count and settings come from each file.

use candle_core::{DType, Device, Tensor};
use scarce_fed::aggregate::{bulyan, krum, mean, median, trimmed_mean, weighted_mean};
use scarce_fed::dp::clip_update;
use scarce_fed::{
    Adaptive, ClientUpdate, ClipNorm, DpFedAvg, FedAvg, FedAvgM, FedOpt, Strategy, Weights,
};
use scarce_fixtures::{check_family, rel_err_slices, within, Case};

const TOL: f64 = 1e-13;
type R<T> = scarce_core::Result<T>;

fn fail(what: &str, reason: String) -> scarce_core::Error {
    scarce_core::Error::param(what, reason)
}

fn fed(e: scarce_fed::Error) -> scarce_core::Error {
    fail("scarce-fed", e.to_string())
}

fn num(case: &Case, key: &str) -> R<f64> {
    case.meta_str(key)?
        .parse()
        .map_err(|_| fail(key, "not a number in the metadata".into()))
}

fn layers(case: &Case) -> R<usize> {
    Ok(num(case, "num_layers")? as usize)
}

fn weights_of(ts: Vec<Tensor>) -> R<Weights> {
    let mut w = Weights {
        names: vec![],
        shapes: vec![],
        layers: vec![],
    };
    for (k, t) in ts.into_iter().enumerate() {
        w.names.push(format!("layer{k}"));
        w.shapes.push(t.dims().to_vec());
        w.layers.push(t.flatten_all()?.to_vec1::<f64>()?);
    }
    Ok(w)
}

/// `prefix.layer{k}` for every layer.
fn model(case: &Case, prefix: &str) -> R<Weights> {
    let ts = (0..layers(case)?)
        .map(|k| case.f64(&format!("{prefix}.layer{k}"), &Device::Cpu))
        .collect::<R<Vec<_>>>()?;
    weights_of(ts)
}

/// The clients of `prefix` (`prefix.clients.layer{k}` `[n, …]`, `prefix.num_examples`).
fn clients(case: &Case, prefix: &str) -> R<Vec<ClientUpdate>> {
    let p = |s: &str| {
        if prefix.is_empty() {
            s.to_string()
        } else {
            format!("{prefix}.{s}")
        }
    };
    let n_examples = case
        .tensor(&p("num_examples"), &Device::Cpu)?
        .to_dtype(DType::I64)?
        .to_vec1::<i64>()?;
    let stacked = (0..layers(case)?)
        .map(|k| case.f64(&p(&format!("clients.layer{k}")), &Device::Cpu))
        .collect::<R<Vec<_>>>()?;
    (0..n_examples.len())
        .map(|i| {
            Ok(ClientUpdate {
                weights: weights_of(stacked.iter().map(|t| t.get(i)).collect::<Result<_, _>>()?)?,
                num_examples: n_examples[i] as u64,
            })
        })
        .collect()
}

fn compare(ours: &Weights, want: &Weights, what: &str) -> R<f64> {
    let a: Vec<f64> = ours.values().collect();
    let b: Vec<f64> = want.values().collect();
    let err = rel_err_slices(&a, &b)?;
    let agrees = err <= TOL; // false for NaN
    if ours.shapes != want.shapes || !agrees {
        return Err(fail(
            what,
            format!(
                "relative error {err:.2e} (shapes {:?} vs {:?})",
                ours.shapes, want.shapes
            ),
        ));
    }
    Ok(err)
}

fn ints(case: &Case, name: &str) -> R<Vec<usize>> {
    Ok(case
        .tensor(name, &Device::Cpu)?
        .to_dtype(DType::I64)?
        .flatten_all()?
        .to_vec1::<i64>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

fn vector(case: &Case, name: &str) -> R<Vec<f64>> {
    Ok(case
        .f64(name, &Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

fn close(a: &[f64], b: &[f64], what: &str) -> R<f64> {
    within(what, rel_err_slices(a, b)?, TOL)
}

fn check_case(case: &Case) -> R<f64> {
    let rule = case
        .meta
        .get("function")
        .or_else(|| case.meta.get("strategy"))
        .cloned()
        .unwrap_or_default();
    // `flwr.server.strategy.aggregate.aggregate_krum` -> `aggregate_krum`;
    // `flwr.server.strategy.FedAdam` -> `FedAdam`; a wrapper `W(Inner())` -> `W`.
    let rule_name = rule
        .split('(')
        .next()
        .unwrap_or("")
        .trim()
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_string();
    match rule_name.as_str() {
        "aggregate" => {
            let c = clients(case, "")?;
            let e = compare(
                &weighted_mean(&c).map_err(fed)?,
                &model(case, "expected")?,
                "fedavg",
            )?;
            Ok(e.max(compare(
                &FedAvg.aggregate(1, &c).map_err(fed)?,
                &model(case, "expected_inplace")?,
                "fedavg inplace",
            )?))
        }
        "aggregate_median" => compare(
            &median(&clients(case, "")?).map_err(fed)?,
            &model(case, "expected")?,
            "median",
        ),
        "aggregate_trimmed_avg" => compare(
            &trimmed_mean(&clients(case, "")?, num(case, "proportiontocut")?).map_err(fed)?,
            &model(case, "expected")?,
            "trimmed mean",
        ),
        "aggregate_krum" => {
            let out = krum(
                &clients(case, "")?,
                num(case, "num_malicious")? as usize,
                num(case, "to_keep")? as usize,
            )
            .map_err(fed)?;
            let mut sel = ints(case, "selected")?;
            sel.sort_unstable();
            if out.selected != sel {
                return Err(fail(
                    "selected",
                    format!("{:?}, Flower {sel:?}", out.selected),
                ));
            }
            let flat: Vec<f64> = out.distances.concat();
            let e = close(&flat, &vector(case, "distance_matrix")?, "distance_matrix")?;
            let e = e.max(close(&out.scores, &vector(case, "scores")?, "scores")?);
            Ok(e.max(compare(&out.weights, &model(case, "expected")?, "krum")?))
        }
        "aggregate_bulyan" => {
            let (w, picked) =
                bulyan(&clients(case, "")?, num(case, "num_malicious")? as usize).map_err(fed)?;
            let want = ints(case, "selected")?;
            if picked != want {
                return Err(fail("selected", format!("{picked:?}, Flower {want:?}")));
            }
            compare(&w, &model(case, "expected")?, "bulyan")
        }
        "FedAvgM" | "FedAdam" | "FedYogi" | "FedAdagrad" => {
            let init = model(case, "init")?;
            let mut strategy: Box<dyn Strategy> = match rule_name.as_str() {
                "FedAvgM" => Box::new(FedAvgM::new(
                    init,
                    num(case, "server_learning_rate")?,
                    num(case, "server_momentum")?,
                )),
                other => {
                    let kind = match other {
                        "FedAdam" => Adaptive::Adam,
                        "FedYogi" => Adaptive::Yogi,
                        _ => Adaptive::Adagrad,
                    };
                    Box::new(FedOpt::new(
                        kind,
                        init,
                        num(case, "eta")?,
                        num(case, "beta_1")?,
                        num(case, "beta_2")?,
                        num(case, "tau")?,
                    ))
                }
            };
            let mut worst = 0.0f64;
            for r in 1..=num(case, "rounds")? as u64 {
                let c = clients(case, &format!("r{r}"))?;
                worst = worst.max(compare(
                    &weighted_mean(&c).map_err(fed)?,
                    &model(case, &format!("r{r}.fedavg"))?,
                    "round fedavg",
                )?);
                let g = strategy.aggregate(r, &c).map_err(fed)?;
                worst = worst.max(compare(
                    &g,
                    &model(case, &format!("r{r}.global"))?,
                    &format!("round {r} global"),
                )?);
                // The server optimiser's state after the round (Flower's names -> ours).
                let state = strategy.state();
                for (flower, ours) in [("momentum", "momentum"), ("m_t", "m"), ("v_t", "v")] {
                    if case.has(&format!("r{r}.{flower}.layer0")) {
                        let got = state.weights(ours).map_err(fed)?;
                        worst = worst.max(compare(
                            got,
                            &model(case, &format!("r{r}.{flower}"))?,
                            &format!("round {r} {flower}"),
                        )?);
                    }
                }
            }
            Ok(worst)
        }
        "DifferentialPrivacyServerSideFixedClipping" => {
            let global = model(case, "global")?;
            let c = clients(case, "")?;
            let clip = num(case, "clipping_norm")?;
            let (mut norms, mut factors, mut clipped) = (vec![], vec![], vec![]);
            for u in &c {
                let (n, f, w) = clip_update(&u.weights, &global, clip).map_err(fed)?;
                norms.push(n);
                factors.push(f);
                clipped.push(ClientUpdate {
                    weights: w,
                    num_examples: u.num_examples,
                });
            }
            let mut worst = close(&norms, &vector(case, "update_norms")?, "update_norms")?;
            worst = worst.max(close(
                &factors,
                &vector(case, "clip_factors")?,
                "clip_factors",
            )?);
            let stacked = model_stack(&clipped);
            let want_clipped = clients_named(case, "clipped_clients", &c)?;
            for (i, (a, b)) in stacked.iter().zip(&want_clipped).enumerate() {
                worst = worst.max(compare(a, b, &format!("clipped client {i}"))?);
            }
            // The wrapper with noise 0 is the weighted mean of the clipped clients.
            let mut dp = DpFedAvg::new(FedAvg, global, ClipNorm::Fixed(clip), 0.0).map_err(fed)?;
            worst = worst.max(compare(
                &dp.aggregate(1, &c).map_err(fed)?,
                &model(case, "mean_weighted")?,
                "mean_weighted",
            )?);
            Ok(worst.max(compare(
                &mean(&clipped).map_err(fed)?,
                &model(case, "mean_unweighted")?,
                "mean_unweighted",
            )?))
        }
        other => Err(fail(
            "function/strategy",
            format!("`{other}` ({rule}): not a rule this test knows"),
        )),
    }
}

fn model_stack(c: &[ClientUpdate]) -> Vec<Weights> {
    c.iter().map(|u| u.weights.clone()).collect()
}

/// `name.layer{k}` `[n, …]` split per client.
fn clients_named(case: &Case, name: &str, like: &[ClientUpdate]) -> R<Vec<Weights>> {
    let stacked = (0..layers(case)?)
        .map(|k| case.f64(&format!("{name}.layer{k}"), &Device::Cpu))
        .collect::<R<Vec<_>>>()?;
    (0..like.len())
        .map(|i| weights_of(stacked.iter().map(|t| t.get(i)).collect::<Result<_, _>>()?))
        .collect()
}

#[test]
fn strategies_match_flower() {
    let Some(report) = check_family("fed", check_case).unwrap() else {
        return;
    };
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.checked > 0, "no fed fixture cases found");
}
