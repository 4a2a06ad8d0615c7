//! Functional adaptation: gradient steps on a support loss that return new parameter
//! tensors, differentiable back to the parameters they started from.

use candle_core::{backprop::GradStore, DType, Tensor};
use scarce_core::{second_order, Params};

use crate::{Error, Result};

/// Whether the meta-gradient differentiates through the inner gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// Inner gradients are constants (first-order MAML, Finn et al. §5.2): cheaper, no
    /// Hessian terms.
    First,
    /// Inner gradients stay in the graph: the true MAML meta-gradient, with Hessian-vector
    /// products through every inner step. Refused when candle would silently drop them.
    Second,
}

/// The inner learning rate: fixed, or learnt tensors (Meta-SGD, MAML++).
#[derive(Debug, Clone)]
pub enum InnerLr {
    /// One rate for every parameter and step (must be finite and positive).
    Fixed(f64),
    /// One tensor per parameter, used at every step: scalar (`[]`) or the parameter's shape
    /// (Meta-SGD's per-element rates). Learnt, so any sign is allowed.
    PerParameter(Params),
    /// Entry `s` is used at inner step `s` (MAML++'s per-step, per-layer rates).
    PerStep(Vec<Params>),
}

/// How to adapt.
#[derive(Debug, Clone)]
pub struct InnerLoop {
    /// Gradient steps (at least 1).
    pub steps: usize,
    /// The step size.
    pub lr: InnerLr,
    /// First or second order.
    pub order: Order,
    /// Weight `λ` of a proximal term `λ/2 ‖φ − θ₀‖²` added to the support loss, tying the
    /// adapted weights to where they started (implicit MAML's inner problem). 0: none.
    pub proximal: f64,
}

impl InnerLoop {
    /// `steps` plain SGD steps of size `lr`, second order, no proximal term.
    pub fn sgd(steps: usize, lr: f64) -> Self {
        InnerLoop {
            steps,
            lr: InnerLr::Fixed(lr),
            order: Order::Second,
            proximal: 0.0,
        }
    }

    /// The same loop with another order.
    pub fn with_order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Checks the settings against the parameters to adapt.
    pub fn validate(&self, params: &Params) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config(
                "inner steps",
                "0: MAML needs at least one adaptation step",
            ));
        }
        if !(self.proximal.is_finite() && self.proximal >= 0.0) {
            return Err(Error::config(
                "proximal",
                format!("{} must be finite and non-negative", self.proximal),
            ));
        }
        let check_tensors = |lrs: &Params, what: &str| -> Result<()> {
            for (name, p) in params.iter() {
                let lr = lrs.get(name).ok_or_else(|| {
                    Error::config(what, format!("no learning rate for parameter `{name}`"))
                })?;
                if lr.rank() != 0 && lr.dims() != p.dims() {
                    return Err(Error::config(
                        what,
                        format!(
                            "rate for `{name}` has shape {:?}; want [] or {:?}",
                            lr.dims(),
                            p.dims()
                        ),
                    ));
                }
            }
            Ok(())
        };
        match &self.lr {
            InnerLr::Fixed(lr) => {
                if !(lr.is_finite() && *lr > 0.0) {
                    return Err(Error::config(
                        "inner lr",
                        format!("{lr}: a fixed inner learning rate must be finite and positive"),
                    ));
                }
            }
            InnerLr::PerParameter(lrs) => check_tensors(lrs, "inner lr (per parameter)")?,
            InnerLr::PerStep(per) => {
                if per.len() < self.steps {
                    return Err(Error::config(
                        "inner lr (per step)",
                        format!("{} rates for {} steps", per.len(), self.steps),
                    ));
                }
                for lrs in &per[..self.steps] {
                    check_tensors(lrs, "inner lr (per step)")?;
                }
            }
        }
        Ok(())
    }

    /// `θ − lr ⊙ g` for step `step`.
    fn update(&self, step: usize, theta: &Params, g: &Params) -> Result<Params> {
        let lrs = match &self.lr {
            InnerLr::Fixed(lr) => return Ok(theta.axpy(-lr, g)?),
            InnerLr::PerParameter(lrs) => lrs,
            InnerLr::PerStep(per) => &per[step],
        };
        Ok(theta.zip(g, |name, t, g| {
            let lr = lrs.require(name)?;
            Ok(t.sub(&g.broadcast_mul(&lr.to_dtype(g.dtype())?)?)?)
        })?)
    }
}

/// The result of [`adapt`].
#[derive(Debug, Clone)]
pub struct Adapted {
    /// The parameters after the last step.
    pub params: Params,
    /// The parameters after each step (`trajectory[s]` after step `s + 1`; the last equals
    /// `params`), for losses over every step (MAML++).
    pub trajectory: Vec<Params>,
    /// The support loss before each step (without the proximal term).
    pub support_losses: Vec<f64>,
}

/// Gradients of the leaves `params` in `store`; a parameter the loss did not reach gets
/// zeros, but none reached at all means they are not candle `Var`s, which would silently
/// give a zero (meta-)gradient.
pub(crate) fn grads_of(params: &Params, store: &GradStore) -> Result<Params> {
    if params.tensors().iter().all(|t| store.get(t).is_none()) {
        return Err(Error::config(
            "params",
            "no gradient reached any parameter: differentiate with respect to candle Vars \
             (Params::to_vars, MetaState::to_vars)",
        ));
    }
    Ok(params.grads(store)?)
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Runs `inner.steps` gradient steps on `support_loss` from `params` and returns the new
/// tensors; `params` are untouched.
///
/// Second order: the inner gradients keep their graph, so a loss of the result
/// back-propagates to `params` through every step (and to learnt rates in `inner.lr`).
/// First order: each inner gradient is taken on a detached copy and enters as a constant,
/// so the result depends on `params` only through the identity.
pub fn adapt(
    params: &Params,
    inner: &InnerLoop,
    mut support_loss: impl FnMut(&Params) -> Result<Tensor>,
) -> Result<Adapted> {
    inner.validate(params)?;
    if inner.order == Order::Second {
        second_order::ensure()?;
    }
    let mut theta = params.clone();
    let mut trajectory = Vec::with_capacity(inner.steps);
    let mut support_losses = Vec::with_capacity(inner.steps);
    for step in 0..inner.steps {
        // candle keeps gradients of leaves only, so the gradient at θ_s (a computed tensor
        // in second order) is read off a zero leaf added to it: `θ_s + 0` has θ_s's value and
        // graph, and its gradient is ∂L/∂θ_s, itself differentiable back to θ.
        let (at, leaves) = match inner.order {
            Order::Second => {
                let zeros = theta.map(|_, t| Ok(t.zeros_like()?))?.to_vars()?;
                (theta.zip(&zeros, |_, t, z| Ok(t.add(z)?))?, zeros)
            }
            Order::First => {
                let v = theta.detach().to_vars()?;
                (v.clone(), v)
            }
        };
        let loss = support_loss(&at)?;
        support_losses.push(scalar(&loss)?);
        let objective = if inner.proximal > 0.0 {
            let start = match inner.order {
                Order::Second => params.clone(),
                Order::First => params.detach(),
            };
            let d = at.zip(&start, |_, a, p| Ok(a.sub(p)?))?;
            (&loss + (d.dot(&d)? * (inner.proximal / 2.0))?.to_dtype(loss.dtype())?)?
        } else {
            loss
        };
        let g = leaves.grads(&objective.backward()?)?;
        let g = match inner.order {
            Order::Second => g,
            Order::First => g.detach(),
        };
        theta = inner.update(step, &theta, &g)?;
        trajectory.push(theta.clone());
    }
    Ok(Adapted {
        params: theta,
        trajectory,
        support_losses,
    })
}
