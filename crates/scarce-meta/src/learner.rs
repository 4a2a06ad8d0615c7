//! The meta-learning algorithms over one functional model: meta-gradients of a meta-batch,
//! accumulated task by task, and adaptation for evaluation.

use candle_core::{DType, Tensor};
use scarce_core::{Ctx, Model, Params};

use crate::head::HEAD_PREFIX;
use crate::inner::{adapt, grads_of, Adapted, InnerLoop, InnerLr, Order};
use crate::task::{Loss, Task};
use crate::{Error, Result};

/// MAML++ settings (Antoniou et al. 2019) on top of MAML with learnt per-step, per-tensor
/// inner rates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MamlPlusPlus {
    /// The multi-step loss (query loss after every inner step, weighted) anneals to the
    /// last step's loss over this many meta-steps; 0 uses the last step only.
    pub msl_anneal_steps: usize,
    /// Meta-steps before this one run first order (derivative-order annealing).
    pub second_order_from: usize,
}

impl MamlPlusPlus {
    /// Weights of the query losses after inner steps `1..=steps` at meta-step `meta_step`:
    /// uniform at first, the non-final ones decaying linearly to `0.03 / steps` over
    /// `msl_anneal_steps`, the final one taking the rest (MAML++'s reference schedule).
    pub fn msl_weights(&self, steps: usize, meta_step: usize) -> Vec<f64> {
        let k = steps as f64;
        let mut w = vec![0.0; steps];
        if self.msl_anneal_steps == 0 || meta_step >= self.msl_anneal_steps || steps == 1 {
            w[steps - 1] = 1.0;
            return w;
        }
        let decay = meta_step as f64 / self.msl_anneal_steps as f64 / k;
        let floor = 0.03 / k;
        for x in &mut w[..steps - 1] {
            *x = (1.0 / k - decay).max(floor);
        }
        w[steps - 1] = 1.0 - w[..steps - 1].iter().sum::<f64>();
        w
    }
}

/// Which meta-learning algorithm.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// MAML (Finn et al. 2017); `Order::First` is first-order MAML.
    Maml {
        /// Second order (true MAML) or first order.
        order: Order,
    },
    /// Meta-SGD (Li et al. 2017): learnt per-element inner rates, second order.
    MetaSgd,
    /// ANIL (Raghu et al. 2020): only the `head.*` parameters adapt; the meta-gradient
    /// still reaches every parameter.
    Anil {
        /// Second or first order.
        order: Order,
    },
    /// Reptile (Nichol et al. 2018): the meta-gradient is `θ − mean(φ)`, so an outer SGD
    /// step of size ε gives `θ + ε · mean(φ − θ)`.
    Reptile,
    /// MAML++ (multi-step loss, learnt per-step per-tensor rates, order annealing).
    MamlPlusPlus(MamlPlusPlus),
    /// Implicit MAML (Rajeswaran et al. 2019): the inner problem is
    /// `min L_S(φ) + λ/2 ‖φ − θ‖²`, and the meta-gradient `(I + H/λ)⁻¹ ∇L_Q(φ)` comes
    /// from conjugate gradients on Hessian-vector products, so memory does not grow with
    /// the number of inner steps.
    Imaml {
        /// Proximal weight λ (> 0).
        lambda: f64,
        /// Conjugate-gradient iterations (≥ 1).
        cg_steps: usize,
    },
}

/// What the outer loop learns: the initial weights, and the inner rates where learnt.
#[derive(Debug, Clone)]
pub struct MetaState {
    /// The model's weights θ.
    pub params: Params,
    /// Learnt inner rates: Meta-SGD names them as the parameters; MAML++ as
    /// `<step>.<parameter>`. Empty when the rate is fixed.
    pub lrs: Params,
}

impl MetaState {
    /// Both parts as candle `Var`s (the leaves meta-gradients are taken for).
    pub fn to_vars(&self) -> Result<MetaState> {
        Ok(MetaState {
            params: self.params.to_vars()?,
            lrs: self.lrs.to_vars()?,
        })
    }

    /// Both parts cut off from the graph.
    pub fn detach(&self) -> MetaState {
        MetaState {
            params: self.params.detach(),
            lrs: self.lrs.detach(),
        }
    }
}

/// A meta-batch's meta-gradient, averaged over its tasks.
#[derive(Debug, Clone)]
pub struct MetaGradient {
    /// With respect to the weights.
    pub params: Params,
    /// With respect to the learnt rates (empty when none).
    pub lrs: Params,
    /// Mean query loss after adaptation (Reptile: the support loss before the last step).
    pub loss: f64,
    /// Each task's loss.
    pub task_losses: Vec<f64>,
}

/// A task's score after adaptation.
#[derive(Debug, Clone, Copy)]
pub struct Score {
    /// Query loss.
    pub loss: f64,
    /// Query accuracy (%), for classification.
    pub accuracy: Option<f64>,
}

/// One model, one loss and one algorithm with its inner loop.
#[derive(Debug, Clone)]
pub struct MetaLearner<'a, M: Model> {
    /// The network, as a function of its weights.
    pub model: &'a M,
    /// The task loss.
    pub loss: Loss,
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// Inner steps during meta-training.
    pub inner_steps: usize,
    /// The inner rate (the initial value where it is learnt).
    pub inner_lr: f64,
    /// Tasks whose meta-gradients are computed at once, in parallel (1 by default). More
    /// uses more memory (one task's graph each) and helps when a task's ops are too small
    /// to keep the cores busy.
    pub tasks_in_flight: usize,
}

impl<'a, M: Model> MetaLearner<'a, M> {
    /// Checks the configuration: at least one inner step; a finite positive rate (it is the
    /// fixed rate, or where learnt its starting value); λ > 0 and at least one CG step for
    /// iMAML.
    pub fn new(
        model: &'a M,
        loss: Loss,
        algorithm: Algorithm,
        inner_steps: usize,
        inner_lr: f64,
    ) -> Result<Self> {
        if inner_steps == 0 {
            return Err(Error::config(
                "inner_steps",
                "0: meta-learning needs at least one inner step",
            ));
        }
        if !(inner_lr.is_finite() && inner_lr > 0.0) {
            return Err(Error::config(
                "inner_lr",
                format!("{inner_lr}: must be finite and positive"),
            ));
        }
        if let Algorithm::Imaml { lambda, cg_steps } = algorithm {
            if !(lambda.is_finite() && lambda > 0.0) {
                return Err(Error::config(
                    "lambda",
                    format!("{lambda}: must be finite and positive"),
                ));
            }
            if cg_steps == 0 {
                return Err(Error::config("cg_steps", "0: need at least one"));
            }
        }
        Ok(MetaLearner {
            model,
            loss,
            algorithm,
            inner_steps,
            inner_lr,
            tasks_in_flight: 1,
        })
    }

    /// The learnt-rate tensors this algorithm starts from (`inner_lr` everywhere); empty
    /// for fixed-rate algorithms.
    pub fn init_lrs(&self, params: &Params) -> Result<Params> {
        let mut lrs = Params::new();
        match self.algorithm {
            Algorithm::MetaSgd => {
                for (n, t) in params.iter() {
                    lrs.insert(n, (t.ones_like()? * self.inner_lr)?.detach());
                }
            }
            Algorithm::MamlPlusPlus(_) => {
                for s in 0..self.inner_steps {
                    for (n, t) in params.iter() {
                        lrs.insert(
                            format!("{s}.{n}"),
                            Tensor::new(self.inner_lr, t.device())?.to_dtype(t.dtype())?,
                        );
                    }
                }
            }
            _ => {}
        }
        Ok(lrs)
    }

    /// Whether meta-step `meta_step` differentiates through the inner loop.
    pub fn order_at(&self, meta_step: usize) -> Order {
        match self.algorithm {
            Algorithm::Maml { order } | Algorithm::Anil { order } => order,
            Algorithm::MetaSgd => Order::Second,
            Algorithm::MamlPlusPlus(c) if meta_step < c.second_order_from => Order::First,
            Algorithm::MamlPlusPlus(_) => Order::Second,
            Algorithm::Reptile | Algorithm::Imaml { .. } => Order::First,
        }
    }

    /// The inner loop over the adapted parameters `fast`, with `steps` steps.
    fn inner_loop(
        &self,
        fast: &Params,
        lrs: &Params,
        steps: usize,
        order: Order,
    ) -> Result<InnerLoop> {
        let lr = match self.algorithm {
            Algorithm::MetaSgd => InnerLr::PerParameter(lrs.clone()),
            Algorithm::MamlPlusPlus(_) => {
                let mut per = Vec::with_capacity(steps);
                for s in 0..steps {
                    let mut p = Params::new();
                    for n in fast.names() {
                        let name = format!("{s}.{n}");
                        let t = lrs.get(&name).ok_or_else(|| {
                            Error::config(
                                "lrs",
                                format!(
                                    "no learnt rate `{name}`: MAML++ learnt rates for {} steps",
                                    self.inner_steps
                                ),
                            )
                        })?;
                        p.insert(n.clone(), t.clone());
                    }
                    per.push(p);
                }
                InnerLr::PerStep(per)
            }
            _ => InnerLr::Fixed(self.inner_lr),
        };
        let proximal = match self.algorithm {
            Algorithm::Imaml { lambda, .. } => lambda,
            _ => 0.0,
        };
        Ok(InnerLoop {
            steps,
            lr,
            order,
            proximal,
        })
    }

    /// Splits `params` into the adapted part and the rest (ANIL adapts `head.*` only).
    fn split(&self, params: &Params) -> Result<(Params, Params)> {
        if !matches!(self.algorithm, Algorithm::Anil { .. }) {
            return Ok((params.clone(), Params::new()));
        }
        let (mut fast, mut frozen) = (Params::new(), Params::new());
        for (n, t) in params.iter() {
            if n.starts_with(HEAD_PREFIX) {
                fast.insert(n, t.clone());
            } else {
                frozen.insert(n, t.clone());
            }
        }
        if fast.is_empty() {
            return Err(Error::config(
                "algorithm",
                format!("ANIL adapts the `{HEAD_PREFIX}*` parameters and the model has none"),
            ));
        }
        Ok((fast, frozen))
    }

    fn task_loss(&self, p: &Params, x: &Tensor, y: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let pred = self.model.forward(p, x, ctx)?;
        self.loss.of(&pred, y)
    }

    /// Adapts on `task`'s support set from `state` with `steps` steps of `order`, returning
    /// the part that stayed fixed (ANIL's body; empty otherwise) and the adaptation record
    /// of the part that moved.
    fn adapt_task(
        &self,
        state: &MetaState,
        task: &Task,
        steps: usize,
        order: Order,
        ctx: &mut Ctx,
    ) -> Result<(Params, Adapted)> {
        let (fast, frozen) = self.split(&state.params)?;
        let inner = self.inner_loop(&fast, &state.lrs, steps, order)?;
        // First order: the inner gradients are constants, so the frozen part enters the inner
        // loop detached (no backward through it).
        let frozen_inner = match order {
            Order::First => frozen.detach(),
            Order::Second => frozen.clone(),
        };
        let adapted = adapt(&fast, &inner, |f| {
            self.task_loss(
                &merge(&frozen_inner, f),
                &task.support_x,
                &task.support_y,
                ctx,
            )
        })?;
        Ok((frozen, adapted))
    }

    /// Adapts `state` to `task`'s support set with `steps` inner steps of `order` and returns
    /// the inner loop: `params` is the whole adapted parameter set as new tensors (for ANIL
    /// the body is `state`'s own), with the trajectory of the adapted parameters and the
    /// support loss before each step; `state` is untouched. Second order: differentiable back
    /// to `state`.
    pub fn adapt(
        &self,
        state: &MetaState,
        task: &Task,
        steps: usize,
        order: Order,
        ctx: &mut Ctx,
    ) -> Result<Adapted> {
        task.check(self.loss, 0)?;
        let (frozen, adapted) = self.adapt_task(state, task, steps, order, ctx)?;
        Ok(Adapted {
            params: merge(&frozen, &adapted.params),
            ..adapted
        })
    }

    /// The meta-objective of one task (a scalar tensor whose gradient with respect to
    /// `state` is the task's meta-gradient): the query loss after adaptation, or for MAML++
    /// the weighted query losses after every step. Not for Reptile or iMAML, whose
    /// meta-gradients are not gradients of one objective.
    pub fn task_objective(
        &self,
        state: &MetaState,
        task: &Task,
        meta_step: usize,
        ctx: &mut Ctx,
    ) -> Result<(Tensor, Adapted)> {
        if matches!(self.algorithm, Algorithm::Reptile | Algorithm::Imaml { .. }) {
            return Err(Error::config(
                "algorithm",
                "Reptile and iMAML have no single meta-objective; use meta_gradient",
            ));
        }
        let order = self.order_at(meta_step);
        let (frozen, adapted) = self.adapt_task(state, task, self.inner_steps, order, ctx)?;
        let objective = match self.algorithm {
            Algorithm::MamlPlusPlus(c) => {
                let w = c.msl_weights(self.inner_steps, meta_step);
                let mut acc: Option<Tensor> = None;
                for (p, &w) in adapted.trajectory.iter().zip(&w) {
                    if w == 0.0 {
                        continue;
                    }
                    let l =
                        (self.task_loss(&merge(&frozen, p), &task.query_x, &task.query_y, ctx)?
                            * w)?;
                    acc = Some(match acc {
                        None => l,
                        Some(a) => (a + l)?,
                    });
                }
                acc.ok_or_else(|| Error::config("msl weights", "all zero"))?
            }
            _ => self.task_loss(
                &merge(&frozen, &adapted.params),
                &task.query_x,
                &task.query_y,
                ctx,
            )?,
        };
        Ok((objective, adapted))
    }

    /// The meta-gradient of a meta-batch, averaged over its tasks. Tasks are processed
    /// `tasks_in_flight` at a time (in parallel when more than one, each with its own copy of
    /// `ctx`) and their gradients summed in task order, so memory grows with
    /// `tasks_in_flight`, not with the meta-batch. A `ctx` that updates running statistics
    /// is used by one task at a time. `state` must hold candle `Var`s
    /// ([`MetaState::to_vars`]). A NaN or infinite task gradient is an error naming
    /// `meta_step` and the task.
    pub fn meta_gradient(
        &self,
        state: &MetaState,
        tasks: &[Task],
        meta_step: usize,
        ctx: &mut Ctx,
    ) -> Result<MetaGradient> {
        use rayon::prelude::*;
        if tasks.is_empty() {
            return Err(Error::config("tasks", "the meta-batch is empty"));
        }
        let b = tasks.len() as f64;
        let mut sum: Option<(Params, Params)> = None;
        let mut task_losses = Vec::with_capacity(tasks.len());
        let in_flight = if ctx.update_running_stats {
            1
        } else {
            self.tasks_in_flight.max(1)
        };
        for (c, chunk) in tasks.chunks(in_flight).enumerate() {
            let results: Vec<Result<(Params, Params, f64)>> = if chunk.len() == 1 {
                vec![self.task_gradient(state, &chunk[0], c * in_flight, meta_step, ctx)]
            } else {
                chunk
                    .par_iter()
                    .enumerate()
                    .map(|(k, task)| {
                        let mut own = ctx.clone();
                        self.task_gradient(state, task, c * in_flight + k, meta_step, &mut own)
                    })
                    .collect()
            };
            for r in results {
                let (g, g_lr, loss) = r?;
                task_losses.push(loss);
                sum = Some(match sum {
                    None => (g, g_lr),
                    Some((a, a_lr)) => (a.axpy(1.0, &g)?, add(&a_lr, &g_lr)?),
                });
            }
        }
        let (g, g_lr) = sum.ok_or_else(|| Error::config("tasks", "the meta-batch is empty"))?;
        Ok(MetaGradient {
            params: g.scale(1.0 / b)?,
            lrs: g_lr.scale(1.0 / b)?,
            loss: task_losses.iter().sum::<f64>() / b,
            task_losses,
        })
    }

    /// Task `i`'s meta-gradient (weights, rates) and loss, checked finite.
    fn task_gradient(
        &self,
        state: &MetaState,
        task: &Task,
        i: usize,
        meta_step: usize,
        ctx: &mut Ctx,
    ) -> Result<(Params, Params, f64)> {
        task.check(self.loss, i)?;
        let (g, g_lr, loss) = match self.algorithm {
            Algorithm::Reptile => self.reptile_task(state, task, ctx)?,
            Algorithm::Imaml { lambda, cg_steps } => {
                self.imaml_task(state, task, lambda, cg_steps, ctx)?
            }
            _ => {
                let (objective, _) = self.task_objective(state, task, meta_step, ctx)?;
                let loss = scalar(&objective)?;
                let store = objective.backward()?;
                (
                    grads_of(&state.params, &store)?.detach(),
                    state.lrs.grads(&store)?.detach(),
                    loss,
                )
            }
        };
        let non_finite = |what: &str| Error::NonFinite {
            step: meta_step,
            task: i,
            what: what.into(),
            checkpoint: None,
        };
        if !loss.is_finite() {
            return Err(non_finite(&format!("loss {loss}")));
        }
        let norm2 = scalar(&g.dot(&g)?)?
            + if g_lr.is_empty() {
                0.0
            } else {
                scalar(&g_lr.dot(&g_lr)?)?
            };
        if !norm2.is_finite() {
            return Err(non_finite("gradient"));
        }
        Ok((g, g_lr, loss))
    }

    /// `inner_steps` first-order steps from a detached copy of `params` (no learnt rates):
    /// the inner loops of Reptile and iMAML, which keep no graph.
    fn adapt_detached(&self, params: &Params, task: &Task, ctx: &mut Ctx) -> Result<Adapted> {
        let start = MetaState {
            params: params.detach().to_vars()?,
            lrs: Params::new(),
        };
        Ok(self
            .adapt_task(&start, task, self.inner_steps, Order::First, ctx)?
            .1)
    }

    /// Reptile's per-task direction `θ − φ` (φ after `inner_steps` first-order steps on all
    /// the task's points, its support set), and the support loss before the last step.
    fn reptile_task(
        &self,
        state: &MetaState,
        task: &Task,
        ctx: &mut Ctx,
    ) -> Result<(Params, Params, f64)> {
        let theta = state.params.detach();
        let adapted = self.adapt_detached(&theta, task, ctx)?;
        let d = theta.axpy(-1.0, &adapted.params.detach())?;
        let loss = adapted.support_losses.last().copied().unwrap_or(f64::NAN);
        Ok((d, Params::new(), loss))
    }

    /// iMAML's per-task meta-gradient: φ from the proximal inner problem (first order, so
    /// no graph is kept across steps), then `(I + H_S(φ)/λ)⁻¹ ∇L_Q(φ)` by conjugate
    /// gradients. Returns it with the query loss at φ.
    fn imaml_task(
        &self,
        state: &MetaState,
        task: &Task,
        lambda: f64,
        cg_steps: usize,
        ctx: &mut Ctx,
    ) -> Result<(Params, Params, f64)> {
        scarce_core::second_order::ensure()?;
        let adapted = self.adapt_detached(&state.params, task, ctx)?;
        let phi = adapted.params.detach().to_vars()?;
        let q = self.task_loss(&phi, &task.query_x, &task.query_y, ctx)?;
        let loss = scalar(&q)?;
        let gq = grads_of(&phi, &q.backward()?)?.detach();
        // The support gradient with its graph: each Hessian-vector product differentiates
        // ⟨∇L_S(φ), v⟩ once more.
        let s = self.task_loss(&phi, &task.support_x, &task.support_y, ctx)?;
        let gs = grads_of(&phi, &s.backward()?)?;
        let apply = |v: &Params| -> Result<Params> {
            let hv = grads_of(&phi, &gs.dot(v)?.backward()?)?.detach();
            Ok(v.axpy(1.0 / lambda, &hv)?)
        };
        Ok((
            conjugate_gradient(apply, &gq, cg_steps)?,
            Params::new(),
            loss,
        ))
    }

    /// Adapts `state` to `task` with `steps` steps (first order: nothing to differentiate
    /// at evaluation) and scores the query set. `steps` may differ from training's, except
    /// for MAML++, whose learnt rates exist for the trained steps only.
    pub fn evaluate(
        &self,
        state: &MetaState,
        task: &Task,
        steps: usize,
        ctx: &mut Ctx,
    ) -> Result<Score> {
        task.check(self.loss, 0)?;
        let state = state.detach();
        let vars = MetaState {
            params: state.params.to_vars()?,
            lrs: state.lrs.clone(),
        };
        let (frozen, adapted) = self.adapt_task(&vars, task, steps, Order::First, ctx)?;
        let p = merge(&frozen.detach(), &adapted.params.detach());
        let pred = self.model.forward(&p, &task.query_x, ctx)?;
        Ok(Score {
            loss: scalar(&self.loss.of(&pred, &task.query_y)?)?,
            accuracy: self.loss.accuracy(&pred, &task.query_y)?,
        })
    }
}

/// Solves `A x = b` for a symmetric positive-definite `A` given as a product, with `steps`
/// conjugate-gradient iterations from `x = 0` (stopping early at an exact solution).
pub fn conjugate_gradient(
    apply: impl Fn(&Params) -> Result<Params>,
    b: &Params,
    steps: usize,
) -> Result<Params> {
    let mut x = b.scale(0.0)?;
    let mut r = b.clone();
    let mut p = b.clone();
    let mut rr = scalar(&r.dot(&r)?)?;
    for _ in 0..steps {
        if rr == 0.0 {
            break;
        }
        let ap = apply(&p)?;
        let alpha = rr / scalar(&p.dot(&ap)?)?;
        x = x.axpy(alpha, &p)?;
        r = r.axpy(-alpha, &ap)?;
        let rr_new = scalar(&r.dot(&r)?)?;
        p = r.axpy(rr_new / rr, &p)?;
        rr = rr_new;
    }
    Ok(x)
}

/// `a ∪ b` (names of `b` win).
fn merge(a: &Params, b: &Params) -> Params {
    let mut out = a.clone();
    for (n, t) in b.iter() {
        out.insert(n, t.clone());
    }
    out
}

/// `a + b`, where either may be empty.
fn add(a: &Params, b: &Params) -> Result<Params> {
    if a.is_empty() {
        return Ok(b.clone());
    }
    Ok(a.axpy(1.0, b)?)
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
