//! scipy.ndimage oracles in `fixtures/resample`: every case file in the folder is checked
//! (map_coordinates, affine_transform, gaussian_filter, zoom; 2D and 3D) to 1e-12 relative.
//! Shapes and settings are read from each file. Needs `../shared` (or `SCARCE_FIXTURES`);
//! skips with a line saying so when absent.

use scarce_augment::filter::gaussian_filter;
use scarce_augment::interp::{affine_transform, map_coordinates, zoom, zoom_shape, Mode, Order};
use scarce_core::{Device, Error as CoreError, Result as CoreResult};
use scarce_fixtures::{check_family, rel_err_slices, within, Case};

fn values(case: &Case, name: &str) -> CoreResult<(Vec<f64>, Vec<usize>)> {
    let t = case.f64(name, &Device::Cpu)?;
    Ok((t.flatten_all()?.to_vec1::<f64>()?, t.dims().to_vec()))
}

fn err(case: &Case, what: impl std::fmt::Display) -> CoreError {
    CoreError::Format {
        path: case.path.clone(),
        reason: what.to_string(),
    }
}

fn order(case: &Case) -> CoreResult<Order> {
    Ok(match case.meta_str("order")? {
        "0" => Order::Nearest,
        "1" => Order::Linear,
        o => return Err(err(case, format!("order {o} is not supported"))),
    })
}

fn mode(case: &Case) -> CoreResult<Mode> {
    let cval: f64 = case.meta_json("cval").unwrap_or(0.0);
    Mode::from_scipy(case.meta_str("mode")?, cval).map_err(|e| err(case, e))
}

/// The fixture README's tolerance: linear interpolation and filtering are exact up to
/// rounding in f64.
const TOL: f64 = 1e-12;

/// Largest |got − want| relative to max |want| (NaN fails; a length mismatch fails).
fn compare(case: &Case, what: &str, got: &[f64], want: &[f64]) -> CoreResult<f64> {
    let e = rel_err_slices(got, want).map_err(|e| err(case, format!("{what}: {e}")))?;
    within(what, e, TOL).map_err(|e| err(case, e))
}

fn check(case: &Case) -> CoreResult<f64> {
    let (input, shape) = values(case, "input")?;
    let (want, want_shape) = values(case, "output")?;
    let function = case.meta_str("function")?;
    let got = match function {
        "scipy.ndimage.map_coordinates" => {
            let (c, cdims) = values(case, "coordinates")?;
            let rows: Vec<Vec<f64>> = c.chunks(cdims[1]).map(<[f64]>::to_vec).collect();
            map_coordinates(&input, &shape, &rows, order(case)?, mode(case)?)
                .map_err(|e| err(case, e))?
        }
        "scipy.ndimage.affine_transform" => {
            let (m, _) = values(case, "matrix")?;
            let (off, _) = values(case, "offset")?;
            case.not_compared(
                "homogeneous",
                "the same mapping as `matrix` and `offset`, which are used",
            );
            let out_shape: Vec<usize> = case.meta_json("output_shape")?;
            affine_transform(
                &input,
                &shape,
                &m,
                &off,
                &out_shape,
                order(case)?,
                mode(case)?,
            )
            .map_err(|e| err(case, e))?
        }
        "scipy.ndimage.gaussian_filter" => {
            let sigma: Vec<f64> = case.meta_json("sigma")?;
            let truncate: f64 = case.meta_json("truncate")?;
            let mut a = input.clone();
            gaussian_filter(&mut a, &shape, &sigma, truncate, mode(case)?)
                .map_err(|e| err(case, e))?;
            // The kernels as well as the result.
            for (k, &s) in sigma.iter().enumerate() {
                let name = format!("kernel_axis{k}");
                if case.has(&name) {
                    let (w, _) = values(case, &name)?;
                    compare(
                        case,
                        &name,
                        &scarce_augment::filter::gaussian_kernel(s, truncate),
                        &w,
                    )?;
                }
            }
            a
        }
        "scipy.ndimage.zoom" => {
            let factors: Vec<f64> = case.meta_json("zoom")?;
            let grid_mode: bool = case.meta_json("grid_mode")?;
            if zoom_shape(&shape, &factors) != want_shape {
                return Err(err(
                    case,
                    format!(
                        "output shape {:?}, expected {want_shape:?}",
                        zoom_shape(&shape, &factors)
                    ),
                ));
            }
            zoom(
                &input,
                &shape,
                &factors,
                grid_mode,
                order(case)?,
                mode(case)?,
            )
            .map_err(|e| err(case, e))?
            .0
        }
        other => return Err(err(case, format!("unknown function {other}"))),
    };
    compare(case, "output", &got, &want)
}

#[test]
fn resampling_matches_scipy() {
    let Some(report) = check_family("resample", check).unwrap() else {
        return;
    };
    for f in &report.failures {
        println!("FAIL {f}");
    }
    assert!(
        report.failures.is_empty(),
        "{} failures",
        report.failures.len()
    );
    assert!(report.checked > 0, "no resample cases found");
}
