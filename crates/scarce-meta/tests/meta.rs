//! iMAML against MAML and a closed form on a quadratic inner problem; MAML++'s loss
//! weights; bad configurations; a non-finite meta-gradient in training; resume.

use candle_core::{DType, Device, Tensor};
use scarce_core::backbone::{Mlp, MlpConfig};
use scarce_core::optim::LrSchedule;
use scarce_core::{Ctx, Model, Params, Stream};
use scarce_meta::trainer::load_state;
use scarce_meta::{
    adapt, meta_train, Algorithm, BatchNorm, Error, InnerLoop, InnerLr, Loss, MamlPlusPlus,
    MetaLearner, MetaState, MetaTrainConfig, Order, Outer, Sinusoid, Task, TaskSource,
};

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Solves `a x = b` (small, dense) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap();
        a.swap(k, p);
        b.swap(k, p);
        for i in k + 1..n {
            let f = a[i][k] / a[k][k];
            let pivot = a[k].clone();
            for (x, p) in a[i][k..].iter_mut().zip(&pivot[k..]) {
                *x -= f * p;
            }
            b[i] -= f * b[k];
        }
    }
    let mut x = vec![0.0; n];
    for k in (0..n).rev() {
        x[k] = (b[k] - (k + 1..n).map(|j| a[k][j] * x[j]).sum::<f64>()) / a[k][k];
    }
    x
}

#[test]
fn imaml_agrees_with_maml_and_the_closed_form_on_a_quadratic() {
    scarce_core::second_order::ensure().unwrap();
    let dev = Device::Cpu;
    // A linear model under MSE: the support loss is quadratic in (w, b).
    let model = Mlp::new(MlpConfig::new(&[3, 1])).unwrap();
    let rng = Stream::new(5, "imaml-quadratic");
    let params = model
        .init(&rng, &dev)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let data = |name: &str, n: usize| {
        let x = rng
            .child(name)
            .normal_tensor((n, 3), 0.0, 1.0, DType::F64, &dev)
            .unwrap();
        let y = rng
            .child(name)
            .child("y")
            .normal_tensor((n, 1), 0.0, 1.0, DType::F64, &dev)
            .unwrap();
        (x, y)
    };
    let ((xs, ys), (xq, yq)) = (data("s", 6), data("q", 5));
    let task = Task {
        support_x: xs.clone(),
        support_y: ys.clone(),
        query_x: xq.clone(),
        query_y: yq.clone(),
    };
    // Each step contracts the error by at most 1 − lr·λ = 0.8: 120 steps leave < 1e-11.
    let (lambda, steps, lr) = (2.0, 120, 0.1);

    // iMAML: CG on Hessian-vector products (4 unknowns: 4 CG steps are exact).
    let imaml = MetaLearner::new(
        &model,
        Loss::Mse,
        Algorithm::Imaml {
            lambda,
            cg_steps: 4,
        },
        steps,
        lr,
    )
    .unwrap();
    let state = MetaState {
        params: params.clone(),
        lrs: Params::new(),
    }
    .to_vars()
    .unwrap();
    let g_imaml = imaml
        .meta_gradient(
            &state,
            std::slice::from_ref(&task),
            0,
            &mut Ctx::transductive(),
        )
        .unwrap();

    // MAML through every step of the same proximal inner problem (second order).
    let theta = params.to_vars().unwrap();
    let inner = InnerLoop {
        steps,
        lr: InnerLr::Fixed(lr),
        order: Order::Second,
        proximal: lambda,
    };
    let adapted = adapt(&theta, &inner, |p| {
        let pred = model.forward(
            &scarce_core::Params::clone(p),
            &xs,
            &mut Ctx::transductive(),
        )?;
        Loss::Mse.of(&pred, &ys)
    })
    .unwrap();
    let q = Loss::Mse
        .of(
            &model
                .forward(&adapted.params, &xq, &mut Ctx::transductive())
                .unwrap(),
            &yq,
        )
        .unwrap();
    let g_maml = theta.grads(&q.backward().unwrap()).unwrap();

    // Closed form: with A = [X 1], H = 2/n AᵀA, c = 2/n Aᵀy, φ* = (H + λI)⁻¹(c + λθ) and the
    // meta-gradient λ (H + λI)⁻¹ ∇L_Q(φ*).
    let design = |x: &Tensor| -> Vec<Vec<f64>> {
        f64s(x)
            .chunks(3)
            .map(|r| vec![r[0], r[1], r[2], 1.0])
            .collect()
    };
    let (a_s, a_q) = (design(&xs), design(&xq));
    let (y_s, y_q) = (f64s(&ys), f64s(&yq));
    let gram = |a: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let n = a.len() as f64;
        (0..4)
            .map(|i| {
                (0..4)
                    .map(|j| 2.0 / n * a.iter().map(|r| r[i] * r[j]).sum::<f64>())
                    .collect()
            })
            .collect()
    };
    let mut h_l = gram(&a_s);
    for (i, row) in h_l.iter_mut().enumerate() {
        row[i] += lambda;
    }
    let th: Vec<f64> = [
        f64s(params.require("net.0.weight").unwrap()),
        f64s(params.require("net.0.bias").unwrap()),
    ]
    .concat();
    let c: Vec<f64> = (0..4)
        .map(|i| 2.0 / 6.0 * a_s.iter().zip(&y_s).map(|(r, y)| r[i] * y).sum::<f64>())
        .collect();
    let phi = solve(h_l.clone(), (0..4).map(|i| c[i] + lambda * th[i]).collect());
    let resid: Vec<f64> = a_q
        .iter()
        .zip(&y_q)
        .map(|(r, y)| (0..4).map(|i| r[i] * phi[i]).sum::<f64>() - y)
        .collect();
    let gq: Vec<f64> = (0..4)
        .map(|i| 2.0 / 5.0 * a_q.iter().zip(&resid).map(|(r, e)| r[i] * e).sum::<f64>())
        .collect();
    let exact: Vec<f64> = solve(h_l, gq).iter().map(|v| lambda * v).collect();

    let flat = |p: &Params| {
        [
            f64s(p.require("net.0.weight").unwrap()),
            f64s(p.require("net.0.bias").unwrap()),
        ]
        .concat()
    };
    let (gi, gm) = (flat(&g_imaml.params), flat(&g_maml));
    let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = |g: &[f64]| {
        g.iter()
            .zip(&exact)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
            / scale
    };
    println!(
        "iMAML vs closed form {:.1e}, MAML (120 steps) vs closed form {:.1e}",
        err(&gi),
        err(&gm)
    );
    assert!(err(&gi) < 1e-9, "iMAML {gi:?} vs {exact:?}");
    assert!(err(&gm) < 1e-9, "MAML {gm:?} vs {exact:?}");
}

#[test]
fn maml_plus_plus_loss_weights_anneal_to_the_last_step() {
    let c = MamlPlusPlus {
        msl_anneal_steps: 100,
        second_order_from: 50,
    };
    let w0 = c.msl_weights(5, 0);
    assert!(w0.iter().all(|w| (w - 0.2).abs() < 1e-15));
    for s in [0, 10, 50, 99, 100, 1000] {
        let w = c.msl_weights(5, s);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Non-final weights stay at or above the floor while annealing, then drop out.
        assert!(s >= 100 || w[..4].iter().all(|&x| x >= 0.03 / 5.0 - 1e-15));
    }
    assert_eq!(c.msl_weights(5, 100), vec![0.0, 0.0, 0.0, 0.0, 1.0]);
    let mid = c.msl_weights(5, 50);
    assert!(mid[4] > w0[4] && mid[0] < w0[0]);
    let model = Mlp::new(MlpConfig::new(&[1, 4, 1])).unwrap();
    let l = MetaLearner::new(&model, Loss::Mse, Algorithm::MamlPlusPlus(c), 2, 0.01).unwrap();
    assert_eq!(l.order_at(49), Order::First);
    assert_eq!(l.order_at(50), Order::Second);
    // Learnt per-step, per-tensor rates, trained by the meta-gradient.
    let p = model.init(&Stream::new(0, "m"), &Device::Cpu).unwrap();
    let lrs = l.init_lrs(&p).unwrap();
    assert_eq!(lrs.len(), 2 * p.len());
    let s = MetaState { params: p, lrs }.to_vars().unwrap();
    let task = Sinusoid::new(5, 5, 0).unwrap().task(0).unwrap();
    let g = l
        .meta_gradient(&s, &[task], 60, &mut Ctx::transductive())
        .unwrap();
    assert!(g.lrs.l2_norm().unwrap().to_scalar::<f32>().unwrap() > 0.0);
}

fn config_error(r: Result<impl std::fmt::Debug, Error>, needle: &str) {
    match r {
        Err(e) => assert!(e.to_string().contains(needle), "{e} does not name {needle}"),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

#[test]
fn bad_configurations_are_refused_by_name() {
    let model = Mlp::new(MlpConfig::new(&[1, 8, 1])).unwrap();
    let maml = Algorithm::Maml {
        order: Order::Second,
    };
    config_error(
        MetaLearner::new(&model, Loss::Mse, maml, 1, 0.0),
        "inner_lr",
    );
    config_error(
        MetaLearner::new(&model, Loss::Mse, maml, 1, -0.1),
        "inner_lr",
    );
    config_error(
        MetaLearner::new(&model, Loss::Mse, maml, 1, f64::NAN),
        "inner_lr",
    );
    config_error(
        MetaLearner::new(&model, Loss::Mse, maml, 0, 0.01),
        "inner_steps",
    );
    config_error(
        MetaLearner::new(
            &model,
            Loss::Mse,
            Algorithm::Imaml {
                lambda: 0.0,
                cg_steps: 3,
            },
            1,
            0.01,
        ),
        "lambda",
    );
    let p = model.init(&Stream::new(0, "m"), &Device::Cpu).unwrap();
    config_error(
        adapt(&p, &InnerLoop::sgd(0, 0.1), |_| unreachable!()),
        "inner steps",
    );
    config_error(
        adapt(&p, &InnerLoop::sgd(1, -1.0), |_| unreachable!()),
        "inner lr",
    );
    // Parameters that are not Vars would give a silent zero first-order meta-gradient.
    let l = MetaLearner::new(
        &model,
        Loss::Mse,
        Algorithm::Maml {
            order: Order::First,
        },
        1,
        0.01,
    )
    .unwrap();
    let task = Sinusoid::new(5, 5, 0).unwrap().task(0).unwrap();
    let plain = MetaState {
        params: p.clone(),
        lrs: Params::new(),
    };
    config_error(
        l.meta_gradient(
            &plain,
            std::slice::from_ref(&task),
            0,
            &mut Ctx::transductive(),
        ),
        "Vars",
    );
    config_error(
        l.meta_gradient(&plain.to_vars().unwrap(), &[], 0, &mut Ctx::transductive()),
        "empty",
    );

    // A classification task whose query holds a class absent from the support set.
    let conv =
        scarce_meta::WithHead::new(Mlp::new(MlpConfig::new(&[4, 8])).unwrap(), 8, 3).unwrap();
    let cp = conv.init(&Stream::new(0, "c"), &Device::Cpu).unwrap();
    let x = |n: usize| Tensor::zeros((n, 4), DType::F32, &Device::Cpu).unwrap();
    let y = |v: &[u32]| Tensor::new(v, &Device::Cpu).unwrap();
    let bad = Task {
        support_x: x(2),
        support_y: y(&[0, 1]),
        query_x: x(3),
        query_y: y(&[0, 1, 2]),
    };
    let lc = MetaLearner::new(&conv, Loss::CrossEntropy, maml, 1, 0.1).unwrap();
    let s = MetaState {
        params: cp,
        lrs: Params::new(),
    }
    .to_vars()
    .unwrap();
    let good = Task {
        query_y: y(&[0, 1, 1]),
        ..bad.clone()
    };
    match lc.meta_gradient(&s, &[good, bad], 0, &mut Ctx::transductive()) {
        Err(Error::Task { task: 1, reason }) => assert!(reason.contains("[2]"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// Sinusoid tasks, except that one task's query targets are NaN.
struct Poisoned {
    family: Sinusoid,
    at: u64,
}

impl TaskSource for Poisoned {
    fn task(&self, index: u64) -> scarce_meta::Result<Task> {
        let mut t = self.family.task(index)?;
        if index == self.at {
            t.query_y = (t.query_y * f64::NAN)?;
        }
        Ok(t)
    }
}

fn sinusoid_config(dir: &std::path::Path, steps: usize, resume: bool) -> MetaTrainConfig {
    MetaTrainConfig {
        meta_steps: steps,
        meta_batch: 3,
        outer: Outer::Adam(1e-3),
        schedule: LrSchedule::Constant,
        batch_norm: BatchNorm::Transductive,
        val_every: 2,
        val_tasks: 4,
        val_inner_steps: 1,
        log_every: 0,
        out_dir: dir.to_path_buf(),
        resume,
        run_id: serde_json::json!({"test": "sinusoid"}),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("scarce-meta-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_non_finite_meta_gradient_stops_training_and_keeps_the_last_good_checkpoint() {
    let model = Mlp::new(MlpConfig::new(&[1, 16, 1])).unwrap();
    let l = MetaLearner::new(
        &model,
        Loss::Mse,
        Algorithm::Maml {
            order: Order::Second,
        },
        1,
        0.01,
    )
    .unwrap();
    let family = Sinusoid::new(5, 5, 1).unwrap();
    // Meta-step 3 (0-based) holds tasks 9..12; task 10 is its task 1.
    let train = Poisoned {
        family: family.clone(),
        at: 10,
    };
    let dir = temp_dir("nan");
    let init = MetaState {
        params: model.init(&Stream::new(0, "i"), &Device::Cpu).unwrap(),
        lrs: Params::new(),
    };
    let err = meta_train(
        &l,
        init,
        Params::new(),
        &train,
        &family,
        &sinusoid_config(&dir, 6, false),
        |_| {},
    )
    .unwrap_err();
    let text = err.to_string();
    match &err {
        Error::NonFinite {
            step: 3,
            task: 1,
            checkpoint: Some(p),
            ..
        } => {
            assert!(p.ends_with("last.safetensors"));
            let (_, _, _, meta) =
                load_state(p, &serde_json::json!({"test": "sinusoid"}), &Device::Cpu).unwrap();
            assert_eq!(meta.extra["step"], "2");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        text.contains("meta-step 3")
            && text.contains("task 1")
            && text.contains("last.safetensors"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resumed_training_equals_an_uninterrupted_run() {
    let model = Mlp::new(MlpConfig::new(&[1, 16, 1])).unwrap();
    let l = MetaLearner::new(&model, Loss::Mse, Algorithm::MetaSgd, 1, 0.01).unwrap();
    let family = Sinusoid::new(5, 5, 2).unwrap();
    let p = model.init(&Stream::new(0, "i"), &Device::Cpu).unwrap();
    let init = MetaState {
        lrs: l.init_lrs(&p).unwrap(),
        params: p,
    };
    let (a, b) = (temp_dir("straight"), temp_dir("resumed"));
    let straight = meta_train(
        &l,
        init.clone(),
        Params::new(),
        &family,
        &family,
        &sinusoid_config(&a, 6, false),
        |_| {},
    )
    .unwrap();
    meta_train(
        &l,
        init.clone(),
        Params::new(),
        &family,
        &family,
        &sinusoid_config(&b, 4, false),
        |_| {},
    )
    .unwrap();
    let resumed = meta_train(
        &l,
        init,
        Params::new(),
        &family,
        &family,
        &sinusoid_config(&b, 6, true),
        |_| {},
    )
    .unwrap();
    assert_eq!(resumed.steps_run, 2);
    for (x, y) in [
        (&straight.last.params, &resumed.last.params),
        (&straight.last.lrs, &resumed.last.lrs),
    ] {
        for (n, t) in x.iter() {
            let d = (t - y.require(n).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0, "{n}");
        }
    }
    let log = |d: &std::path::Path| std::fs::read_to_string(d.join("log.csv")).unwrap();
    assert_eq!(log(&a).lines().count(), 7);
    let strip_val = |s: String| {
        s.lines()
            .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip_val(log(&a)), strip_val(log(&b)));
    assert!(a.join("learning_curve.svg").exists() && b.join("best.safetensors").exists());
    // A checkpoint of another run is refused.
    let mut other = sinusoid_config(&b, 8, true);
    other.run_id = serde_json::json!({"test": "other"});
    config_error(
        meta_train(
            &l,
            straight.last.clone(),
            Params::new(),
            &family,
            &family,
            &other,
            |_| {},
        )
        .map(|_| ()),
        "checkpoint is for",
    );
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn adapt_returns_new_tensors_and_leaves_the_originals() {
    let model =
        scarce_meta::WithHead::new(Mlp::new(MlpConfig::new(&[1, 8])).unwrap(), 8, 1).unwrap();
    let p = model.init(&Stream::new(3, "a"), &Device::Cpu).unwrap();
    let before: Vec<Vec<f32>> = p
        .tensors()
        .iter()
        .map(|t| t.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let task = Sinusoid::new(5, 5, 0).unwrap().task(0).unwrap();
    for (alg, adapted_names) in [
        (
            Algorithm::Maml {
                order: Order::Second,
            },
            p.len(),
        ),
        (
            Algorithm::Anil {
                order: Order::Second,
            },
            2,
        ),
    ] {
        let l = MetaLearner::new(&model, Loss::Mse, alg, 2, 0.1).unwrap();
        let state = MetaState {
            params: p.clone(),
            lrs: Params::new(),
        }
        .to_vars()
        .unwrap();
        let a = l
            .adapt(&state, &task, 2, Order::Second, &mut Ctx::transductive())
            .unwrap()
            .params;
        assert_eq!(a.len(), p.len());
        let changed = p
            .names()
            .iter()
            .filter(|n| {
                let d = (a.require(n).unwrap() - state.params.require(n).unwrap()).unwrap();
                d.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
            .count();
        assert_eq!(changed, adapted_names, "{alg:?}");
        let after: Vec<Vec<f32>> = state
            .params
            .tensors()
            .iter()
            .map(|t| t.flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        assert_eq!(before, after);
        // Differentiable back to the originals (second order reaches every parameter).
        let q = Loss::Mse
            .of(
                &model
                    .forward(&a, &task.query_x, &mut Ctx::transductive())
                    .unwrap(),
                &task.query_y,
            )
            .unwrap();
        let g = state.params.grads(&q.backward().unwrap()).unwrap();
        assert!(g.l2_norm().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    }
}

#[test]
fn tasks_in_flight_give_the_sequential_meta_gradient_and_name_the_failing_task() {
    let model = Mlp::new(MlpConfig::new(&[1, 16, 1])).unwrap();
    let family = Sinusoid::new(5, 5, 4).unwrap();
    let mut tasks: Vec<Task> = (0..5).map(|i| family.task(i).unwrap()).collect();
    let state = MetaState {
        params: model.init(&Stream::new(0, "p"), &Device::Cpu).unwrap(),
        lrs: Params::new(),
    }
    .to_vars()
    .unwrap();
    let mut l = MetaLearner::new(
        &model,
        Loss::Mse,
        Algorithm::Maml {
            order: Order::Second,
        },
        2,
        0.01,
    )
    .unwrap();
    let one = l
        .meta_gradient(&state, &tasks, 0, &mut Ctx::transductive())
        .unwrap();
    l.tasks_in_flight = 2;
    let two = l
        .meta_gradient(&state, &tasks, 0, &mut Ctx::transductive())
        .unwrap();
    assert_eq!(one.task_losses, two.task_losses);
    for (n, a) in one.params.iter() {
        let d = (a - two.params.require(n).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 1e-6, "{n}: {d}");
    }
    tasks[3].query_y = (&tasks[3].query_y * f64::INFINITY).unwrap();
    match l.meta_gradient(&state, &tasks, 7, &mut Ctx::transductive()) {
        Err(Error::NonFinite {
            step: 7, task: 3, ..
        }) => {}
        other => panic!("{other:?}"),
    }
}
