//! A user's program: one ProtoNet episode step and one second-order MAML meta-gradient, on
//! random data, with scarce as an ordinary dependency. Exits non-zero if either fails.

use scarce::core::backbone::{Conv4, Conv4Config};
use scarce::core::second_order;
use scarce::meta::{Algorithm, Loss, MetaLearner, MetaState, Order, Task, WithHead};
use scarce::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Outside the workspace nothing sets CANDLE_GRAD_DO_NOT_DETACH: second order is off until
    // the program turns it on, and scarce says so instead of computing a first-order answer.
    let off = std::thread::spawn(second_order::ensure).join().unwrap();
    match &off {
        Err(e) => println!("before enable(): {e}"),
        Ok(()) => println!("before enable(): second order already live (set in the environment)"),
    }
    second_order::enable()?;

    let dev = device(Pref::Cpu)?;
    let rng = Stream::new(7, "downstream");
    let (way, shot, query) = (3, 2, 2);
    let images = |n: usize, tag: &str| -> scarce::core::Result<Tensor> {
        rng.child(tag)
            .normal_tensor((n, 1, 28, 28), 0.0, 1.0, DType::F32, &dev)
    };
    let labels = |per: usize| -> Vec<u32> { (0..way as u32).flat_map(|c| vec![c; per]).collect() };

    // A ProtoNet episode: embed, classify the queries, one loss and its gradients.
    let model = Conv4::new(Conv4Config::default())?;
    let params = model.init(&rng.child("init"), &dev)?.to_vars()?;
    let mut ctx = Ctx::train(model.buffers(&dev)?);
    let zs = model.forward(&params, &images(way * shot, "support")?, &mut ctx)?;
    let zq = model.forward(&params, &images(way * query, "query")?, &mut ctx)?;
    let logits = ProtoNet::euclidean().logits(&Params::new(), &zs, &labels(shot), way, &zq)?;
    let target = Tensor::new(labels(query), &dev)?;
    let loss = scarce::core::ops::cross_entropy(&logits, &target)?;
    let grads = params.grads(&loss.backward()?)?;
    println!(
        "ProtoNet episode: loss {:.4}, {} gradient tensors",
        loss.to_scalar::<f32>()?,
        grads.len()
    );

    // A second-order MAML meta-gradient through the same backbone with a linear head.
    let net = WithHead::new(Conv4::new(Conv4Config::default())?, 64, way)?;
    let learner = MetaLearner::new(
        &net,
        Loss::CrossEntropy,
        Algorithm::Maml {
            order: Order::Second,
        },
        1,
        0.4,
    )?;
    let state = MetaState {
        params: net.init(&rng.child("maml"), &dev)?,
        lrs: Params::new(),
    }
    .to_vars()?;
    let task = Task {
        support_x: images(way * shot, "maml-support")?,
        support_y: Tensor::new(labels(shot), &dev)?,
        query_x: images(way * query, "maml-query")?,
        query_y: Tensor::new(labels(query), &dev)?,
    };
    let g = learner.meta_gradient(&state, &[task], 0, &mut Ctx::transductive())?;
    println!(
        "second-order MAML: query loss {:.4}, meta-gradient norm {:.4e}",
        g.loss,
        g.params
            .dot(&g.params)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?
            .sqrt()
    );
    Ok(())
}
