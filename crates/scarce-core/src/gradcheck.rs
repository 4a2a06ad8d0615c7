//! Gradient checks: autodiff against central finite differences in f64, at first and second
//! order. Used by the tests of every op and backbone here, and exported for the learners'
//! losses in other crates.

use crate::rng::Stream;
use crate::{second_order, Error, Result};
use candle_core::{DType, Tensor, Var};

/// Tolerances and step of a gradient check.
#[derive(Debug, Clone, Copy)]
pub struct GradcheckOpts {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (against the finite-difference value).
    pub rtol: f64,
}

impl Default for GradcheckOpts {
    fn default() -> Self {
        GradcheckOpts {
            eps: 1e-6,
            atol: 1e-7,
            rtol: 1e-5,
        }
    }
}

/// What a passing check measured.
#[derive(Debug, Clone, Copy)]
pub struct GradcheckReport {
    /// Entries compared.
    pub checked: usize,
    /// Largest `|autodiff - finite difference|`.
    pub max_abs_err: f64,
}

fn scalar(t: &Tensor) -> Result<f64> {
    if t.elem_count() != 1 {
        return Err(Error::shape("f(x)", "a scalar", t.dims()));
    }
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0])
}

/// Autodiff gradients of scalar `f` at `inputs` (zeros where `f` does not depend on one).
pub fn autodiff<F>(f: &F, inputs: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars = inputs
        .iter()
        .map(|t| Ok(Var::from_tensor(&t.detach())?.as_tensor().clone()))
        .collect::<Result<Vec<_>>>()?;
    let y = f(&vars)?;
    scalar(&y)?;
    let store = y.backward()?;
    vars.iter()
        .map(|v| {
            Ok(match store.get(v) {
                Some(g) => g.clone(),
                None => v.zeros_like()?,
            })
        })
        .collect()
}

/// Checks the autodiff gradient of scalar `f` with respect to every element of every f64
/// input against central differences. Errors name the input and element that disagree.
pub fn gradcheck<F>(f: F, inputs: &[Tensor], opts: GradcheckOpts) -> Result<GradcheckReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    for (i, t) in inputs.iter().enumerate() {
        if t.dtype() != DType::F64 {
            return Err(Error::param(
                format!("inputs[{i}]"),
                "gradcheck needs f64 inputs",
            ));
        }
    }
    let analytic = autodiff(&f, inputs)?;
    let mut report = GradcheckReport {
        checked: 0,
        max_abs_err: 0.0,
    };
    for (i, t) in inputs.iter().enumerate() {
        let base = t.flatten_all()?.to_vec1::<f64>()?;
        let a = analytic[i].flatten_all()?.to_vec1::<f64>()?;
        for j in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut args = inputs.to_vec();
                args[i] = Tensor::from_vec(v, t.shape(), t.device())?;
                scalar(&f(&args)?)
            };
            let numeric = (eval(opts.eps)? - eval(-opts.eps)?) / (2.0 * opts.eps);
            let err = (a[j] - numeric).abs();
            // Written so that NaN (in either gradient) fails: every comparison with NaN is false.
            let agrees = err <= opts.atol + opts.rtol * numeric.abs();
            if !agrees {
                return Err(Error::param(
                    format!("inputs[{i}][{j}]"),
                    format!(
                        "autodiff {} vs finite difference {numeric} (|err| {err:e})",
                        a[j]
                    ),
                ));
            }
            report.max_abs_err = report.max_abs_err.max(err);
            report.checked += 1;
        }
    }
    Ok(report)
}

/// Second-order check: with fixed random directions `u_i`, checks the autodiff gradient of
/// `h(x) = Σ_i ⟨∂f/∂x_i, u_i⟩` (a backward through a backward) against central differences
/// of `h`. Fails with [`Error::SecondOrderOff`] when grad-of-grad is not live.
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor], opts: GradcheckOpts) -> Result<GradcheckReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    second_order::ensure()?;
    let dirs = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Stream::new(0, "gradgradcheck").at(i as u64).normal_tensor(
                t.shape(),
                0.0,
                1.0,
                DType::F64,
                t.device(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let h = |xs: &[Tensor]| -> Result<Tensor> {
        // Leaves must be variables for `backward` to report them; inputs that already are
        // (the outer check's) stay connected so the outer backward sees through this one.
        let xs = xs
            .iter()
            .map(|x| {
                Ok(if x.is_variable() {
                    x.clone()
                } else {
                    Var::from_tensor(x)?.as_tensor().clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let y = f(&xs)?;
        let store = y.backward()?;
        let mut acc = Tensor::zeros((), DType::F64, xs[0].device())?;
        for (x, u) in xs.iter().zip(&dirs) {
            if let Some(g) = store.get(x) {
                acc = (acc + (g * u)?.sum_all()?)?;
            }
        }
        Ok(acc)
    };
    gradcheck(h, inputs, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_nan_autodiff_gradient_fails() {
        let x = Tensor::new(&[0.5f64, 2.0], &Device::Cpu).unwrap();
        // sqrt(x - x) · 0 is 0 everywhere (finite difference 0), but autodiff's chain rule
        // gives 0 / (2 sqrt(0)) = NaN. (A multiply by a zero tensor: candle prunes an affine
        // map with factor 0 from the backward pass.)
        let f = |xs: &[Tensor]| -> Result<Tensor> {
            let d = (&xs[0] - xs[0].detach())?;
            Ok((d.sqrt()? * d.zeros_like()?)?.sum_all()?)
        };
        let g = autodiff(&f, std::slice::from_ref(&x)).unwrap();
        let g = g[0].to_vec1::<f64>().unwrap();
        assert!(
            g.iter().all(|v| v.is_nan()),
            "the test needs a NaN gradient: {g:?}"
        );
        let err = gradcheck(f, &[x], GradcheckOpts::default()).unwrap_err();
        assert!(err.to_string().contains("inputs[0][0]"), "{err}");
    }
}
