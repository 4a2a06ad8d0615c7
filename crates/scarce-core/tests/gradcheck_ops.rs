//! f64 finite differences against autodiff, first and second order, for every op and
//! backbone. Each op is wrapped as `f = Σ r ⊙ op(x)²` with fixed random `r`, so the function
//! is nonlinear and its second derivatives go through the op's backward. Each op is checked
//! twice: with the CPU kernels and in its portable form (`ops::with_portable_ops`, what CUDA
//! runs).

use scarce_core::backbone::{
    Conv4, Conv4Config, Mlp, MlpConfig, ResNet12, ResNet12Config, Spatial,
};
use scarce_core::gradcheck::{gradcheck, gradgradcheck, GradcheckOpts};
use scarce_core::ops::{self, ConvOpts, InterpMode, Padding, PoolOpts, Resize, SampleMode};
use scarce_core::{Ctx, DType, Device, Model, Params, Result, Stream, Tensor};

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    Stream::new(seed, "gradcheck-test")
        .normal_tensor(shape, 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap()
}

/// `Σ r ⊙ y²` for a fixed random `r` of `y`'s shape.
fn energy(y: Tensor) -> Result<Tensor> {
    let r = Stream::new(99, "energy").normal_tensor(y.shape(), 0.0, 1.0, DType::F64, y.device())?;
    Ok((y.sqr()? * r)?.sum_all()?)
}

/// First- and second-order checks of `op` at `inputs`, with the CPU kernels and portable.
fn both<F: Fn(&[Tensor]) -> Result<Tensor> + Copy>(name: &str, op: F, inputs: &[Tensor]) {
    orders(name, op, inputs);
    ops::with_portable_ops(|| orders(&format!("{name} (portable)"), op, inputs));
}

fn orders<F: Fn(&[Tensor]) -> Result<Tensor> + Copy>(name: &str, op: F, inputs: &[Tensor]) {
    let f = move |xs: &[Tensor]| energy(op(xs)?);
    let r1 = gradcheck(f, inputs, GradcheckOpts::default())
        .unwrap_or_else(|e| panic!("{name} first order: {e}"));
    let r2 = gradgradcheck(
        f,
        inputs,
        GradcheckOpts {
            rtol: 1e-4,
            atol: 1e-6,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{name} second order: {e}"));
    println!(
        "{name}: {} + {} entries, max err {:.1e} / {:.1e}",
        r1.checked, r2.checked, r1.max_abs_err, r2.max_abs_err
    );
}

#[test]
fn gelu_gradient_is_the_closed_form() {
    // d/dx x·Φ(x) = Φ(x) + x·φ(x), in f64, at points across the curve.
    let xs: Vec<f64> = (-40..=40).map(|i| i as f64 * 0.15).collect();
    let x = candle_core::Var::new(xs.as_slice(), &Device::Cpu).unwrap();
    let y = ops::gelu(x.as_tensor()).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let got = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    let erf = (x.as_tensor() / std::f64::consts::SQRT_2)
        .unwrap()
        .erf()
        .unwrap();
    let erf = erf.to_vec1::<f64>().unwrap();
    for ((&x, &g), &e) in xs.iter().zip(&got).zip(&erf) {
        let phi = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let want = 0.5 * (1.0 + e) + x * phi;
        assert!(
            (g - want).abs() <= 1e-14 * want.abs().max(1.0),
            "x = {x}: {g} vs {want}"
        );
    }
    both(
        "gelu",
        |xs: &[Tensor]| ops::gelu(&xs[0]),
        &[rand(7, &[3, 5])],
    );
}

#[test]
fn convolutions() {
    let x = rand(1, &[2, 4, 5, 4]);
    let w = rand(2, &[4, 2, 3, 2]);
    let b = rand(3, &[4]);
    let o = ConvOpts {
        stride: [2, 1],
        padding: [1, 2],
        dilation: [1, 2],
        groups: 2,
        ..Default::default()
    };
    both(
        "conv2d",
        |t| ops::conv2d(&t[0], &t[1], Some(&t[2]), &o),
        &[x, w, b],
    );
    // A bias row per sample ([N, O]), stride 1: a diffusion UNet's time-conditioned conv.
    let x = rand(11, &[2, 3, 4, 5]);
    let w = rand(12, &[4, 3, 3, 3]);
    let b = rand(13, &[2, 4]);
    both(
        "conv2d, per-sample bias",
        |t| ops::conv2d(&t[0], &t[1], Some(&t[2]), &ConvOpts::default().padding(1)),
        &[x, w, b],
    );
    let x = rand(4, &[1, 2, 3, 4, 3]);
    let w = rand(5, &[2, 2, 2, 2, 2]);
    both(
        "conv3d",
        |t| {
            ops::conv3d(
                &t[0],
                &t[1],
                None,
                &ConvOpts::default().stride(2).padding(1),
            )
        },
        &[x, w],
    );
    let x = rand(6, &[2, 2, 3, 2]);
    let w = rand(7, &[2, 3, 3, 3]);
    let b = rand(8, &[3]);
    let o = ConvOpts::default().stride(2).padding(1).output_padding(1);
    both(
        "conv_transpose2d",
        |t| ops::conv_transpose2d(&t[0], &t[1], Some(&t[2]), &o),
        &[x, w, b],
    );
}

#[test]
fn pooling_and_resampling() {
    let x = rand(10, &[1, 2, 5, 7]);
    both(
        "max_pool2d k3 s2 p1",
        |t| ops::max_pool2d(&t[0], &PoolOpts::new(3).stride(2).padding(1)),
        std::slice::from_ref(&x),
    );
    both(
        "max_pool2d ceil",
        |t| ops::max_pool2d(&t[0], &PoolOpts::new(2).ceil_mode(true)),
        std::slice::from_ref(&x),
    );
    both(
        "avg_pool2d ceil",
        |t| ops::avg_pool2d(&t[0], &PoolOpts::new(2).ceil_mode(true)),
        std::slice::from_ref(&x),
    );
    both(
        "adaptive_avg_pool2d",
        |t| ops::adaptive_avg_pool2d(&t[0], [3, 4]),
        std::slice::from_ref(&x),
    );
    both(
        "bilinear",
        |t| {
            ops::interpolate(
                &t[0],
                &Resize::Size(vec![7, 4]),
                InterpMode::Linear {
                    align_corners: false,
                },
            )
        },
        std::slice::from_ref(&x),
    );
    both(
        "nearest",
        |t| ops::interpolate(&t[0], &Resize::Scale(vec![2.0, 1.5]), InterpMode::Nearest),
        std::slice::from_ref(&x),
    );
    both(
        "nearest, whole factors (block repeat)",
        |t| ops::interpolate(&t[0], &Resize::Scale(vec![2.0, 3.0]), InterpMode::Nearest),
        std::slice::from_ref(&x),
    );
    let v = rand(11, &[1, 1, 3, 4, 5]);
    both(
        "max_pool3d",
        |t| ops::max_pool3d(&t[0], &PoolOpts::new(2)),
        std::slice::from_ref(&v),
    );
    both(
        "trilinear ac",
        |t| {
            ops::interpolate(
                &t[0],
                &Resize::Size(vec![4, 3, 6]),
                InterpMode::Linear {
                    align_corners: true,
                },
            )
        },
        &[v],
    );
    // Grid points kept away from pixel boundaries, where bilinear weights have kinks.
    let grid = (rand(12, &[1, 3, 2, 2]) * 0.35).unwrap();
    for pad in [Padding::Zeros, Padding::Border] {
        both(
            "grid_sample",
            |t| ops::grid_sample(&t[0], &t[1], SampleMode::Linear, pad, false),
            &[x.clone(), grid.clone()],
        );
    }
}

#[test]
fn norms_softmax_losses() {
    let x = rand(20, &[3, 4, 2, 2]);
    let w = rand(21, &[4]);
    let b = rand(22, &[4]);
    both(
        "batch_norm",
        |t| Ok(ops::batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)?.0),
        &[x.clone(), w.clone(), b.clone()],
    );
    // Fused batch norm + max pool, a negative scale in one channel (the max of the normalised
    // values is then the min of x), and the same thing as two ops.
    let wneg = Tensor::new(&[1.5f64, -0.7, 0.3, 2.0], &Device::Cpu).unwrap();
    for opts in [
        PoolOpts::new(2),
        PoolOpts::new(3).stride(2).padding(1).ceil_mode(true),
    ] {
        both(
            "batch_norm + max_pool (fused)",
            |t| Ok(ops::batch_norm_train_max_pool(&t[0], Some(&t[1]), Some(&t[2]), 1e-5, &opts)?.0),
            &[x.clone(), wneg.clone(), b.clone()],
        );
        let fused = ops::batch_norm_train_max_pool(&x, Some(&wneg), Some(&b), 1e-5, &opts)
            .unwrap()
            .0;
        let (bn, _) = ops::batch_norm_train(&x, Some(&wneg), Some(&b), 1e-5).unwrap();
        let composed = ops::max_pool2d(&bn, &opts).unwrap();
        assert!(scarce_fixtures::rel_err(&fused, &composed).unwrap() < 1e-14);
    }
    both(
        "group_norm",
        |t| ops::group_norm(&t[0], 2, Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    both(
        "group_norm_silu",
        |t| ops::group_norm_silu(&t[0], 2, Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w.clone(), b.clone()],
    );
    // The fused kernels against the composed ops they replace.
    for silu in [false, true] {
        let run = || {
            if silu {
                ops::group_norm_silu(&x, 2, Some(&w), Some(&b), 1e-5)
            } else {
                ops::group_norm(&x, 2, Some(&w), Some(&b), 1e-5)
            }
        };
        let fused = run().unwrap();
        let composed = ops::with_portable_ops(run).unwrap();
        assert!(scarce_fixtures::rel_err(&fused, &composed).unwrap() < 1e-14);
    }
    let lw = rand(23, &[2, 2]);
    both(
        "layer_norm",
        |t| ops::layer_norm(&t[0], 2, Some(&t[1]), None, 1e-5),
        &[x.clone(), lw],
    );
    both(
        "softmax",
        |t| ops::softmax(&t[0], 1),
        std::slice::from_ref(&x),
    );
    both(
        "log_softmax",
        |t| ops::log_softmax(&t[0], -1),
        std::slice::from_ref(&x),
    );
    let target = Tensor::new(
        &[[[0u32, 3], [1, 2]], [[2, 2], [0, 1]], [[3, 0], [1, 1]]],
        &Device::Cpu,
    )
    .unwrap();
    both(
        "cross_entropy",
        |t| ops::cross_entropy(&t[0], &target),
        std::slice::from_ref(&x),
    );
    let lin_w = rand(24, &[3, 2]);
    both(
        "linear + leaky_relu",
        |t| ops::leaky_relu(&ops::linear(&t[0], &t[1], None)?, 0.1),
        &[
            x.reshape((6, 4, 2))
                .unwrap()
                .narrow(1, 0, 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
                .contiguous()
                .unwrap(),
            lin_w,
        ],
    );
}

/// Gradcheck of a backbone with respect to its input and every parameter.
fn backbone<M: Model>(name: &str, model: &M, x: Tensor) {
    let p = model
        .init(&Stream::new(5, "init"), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let names = p.names().to_vec();
    let mut inputs = vec![x];
    inputs.extend(p.tensors().iter().cloned());
    let f = |t: &[Tensor]| -> Result<Tensor> {
        let params: Params = names.iter().cloned().zip(t[1..].iter().cloned()).collect();
        model.forward(&params, &t[0], &mut Ctx::transductive())
    };
    both(name, f, &inputs);
}

#[test]
fn backbones() {
    let conv4 = Conv4::new(Conv4Config {
        in_channels: 1,
        hidden: 2,
        blocks: 2,
        ..Default::default()
    })
    .unwrap();
    backbone("conv4 2d", &conv4, rand(30, &[3, 1, 4, 4]));
    let conv4_3d = Conv4::new(Conv4Config {
        in_channels: 1,
        hidden: 2,
        blocks: 1,
        spatial: Spatial::D3,
        ..Default::default()
    })
    .unwrap();
    backbone("conv4 3d", &conv4_3d, rand(31, &[2, 1, 2, 2, 2]));
    let resnet = ResNet12::new(ResNet12Config {
        in_channels: 1,
        channels: vec![2],
        ..Default::default()
    })
    .unwrap();
    backbone("resnet12", &resnet, rand(32, &[2, 1, 2, 2]));
    let mlp = Mlp::new(MlpConfig::new(&[2, 3, 1])).unwrap();
    backbone("mlp", &mlp, rand(33, &[4, 2]));
}

/// Conv4 in eval mode folds each batch norm into its convolution: the result must equal
/// conv → batch norm with running statistics → max-pool → ReLU computed op by op, and be
/// differentiable (f64 finite differences) in the input and every weight.
#[test]
fn conv4_eval_folding() {
    let model = Conv4::new(Conv4Config {
        in_channels: 1,
        hidden: 3,
        blocks: 2,
        ..Default::default()
    })
    .unwrap();
    let mut p = model
        .init(&Stream::new(5, "init"), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let mut buffers = Params::new();
    for i in 0..2 {
        let bn = format!("encoder.{i}.1");
        p.insert(format!("{bn}.weight"), rand(20 + i, &[3]));
        p.insert(format!("{bn}.bias"), rand(30 + i, &[3]));
        buffers.insert(format!("{bn}.running_mean"), rand(40 + i, &[3]));
        buffers.insert(
            format!("{bn}.running_var"),
            rand(50 + i, &[3]).abs().unwrap(),
        );
    }
    let x = rand(60, &[2, 1, 8, 8]);
    let folded = model
        .forward(&p, &x, &mut Ctx::eval(buffers.clone()))
        .unwrap();
    let mut h = x.clone();
    for i in 0..2 {
        let (w, b) = (&p.tensors()[4 * i], &p.tensors()[4 * i + 1]);
        let bn = format!("encoder.{i}.1");
        h = ops::conv2d(&h, w, Some(b), &ConvOpts::default().padding(1)).unwrap();
        h = ops::batch_norm_eval(
            &h,
            buffers.get(&format!("{bn}.running_mean")).unwrap(),
            buffers.get(&format!("{bn}.running_var")).unwrap(),
            p.get(&format!("{bn}.weight")),
            p.get(&format!("{bn}.bias")),
            1e-5,
        )
        .unwrap();
        h = ops::relu(&ops::max_pool2d(&h, &PoolOpts::new(2)).unwrap()).unwrap();
    }
    let diff = (folded - h.flatten_from(1).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "folded eval forward differs by {diff}");
    let names = p.names().to_vec();
    let mut inputs = vec![x];
    inputs.extend(p.tensors().iter().cloned());
    let f = |t: &[Tensor]| -> Result<Tensor> {
        let params: Params = names.iter().cloned().zip(t[1..].iter().cloned()).collect();
        energy(model.forward(&params, &t[0], &mut Ctx::eval(buffers.clone()))?)
    };
    let r = gradcheck(f, &inputs, GradcheckOpts::default()).unwrap();
    println!(
        "conv4 eval (folded): equal to op-by-op within {diff:.1e}; gradcheck max err {:.1e}",
        r.max_abs_err
    );
}
