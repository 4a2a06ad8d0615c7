//! Every case of `shared/fixtures/ssl` (lightly, torchvision, FixMatch's and MAE's reference
//! code, in f64): losses, their gradients by candle's backward pass, DINO's centre over two
//! calls, the EMA update, the cosine schedule, MixUp / CutMix with the recorded draws, and
//! MAE's patch layout. Tolerances: the README's 1e-12 (values) and 1e-10 (gradients);
//! MixUp / CutMix images exactly, EMA 1e-15, schedule values 1e-15.

use candle_core::{DType, Device, Tensor, Var};
use scarce_augment::mix;
use scarce_core::{Error, Params, Result};
use scarce_fixtures::{check_family, rel_err, rel_err_slices, within, Case};
use scarce_ssl::{
    barlow_twins, cosine_schedule, fixmatch_unlabelled, mae_loss, negative_cosine, nt_xent,
    patchify, update_momentum, vicreg, Dino, DinoConfig, VicRegConfig,
};

const VALUE: f64 = 1e-12;
const GRAD: f64 = 1e-10;

fn cpu() -> Device {
    Device::Cpu
}

/// Largest of the named comparisons, each within its tolerance.
fn worst(checks: &[(&str, f64, f64)]) -> Result<f64> {
    let mut m = 0f64;
    for &(what, err, tol) in checks {
        m = m.max(within(what, err, tol)?);
    }
    Ok(m)
}

fn var(c: &Case, name: &str) -> Result<Var> {
    Ok(Var::from_tensor(&c.f64(name, &cpu())?)?)
}

fn grad(store: &candle_core::backprop::GradStore, v: &Var, name: &str) -> Result<Tensor> {
    store
        .get(v.as_tensor())
        .cloned()
        .ok_or_else(|| Error::param(name, "no gradient reached it"))
}

fn ints(c: &Case, name: &str) -> Result<Vec<i64>> {
    Ok(c.tensor(name, &cpu())?.flatten_all()?.to_vec1::<i64>()?)
}

fn ntxent(c: &Case) -> Result<f64> {
    let (z0, z1) = (var(c, "z0")?, var(c, "z1")?);
    let loss = nt_xent(&z0, &z1, c.meta_json("temperature")?)?;
    let g = loss.backward()?;
    let u =
        scarce_ssl::loss::l2_normalize(&Tensor::cat(&[z0.as_tensor(), z1.as_tensor()], 0)?, 1e-12)?;
    worst(&[
        ("loss", rel_err(&loss, &c.f64("loss", &cpu())?)?, VALUE),
        (
            "cos_sim",
            rel_err(&u.matmul(&u.t()?)?, &c.f64("cos_sim", &cpu())?)?,
            VALUE,
        ),
        (
            "grad_z0",
            rel_err(&grad(&g, &z0, "z0")?, &c.f64("grad_z0", &cpu())?)?,
            GRAD,
        ),
        (
            "grad_z1",
            rel_err(&grad(&g, &z1, "z1")?, &c.f64("grad_z1", &cpu())?)?,
            GRAD,
        ),
    ])
}

fn negcos(c: &Case) -> Result<f64> {
    let (p, z) = (var(c, "p")?, var(c, "z")?);
    let loss = negative_cosine(&p, &z)?;
    let g = loss.backward()?;
    if g.get(z.as_tensor()).is_some() {
        return Err(Error::param("z", "the target branch received a gradient"));
    }
    worst(&[
        ("loss", rel_err(&loss, &c.f64("loss", &cpu())?)?, VALUE),
        (
            "grad_p",
            rel_err(&grad(&g, &p, "p")?, &c.f64("grad_p", &cpu())?)?,
            GRAD,
        ),
    ])
}

fn dino(c: &Case) -> Result<f64> {
    let cfg = DinoConfig {
        output_dim: c.meta_json("output_dim")?,
        warmup_teacher_temp: c.meta_json("warmup_teacher_temp")?,
        teacher_temp: c.meta_json("teacher_temp")?,
        warmup_teacher_temp_epochs: c.meta_json("warmup_teacher_temp_epochs")?,
        student_temp: c.meta_json("student_temp")?,
        center_momentum: c.meta_json("center_momentum")?,
    };
    let first = c.f64("step0.teacher", &cpu())?;
    let mut loss_fn = Dino::new(cfg, &first)?;
    let mut checks = Vec::new();
    for step in 0.. {
        let key = |n: &str| format!("step{step}.{n}");
        if !c.has(&key("teacher")) {
            break;
        }
        let errs = (|| -> Result<Vec<(String, f64, f64)>> {
            let center_before = rel_err(&loss_fn.center, &c.f64(&key("center_before"), &cpu())?)?;
            let student = var(c, &key("student"))?;
            let loss = loss_fn.loss(&c.f64(&key("teacher"), &cpu())?, &student, step)?;
            let g = loss.backward()?;
            Ok(vec![
                (key("center_before"), center_before, VALUE),
                (
                    key("loss"),
                    rel_err(&loss, &c.f64(&key("loss"), &cpu())?)?,
                    VALUE,
                ),
                (
                    key("grad_student"),
                    rel_err(
                        &grad(&g, &student, "student")?,
                        &c.f64(&key("grad_student"), &cpu())?,
                    )?,
                    GRAD,
                ),
                (
                    key("center_after"),
                    rel_err(&loss_fn.center, &c.f64(&key("center_after"), &cpu())?)?,
                    VALUE,
                ),
            ])
        })()?;
        checks.extend(errs);
    }
    if checks.is_empty() {
        return Err(Error::param("dino", "no step0.* tensors"));
    }
    let refs: Vec<(&str, f64, f64)> = checks
        .iter()
        .map(|(n, e, t)| (n.as_str(), *e, *t))
        .collect();
    worst(&refs)
}

fn barlow(c: &Case) -> Result<f64> {
    let (a, b) = (var(c, "z_a")?, var(c, "z_b")?);
    let out = barlow_twins(&a, &b, c.meta_json("lambda_param")?)?;
    let g = out.loss.backward()?;
    worst(&[
        ("loss", rel_err(&out.loss, &c.f64("loss", &cpu())?)?, VALUE),
        (
            "cross_corr",
            rel_err(&out.cross_corr, &c.f64("cross_corr", &cpu())?)?,
            VALUE,
        ),
        (
            "invariance_term",
            rel_err(&out.invariance, &c.f64("invariance_term", &cpu())?)?,
            VALUE,
        ),
        (
            "redundancy_term",
            rel_err(&out.redundancy, &c.f64("redundancy_term", &cpu())?)?,
            VALUE,
        ),
        (
            "grad_z_a",
            rel_err(&grad(&g, &a, "z_a")?, &c.f64("grad_z_a", &cpu())?)?,
            GRAD,
        ),
        (
            "grad_z_b",
            rel_err(&grad(&g, &b, "z_b")?, &c.f64("grad_z_b", &cpu())?)?,
            GRAD,
        ),
    ])
}

fn vic(c: &Case) -> Result<f64> {
    let (a, b) = (var(c, "z_a")?, var(c, "z_b")?);
    let cfg = VicRegConfig {
        lambda: c.meta_json("lambda_param")?,
        mu: c.meta_json("mu_param")?,
        nu: c.meta_json("nu_param")?,
        eps: c.meta_json("eps")?,
    };
    let out = vicreg(&a, &b, &cfg)?;
    let g = out.loss.backward()?;
    let r = |t: &Tensor, n: &str| rel_err(t, &c.f64(n, &cpu())?);
    let variance = ((&out.variance[0] + &out.variance[1])? * 0.5)?;
    let covariance = (&out.covariance[0] + &out.covariance[1])?;
    worst(&[
        ("loss", r(&out.loss, "loss")?, VALUE),
        (
            "invariance_term",
            r(&out.invariance, "invariance_term")?,
            VALUE,
        ),
        (
            "variance_term_a",
            r(&out.variance[0], "variance_term_a")?,
            VALUE,
        ),
        (
            "variance_term_b",
            r(&out.variance[1], "variance_term_b")?,
            VALUE,
        ),
        ("variance_term", r(&variance, "variance_term")?, VALUE),
        (
            "covariance_term_a",
            r(&out.covariance[0], "covariance_term_a")?,
            VALUE,
        ),
        (
            "covariance_term_b",
            r(&out.covariance[1], "covariance_term_b")?,
            VALUE,
        ),
        ("covariance_term", r(&covariance, "covariance_term")?, VALUE),
        ("std_a", r(&out.std[0], "std_a")?, VALUE),
        ("std_b", r(&out.std[1], "std_b")?, VALUE),
        ("grad_z_a", r(&grad(&g, &a, "z_a")?, "grad_z_a")?, GRAD),
        ("grad_z_b", r(&grad(&g, &b, "z_b")?, "grad_z_b")?, GRAD),
    ])
}

fn ema(c: &Case) -> Result<f64> {
    let names: Vec<String> = c.meta_json("parameter_names")?;
    let m: f64 = c.meta_json("m")?;
    let load = |prefix: &str| -> Result<Params> {
        let mut p = Params::new();
        for n in &names {
            p.insert(n.clone(), c.f64(&format!("{prefix}.{n}"), &cpu())?);
        }
        Ok(p)
    };
    let after = update_momentum(&load("teacher_before")?, &load("student")?, m)?;
    let mut e = 0f64;
    for n in &names {
        let err = rel_err(
            after.require(n)?,
            &c.f64(&format!("teacher_after.{n}"), &cpu())?,
        )?;
        e = e.max(within(&format!("teacher_after.{n}"), err, 1e-15)?);
    }
    for prefix in ["student", "teacher_before", "teacher_after"] {
        for buf in ["running_mean", "running_var", "num_batches_tracked"] {
            for layer in 0..8 {
                c.not_compared(
                    &format!("{prefix}.{layer}.{buf}"),
                    "batch-norm buffers live in a model's buffers, which the EMA of learnt tensors never takes",
                );
            }
        }
    }
    Ok(e)
}

fn schedule(c: &Case) -> Result<f64> {
    let names: String = c.meta_str("schedules")?.to_string();
    let mut e = 0f64;
    for s in names.split(',') {
        let max_steps: usize = c.meta_json(&format!("{s}.max_steps"))?;
        let start: f64 = c.meta_json(&format!("{s}.start_value"))?;
        let end: f64 = c.meta_json(&format!("{s}.end_value"))?;
        let period = match c.meta_str(&format!("{s}.period"))? {
            "none" => None,
            p => Some(
                p.parse::<f64>()
                    .map_err(|e| Error::param("period", format!("{p:?}: {e}")))?,
            ),
        };
        let steps = ints(c, &format!("{s}.steps"))?;
        let ours: Vec<f64> = steps
            .iter()
            .map(|&k| cosine_schedule(k as usize, max_steps, start, end, period))
            .collect();
        let want = c.f64(&format!("{s}.values"), &cpu())?.to_vec1::<f64>()?;
        e = e.max(within(s, rel_err_slices(&ours, &want)?, 1e-15)?);
    }
    Ok(e)
}

fn mixing(c: &Case, cut: bool) -> Result<f64> {
    let images = c.f64("images", &cpu())?;
    let labels: Vec<usize> = ints(c, "labels")?.into_iter().map(|l| l as usize).collect();
    let classes: usize = c.meta_json("num_classes")?;
    let lam = c.f64("lam", &cpu())?.to_scalar::<f64>()?;
    let partner: Vec<usize> = ints(c, "partner")?
        .into_iter()
        .map(|l| l as usize)
        .collect();
    if partner != mix::partners(labels.len()) {
        return Err(Error::param("partner", format!("{partner:?}")));
    }
    let aug = |e: scarce_augment::Error| Error::param("mix", e.to_string());
    let out = if cut {
        let center = ints(c, "center")?;
        let out = mix::cutmix(
            &images,
            &labels,
            classes,
            lam,
            (center[0] as usize, center[1] as usize),
        )
        .map_err(aug)?;
        let want_box: Vec<usize> = ints(c, "box")?.into_iter().map(|v| v as usize).collect();
        if out.cut.map(|b| b.to_vec()) != Some(want_box.clone()) {
            return Err(Error::param(
                "box",
                format!("{:?} vs {want_box:?}", out.cut),
            ));
        }
        within(
            "lam_adjusted",
            rel_err_slices(
                &[out.lam],
                &[c.f64("lam_adjusted", &cpu())?.to_scalar::<f64>()?],
            )?,
            VALUE,
        )?;
        out
    } else {
        mix::mixup(&images, &labels, classes, lam).map_err(aug)?
    };
    worst(&[
        (
            "images_mixed",
            rel_err(&out.images, &c.f64("images_mixed", &cpu())?)?,
            0.0,
        ),
        (
            "labels_mixed_f64",
            rel_err(&out.labels, &c.f64("labels_mixed_f64", &cpu())?)?,
            VALUE,
        ),
        (
            "labels_mixed",
            rel_err(
                &out.labels.to_dtype(DType::F32)?,
                &c.tensor("labels_mixed", &cpu())?,
            )?,
            1e-7,
        ),
    ])
}

fn fixmatch(c: &Case) -> Result<f64> {
    let weak = var(c, "logits_weak")?;
    let strong = var(c, "logits_strong")?;
    let out = fixmatch_unlabelled(
        &weak,
        &strong,
        c.meta_json("threshold")?,
        c.meta_json("temperature")?,
    )?;
    let g = out.loss.backward()?;
    if g.get(weak.as_tensor()).is_some() {
        return Err(Error::param(
            "logits_weak",
            "the weak branch received a gradient",
        ));
    }
    let targets: Vec<i64> = out.targets.iter().map(|&t| t as i64).collect();
    if targets != ints(c, "targets_u")? {
        return Err(Error::param("targets_u", format!("{targets:?}")));
    }
    let mask = c.f64("mask", &cpu())?.to_vec1::<f64>()?;
    worst(&[
        ("loss", rel_err(&out.loss, &c.f64("loss", &cpu())?)?, VALUE),
        (
            "pseudo_probs",
            rel_err(&out.pseudo_probs, &c.f64("pseudo_probs", &cpu())?)?,
            VALUE,
        ),
        (
            "max_probs",
            rel_err_slices(
                &out.max_probs,
                &c.f64("max_probs", &cpu())?.to_vec1::<f64>()?,
            )?,
            VALUE,
        ),
        ("mask", rel_err_slices(&out.mask, &mask)?, 0.0),
        (
            "grad_logits_strong",
            rel_err(
                &grad(&g, &strong, "logits_strong")?,
                &c.f64("grad_logits_strong", &cpu())?,
            )?,
            GRAD,
        ),
    ])
}

fn mae(c: &Case) -> Result<f64> {
    let p: usize = c.meta_json("patch_size")?;
    let patches = patchify(&c.f64("images", &cpu())?, p)?;
    let mask = c.f64("mask", &cpu())?;
    let mut checks = vec![(
        "patches".to_string(),
        rel_err(&patches, &c.f64("patches", &cpu())?)?,
        0.0,
    )];
    for (norm, sfx) in [(true, ""), (false, "_no_norm")] {
        let pred = var(c, "pred")?;
        let out = mae_loss(&pred, &patches, &mask, norm)?;
        let g = out.loss.backward()?;
        checks.push((
            format!("loss{sfx}"),
            rel_err(&out.loss, &c.f64(&format!("loss{sfx}"), &cpu())?)?,
            VALUE,
        ));
        checks.push((
            format!("loss_per_patch{sfx}"),
            rel_err(
                &out.per_patch,
                &c.f64(&format!("loss_per_patch{sfx}"), &cpu())?,
            )?,
            VALUE,
        ));
        checks.push((
            format!("grad_pred{sfx}"),
            rel_err(
                &grad(&g, &pred, "pred")?,
                &c.f64(&format!("grad_pred{sfx}"), &cpu())?,
            )?,
            GRAD,
        ));
    }
    // The stored normalised target, used as the prediction, must give a zero loss on every
    // patch (the squared distance to our own normalised target).
    let target = c.f64("target", &cpu())?;
    let out = mae_loss(&target, &patches, &mask, true)?;
    checks.push((
        "target".into(),
        out.per_patch.abs()?.max_all()?.to_scalar::<f64>()?,
        1e-24,
    ));
    let refs: Vec<(&str, f64, f64)> = checks
        .iter()
        .map(|(n, e, t)| (n.as_str(), *e, *t))
        .collect();
    worst(&refs)
}

fn check(c: &Case) -> Result<f64> {
    match c.meta_str("kind")? {
        "ntxent" => ntxent(c),
        "negative_cosine" => negcos(c),
        "dino" => dino(c),
        "barlow_twins" => barlow(c),
        "vicreg" => vic(c),
        "ema" => ema(c),
        "cosine_schedule" => schedule(c),
        "mixup" => mixing(c, false),
        "cutmix" => mixing(c, true),
        "fixmatch_unlabelled" => fixmatch(c),
        "mae" => mae(c),
        k => Err(Error::param("kind", format!("unknown case kind `{k}`"))),
    }
}

#[test]
fn ssl_cases_match_lightly_torchvision_and_the_reference_code() {
    let report = check_family("ssl", check).expect("reading the ssl fixtures");
    if let Some(r) = report {
        assert!(r.failures.is_empty(), "{:#?}", r.failures);
        assert!(r.checked > 0);
    }
}
