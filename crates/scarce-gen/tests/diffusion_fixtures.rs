//! Schedules, `add_noise`, the v-prediction target, inference timesteps and the DDPM / DDIM
//! steps against diffusers (`shared/fixtures/diffusion`), in f64, to 1e-12, on every
//! device-parity target (`fixture::parity_targets`).
//! Needs `../shared` (or `SCARCE_FIXTURES`); skips with a printed reason when absent.

use candle_core::{DType, Device, Tensor};
use scarce_fixtures::{check_family_on, rel_err, rel_err_slices, within, Case};
use scarce_gen::{BetaSchedule, Ddim, Ddpm, NoiseSchedule, Prediction, SamplerConfig, Spacing};

/// Relative tolerance in f64, the same on every device.
const TOL: f64 = 1e-12;

fn meta_f64(c: &Case, key: &str) -> scarce_core::Result<f64> {
    c.meta_str(key)?
        .parse()
        .map_err(|_| scarce_core::Error::param(key, "not a number"))
}

fn meta_usize(c: &Case, key: &str) -> scarce_core::Result<usize> {
    c.meta_str(key)?
        .parse()
        .map_err(|_| scarce_core::Error::param(key, "not an integer"))
}

fn err(e: scarce_gen::Error) -> scarce_core::Error {
    scarce_core::Error::param("scarce-gen", e.to_string())
}

fn schedule(c: &Case) -> scarce_core::Result<NoiseSchedule> {
    let kind = BetaSchedule::from_name(
        c.meta_str("beta_schedule")?,
        // The cosine schedule has no beta range; its cases may omit it.
        meta_f64(c, "beta_start").unwrap_or(1e-4),
        meta_f64(c, "beta_end").unwrap_or(0.02),
    )
    .map_err(err)?;
    NoiseSchedule::new(kind, meta_usize(c, "num_train_timesteps")?).map_err(err)
}

fn ints(c: &Case, name: &str) -> scarce_core::Result<Vec<i64>> {
    Ok(c.tensor(name, &Device::Cpu)?
        .to_dtype(DType::I64)?
        .to_vec1::<i64>()?)
}

fn close(name: &str, got: &Tensor, want: &Tensor) -> scarce_core::Result<f64> {
    within(name, rel_err(got, want)?, TOL)
}

/// diffusers' stock values come from its float32 schedule (README: up to about 1e-4 from the
/// float64 values); every one has an `*_f64` twin, which is compared at [`TOL`].
fn stock_values_not_compared(c: &Case) {
    for name in [
        "noisy",
        "velocity",
        "prev_sample",
        "pred_original_sample",
        "variance",
    ] {
        c.not_compared(
            name,
            "diffusers' float32 schedule; the *_f64 twin is compared",
        );
    }
}

fn bool_meta(c: &Case, key: &str) -> bool {
    c.meta_str(key)
        .map(|v| v == "true" || v == "True")
        .unwrap_or(false)
}

fn check(c: &Case, dev: &Device) -> scarce_core::Result<f64> {
    if c.name.starts_with("ddim_timesteps") {
        // One tensor per setting: <spacing>[_offset1]_<n>.
        let s = schedule(c)?;
        let mut n_checked = 0;
        let mut names: Vec<&String> = c.tensors.keys().collect();
        names.sort();
        for name in names {
            let t = c.tensor(name, &Device::Cpu)?;
            let parts: Vec<&str> = name.split('_').collect();
            let spacing = Spacing::from_name(parts[0]).map_err(err)?;
            let offset = if parts.len() == 3 {
                parts[1].trim_start_matches("offset").parse().unwrap_or(0)
            } else {
                0
            };
            let n: usize = parts[parts.len() - 1]
                .parse()
                .map_err(|_| scarce_core::Error::param(name.clone(), "bad step count"))?;
            let got = s.timesteps(n, spacing, offset).map_err(err)?;
            let want = t.to_dtype(DType::I64)?.to_vec1::<i64>()?;
            let got: Vec<i64> = got.iter().map(|&v| v as i64).collect();
            if got != want {
                return Err(scarce_core::Error::param(
                    name.clone(),
                    format!("timesteps {got:?} != {want:?}"),
                ));
            }
            n_checked += 1;
        }
        if n_checked == 0 {
            return Err(scarce_core::Error::param("ddim_timesteps", "no tensors"));
        }
        return Ok(0.0);
    }
    let s = schedule(c)?;
    if c.name.starts_with("schedule_") {
        let betas = Tensor::new(s.betas.as_slice(), dev)?;
        let ac = Tensor::new(s.alphas_cumprod.as_slice(), dev)?;
        let e1 = close("betas", &betas, &c.f64("betas", dev)?)?;
        let e2 = close("alphas_cumprod", &ac, &c.f64("alphas_cumprod", dev)?)?;
        // diffusers' own float32 schedule: our f64 values rounded to f32 agree to f32 precision.
        within(
            "alphas_cumprod_f32",
            rel_err(&ac, &c.f64("alphas_cumprod_f32", dev)?)?,
            1e-5,
        )?;
        within(
            "betas_f32",
            rel_err(&betas, &c.f64("betas_f32", dev)?)?,
            1e-5,
        )?;
        return Ok(e1.max(e2));
    }
    stock_values_not_compared(c);
    if c.name.starts_with("forward_") {
        let x0 = c.f64("x0", dev)?;
        let noise = c.f64("noise", dev)?;
        let t: Vec<usize> = ints(c, "timesteps")?.iter().map(|&t| t as usize).collect();
        let noisy = s.add_noise(&x0, &noise, &t).map_err(err)?;
        let v = s.velocity(&x0, &noise, &t).map_err(err)?;
        let e1 = close("noisy_f64", &noisy, &c.f64("noisy_f64", dev)?)?;
        let e2 = close("velocity_f64", &v, &c.f64("velocity_f64", dev)?)?;
        return Ok(e1.max(e2));
    }
    let ddim = c.name.starts_with("ddim_step");
    if !(ddim || c.name.starts_with("ddpm_step")) {
        return Err(scarce_core::Error::param(
            c.name.clone(),
            "unknown case kind",
        ));
    }
    let cfg = SamplerConfig {
        prediction: Prediction::from_name(c.meta_str("prediction_type")?).map_err(err)?,
        clip_sample: if bool_meta(c, "clip_sample") {
            Some(meta_f64(c, "clip_sample_range").unwrap_or(1.0))
        } else {
            None
        },
        num_inference_steps: c
            .meta_str("num_inference_steps")
            .ok()
            .and_then(|v| v.parse().ok()),
        spacing: c
            .meta_str("timestep_spacing")
            .ok()
            .map(|v| Spacing::from_name(v).map_err(err))
            .transpose()?
            .unwrap_or(Spacing::Leading),
        steps_offset: c
            .meta_str("steps_offset")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    let ts = ints(c, "timesteps")?;
    let prev_want = ints(c, "prev_timestep")?;
    let (output, sample, noise) = (
        c.f64("model_output", dev)?,
        c.f64("sample", dev)?,
        c.f64("variance_noise", dev)?,
    );
    let (want_prev, want_x0) = (
        c.f64("prev_sample_f64", dev)?,
        c.f64("pred_original_sample_f64", dev)?,
    );
    let mut worst = 0f64;
    let ddpm = Ddpm::new(s.clone(), cfg.clone()).map_err(err)?;
    let ddim_s = if ddim {
        Some(Ddim::new(s.clone(), cfg.clone(), meta_f64(c, "eta")?).map_err(err)?)
    } else {
        None
    };
    if c.has("inference_timesteps") {
        let want = ints(c, "inference_timesteps")?;
        let got: Vec<i64> = match &ddim_s {
            Some(d) => d.timesteps().map_err(err)?,
            None => ddpm.timesteps().map_err(err)?,
        }
        .iter()
        .map(|&t| t as i64)
        .collect();
        if got != want {
            return Err(scarce_core::Error::param(
                "inference_timesteps",
                format!("{got:?} != {want:?}"),
            ));
        }
    }
    for (i, &t) in ts.iter().enumerate() {
        let t = t as usize;
        let row = |x: &Tensor| x.get(i);
        let (o, x, n) = (row(&output)?, row(&sample)?, row(&noise)?);
        let (out, prev_t) = match &ddim_s {
            Some(d) => (
                d.step(&o, t, &x, Some(&n)).map_err(err)?,
                d.prev_timestep(t),
            ),
            None => (
                ddpm.step(&o, t, &x, Some(&n)).map_err(err)?,
                ddpm.prev_timestep(t).map_err(err)?,
            ),
        };
        if prev_t != prev_want[i] {
            return Err(scarce_core::Error::param(
                "prev_timestep",
                format!("t={t}: {prev_t} != {}", prev_want[i]),
            ));
        }
        worst = worst
            .max(close(
                &format!("prev_sample_f64[t={t}]"),
                &out.prev_sample,
                &row(&want_prev)?,
            )?)
            .max(close(
                &format!("pred_original_sample_f64[t={t}]"),
                &out.pred_original_sample,
                &row(&want_x0)?,
            )?);
        if !ddim && c.has("variance_f64") {
            let want_var = c.f64("variance_f64", dev)?.to_vec1::<f64>()?[i];
            let got = ddpm.variance(t).map_err(err)?;
            let e = rel_err_slices(&[got], &[want_var])?;
            // diffusers' variance is 0 where ours is its 1e-20 floor (t = 0).
            let floor = want_var == 0.0 && got <= 1e-20;
            if !floor {
                within(&format!("variance_f64[t={t}]"), e, TOL)?;
            }
        }
    }
    Ok(worst)
}

#[test]
fn diffusers_diffusion_fixtures() {
    let targets = scarce_fixtures::parity_targets();
    let Some(report) =
        check_family_on("diffusion", &targets, check).expect("fixture folder readable")
    else {
        return;
    };
    assert!(
        report.failures.is_empty(),
        "failures: {:#?}",
        report.failures
    );
    assert!(report.checked > 0, "no diffusion fixture case found");
}
