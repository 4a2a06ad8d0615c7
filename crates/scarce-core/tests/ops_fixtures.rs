//! Every op against PyTorch: `shared/fixtures/ops` (forward, first-order gradients and the
//! stored second-order products), to 1e-12 relative in f64 and 1e-4 in f32, on every device-parity target
//! (`fixture::parity_targets`: the CPU with its kernels and with the portable ops CUDA runs,
//! and CUDA when compiled in and a GPU answers). Cases are found by listing the folder;
//! settings and shapes are read from each file.

use candle_core::Var;
use scarce_core::ops::{self, ConvOpts, InterpMode, Padding, PoolOpts, Resize, SampleMode};
use scarce_core::{second_order, DType, Device, Error, Result, Tensor};
use scarce_fixtures::{check_family_on, rel_err, Case};

/// Relative tolerance per dtype, the same on every device: f64 reproduces PyTorch's f64 to
/// rounding; f32 runs the same case from the f64 inputs rounded to f32 and is compared with
/// the f64 reference, so its tolerance is f32 rounding through a few ops.
const TOL_F64: f64 = 1e-12;
const TOL_F32: f64 = 1e-4;

fn arr<const D: usize>(c: &Case, key: &str) -> Result<[usize; D]> {
    let v = c.meta_usizes(key, D)?;
    v.try_into()
        .map_err(|v: Vec<usize>| Error::param(key, format!("{v:?} has not {D} entries")))
}

fn flag(c: &Case, key: &str) -> Result<bool> {
    Ok(c.meta_str(key)? == "true")
}

fn var(c: &Case, name: &str, dev: &Device, dtype: DType) -> Result<Option<Tensor>> {
    if !c.has(name) {
        return Ok(None);
    }
    Ok(Some(
        Var::from_tensor(&c.f64(name, dev)?.to_dtype(dtype)?)?
            .as_tensor()
            .clone(),
    ))
}

fn conv_opts<const D: usize>(c: &Case) -> Result<ConvOpts<D>> {
    let mut o = ConvOpts::<D> {
        stride: arr(c, "stride")?,
        padding: arr(c, "padding")?,
        dilation: arr(c, "dilation")?,
        groups: c.meta_json("groups")?,
        ..Default::default()
    };
    if c.meta.contains_key("output_padding") {
        o.output_padding = arr(c, "output_padding")?;
    }
    Ok(o)
}

fn pool_opts<const D: usize>(c: &Case) -> Result<PoolOpts<D>> {
    let mut o = PoolOpts::<D>::window(arr(c, "kernel")?);
    o.stride = arr(c, "stride")?;
    o.padding = arr(c, "padding")?;
    if c.meta.contains_key("dilation") {
        o.dilation = arr(c, "dilation")?;
    }
    o.ceil_mode = flag(c, "ceil_mode")?;
    if c.meta.contains_key("count_include_pad") {
        o.count_include_pad = flag(c, "count_include_pad")?;
    }
    if let Some(d) = c
        .meta
        .get("divisor_override")
        .filter(|d| d.as_str() != "none")
    {
        o.divisor_override = Some(
            d.parse()
                .map_err(|_| Error::param("divisor_override", d.clone()))?,
        );
    }
    Ok(o)
}

/// Runs the case's op on the given leaves.
fn forward(
    c: &Case,
    dev: &Device,
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    grid: Option<&Tensor>,
) -> Result<Tensor> {
    let op = c.meta_str("op")?;
    let need = |t: Option<&Tensor>, n: &str| {
        t.cloned().ok_or_else(|| Error::Missing {
            name: n.into(),
            what: c.name.clone(),
        })
    };
    let spatial = x.rank().saturating_sub(2);
    let eps = || -> Result<f64> { c.meta_json("eps") };
    match op {
        "conv2d" => ops::conv2d(x, &need(w, "w")?, b, &conv_opts(c)?),
        "conv3d" => ops::conv3d(x, &need(w, "w")?, b, &conv_opts(c)?),
        "conv_transpose2d" => ops::conv_transpose2d(x, &need(w, "w")?, b, &conv_opts(c)?),
        "conv_transpose3d" => ops::conv_transpose3d(x, &need(w, "w")?, b, &conv_opts(c)?),
        "max_pool2d" => ops::max_pool2d(x, &pool_opts(c)?),
        "max_pool3d" => ops::max_pool3d(x, &pool_opts(c)?),
        "avg_pool2d" => ops::avg_pool2d(x, &pool_opts(c)?),
        "avg_pool3d" => ops::avg_pool3d(x, &pool_opts(c)?),
        "adaptive_avg_pool2d" => ops::adaptive_avg_pool2d(x, arr(c, "output_size")?),
        "adaptive_avg_pool3d" => ops::adaptive_avg_pool3d(x, arr(c, "output_size")?),
        "interpolate" => {
            let target = if c.meta.contains_key("size") {
                Resize::Size(c.meta_usizes("size", spatial)?)
            } else {
                let f = c.meta_json::<serde_json::Value>("scale_factor")?;
                let f = match f {
                    serde_json::Value::Array(v) => v.iter().filter_map(|x| x.as_f64()).collect(),
                    v => vec![
                        v.as_f64()
                            .ok_or_else(|| Error::param("scale_factor", v.to_string()))?;
                        spatial
                    ],
                };
                Resize::Scale(f)
            };
            let mode = match c.meta_str("mode")? {
                "nearest" => InterpMode::Nearest,
                "nearest-exact" => InterpMode::NearestExact,
                "linear" | "bilinear" | "trilinear" => InterpMode::Linear {
                    align_corners: flag(c, "align_corners")?,
                },
                m => return Err(Error::param("mode", m)),
            };
            ops::interpolate(x, &target, mode)
        }
        "batch_norm" => Ok(ops::batch_norm_train(x, w, b, eps()?)?.0),
        "group_norm" => ops::group_norm(x, c.meta_json("num_groups")?, w, b, eps()?),
        "layer_norm" => ops::layer_norm(
            x,
            c.meta_json::<Vec<usize>>("normalized_shape")?.len(),
            w,
            b,
            eps()?,
        ),
        "log_softmax" => ops::log_softmax(x, c.meta_json("dim")?),
        "softmax" => ops::softmax(x, c.meta_json("dim")?),
        "cross_entropy" => ops::cross_entropy(x, &c.tensor("target", dev)?),
        "grid_sample" => {
            let mode = match c.meta_str("mode")? {
                "bilinear" => SampleMode::Linear,
                "nearest" => SampleMode::Nearest,
                m => return Err(Error::param("mode", m)),
            };
            let pad = match c.meta_str("padding_mode")? {
                "zeros" => Padding::Zeros,
                "border" => Padding::Border,
                m => return Err(Error::param("padding_mode", m)),
            };
            ops::grid_sample(
                x,
                &need(grid, "grid")?,
                mode,
                pad,
                flag(c, "align_corners")?,
            )
        }
        other => Err(Error::param(
            "op",
            format!("no implementation is mapped to fixture op `{other}`"),
        )),
    }
}

fn grad(store: &candle_core::backprop::GradStore, t: &Tensor) -> Result<Tensor> {
    Ok(match store.get(t) {
        Some(g) => g.clone(),
        None => t.zeros_like()?,
    })
}

/// Checks one case; returns the largest relative error seen.
fn check(c: &Case, dev: &Device, dtype: DType, tol: f64) -> Result<f64> {
    let x = var(c, "x", dev, dtype)?.ok_or_else(|| Error::Missing {
        name: "x".into(),
        what: c.name.clone(),
    })?;
    let (w, b, grid) = (
        var(c, "w", dev, dtype)?,
        var(c, "b", dev, dtype)?,
        var(c, "grid", dev, dtype)?,
    );
    c.not_compared(
        "indices",
        "max pooling returns no argmax here; dx, which flows to the argmax, is compared",
    );
    let y = forward(c, dev, &x, w.as_ref(), b.as_ref(), grid.as_ref())?;
    // `gy` may be stored as [1] for a scalar `y`; it has y's elements either way.
    let gy = c.f64("gy", dev)?.to_dtype(dtype)?.reshape(y.shape())?;
    let mut worst: f64 = 0.0;
    let mut cmp = |name: &str, got: &Tensor| -> Result<()> {
        let e = rel_err(got, &c.f64(name, dev)?)?;
        if e.is_nan() || e > tol {
            return Err(Error::param(
                name,
                format!("{}: relative error {e:e} > {tol:e} ({dtype:?})", c.name),
            ));
        }
        worst = worst.max(e);
        Ok(())
    };
    cmp("y", &y)?;
    let loss = (&y * &gy)?.sum_all()?;
    let store = loss.backward()?;
    let dx = grad(&store, &x)?;
    cmp("dx", &dx)?;
    for (name, t) in [("dw", &w), ("db", &b), ("dgrid", &grid)] {
        if let (Some(t), true) = (t, c.has(name)) {
            cmp(name, &grad(&store, t)?)?;
        }
    }
    // Second order, in the form the case states.
    if c.has("hvp_x") {
        let w = w.as_ref().ok_or_else(|| Error::Missing {
            name: "w".into(),
            what: c.name.clone(),
        })?;
        let s = (grad(&store, w)? * c.f64("v", dev)?.to_dtype(dtype)?)?.sum_all()?;
        cmp("hvp_x", &grad(&s.backward()?, &x)?)?;
    }
    if c.has("d2_x") {
        let s = (&dx * c.f64("u", dev)?.to_dtype(dtype)?)?.sum_all()?;
        let st = s.backward()?;
        cmp("d2_x", &grad(&st, &x)?)?;
        if let (Some(w), true) = (&w, c.has("d2_w")) {
            cmp("d2_w", &grad(&st, w)?)?;
        }
    }
    Ok(worst)
}

#[test]
fn ops_match_pytorch() {
    second_order::ensure()
        .expect("second order must be live for the fixture's second-order products");
    let targets = scarce_fixtures::parity_targets();
    for (dtype, tol) in [(DType::F64, TOL_F64), (DType::F32, TOL_F32)] {
        println!("-- {dtype:?}, relative tolerance {tol:e}");
        let Some(report) =
            check_family_on("ops", &targets, |c, dev| check(c, dev, dtype, tol)).unwrap()
        else {
            return;
        };
        assert!(
            report.failures.is_empty(),
            "failures ({dtype:?}):\n{}",
            report.failures.join("\n")
        );
        assert!(
            report.checked > 0,
            "the ops fixture folder exists but holds no case"
        );
    }
}
