//! Second order must be real or refused: with grad-of-grad off, a second-order meta-step is
//! an error that says how to turn it on, never a silent first-order answer. Its own test
//! binary, since it changes the environment before any thread has run a backward.

use candle_core::Device;
use scarce_core::backbone::{Mlp, MlpConfig};
use scarce_core::{Ctx, Model, Params, Stream};
use scarce_meta::{Algorithm, Loss, MetaLearner, MetaState, Order, Sinusoid};

#[test]
fn second_order_without_grad_of_grad_is_an_error() {
    std::env::remove_var("CANDLE_GRAD_DO_NOT_DETACH");
    std::thread::spawn(|| {
        let model = Mlp::new(MlpConfig::new(&[1, 8, 1])).unwrap();
        let state = MetaState {
            params: model.init(&Stream::new(0, "m"), &Device::Cpu).unwrap(),
            lrs: Params::new(),
        }
        .to_vars()
        .unwrap();
        let task = Sinusoid::new(5, 5, 0).unwrap().task(0).unwrap();
        for alg in [
            Algorithm::Maml {
                order: Order::Second,
            },
            Algorithm::MetaSgd,
            Algorithm::Anil {
                order: Order::Second,
            },
            Algorithm::Imaml {
                lambda: 1.0,
                cg_steps: 2,
            },
        ] {
            let l = MetaLearner::new(&model, Loss::Mse, alg, 1, 0.01).unwrap();
            let mut s = state.clone();
            if alg == Algorithm::MetaSgd {
                s = MetaState {
                    lrs: l.init_lrs(&s.params).unwrap(),
                    ..s
                }
                .to_vars()
                .unwrap();
            }
            let err = l
                .meta_gradient(&s, std::slice::from_ref(&task), 0, &mut Ctx::transductive())
                .unwrap_err()
                .to_string();
            // ANIL on a model without a head fails for that reason first; both are errors.
            assert!(
                err.contains("CANDLE_GRAD_DO_NOT_DETACH=1") || err.contains("head"),
                "{alg:?}: {err}"
            );
        }
        // First order needs no grad-of-grad and runs.
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
        l.meta_gradient(&state, &[task], 0, &mut Ctx::transductive())
            .unwrap();
    })
    .join()
    .unwrap();
}
