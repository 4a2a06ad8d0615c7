//! The UNet: layout against MONAI's DiffusionModelUNet, shapes in 2D and 3D, the errors a
//! bad configuration gets, and its gradient against finite differences in f64.

use candle_core::{DType, Device, Tensor};
use scarce_core::gradcheck::{gradcheck, GradcheckOpts};
use scarce_core::{Params, Stream};
use scarce_gen::{Diffusion, DiffusionConfig, Error, Sampling, UNet, UNetConfig};

#[test]
fn default_matches_monai_parameter_count() {
    // MONAI 1.6 DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1,
    // channels=(32, 64, 64), attention_levels=(False, False, True), num_res_blocks=1,
    // num_head_channels=64) has 1,112,801 parameters (counted with its named_parameters()).
    let u = UNet::new(UNetConfig::default()).unwrap();
    let p = u.init(&Stream::new(0, "init"), &Device::Cpu).unwrap();
    assert_eq!(p.elem_count(), 1_112_801);
}

fn tiny(dims: usize, classes: Option<usize>) -> UNetConfig {
    UNetConfig {
        spatial_dims: dims,
        in_channels: 1,
        out_channels: 1,
        channels: vec![4, 8],
        attention: vec![false, true],
        res_blocks: 1,
        head_channels: 4,
        groups: 2,
        norm_eps: 1e-6,
        num_classes: classes,
    }
}

#[test]
fn shapes_2d_and_3d() {
    for (dims, shape) in [(2, vec![2, 1, 8, 4]), (3, vec![2, 1, 4, 4, 8])] {
        let u = UNet::new(tiny(dims, Some(3))).unwrap();
        let p = u.init(&Stream::new(1, "init"), &Device::Cpu).unwrap();
        let x = Stream::new(2, "x")
            .normal_tensor(shape.clone(), 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap();
        let y = u.forward(&p, &x, &[3.0, 900.0], Some(&[0, 3])).unwrap();
        assert_eq!(y.dims(), &shape[..]);
    }
}

#[test]
fn bad_configurations_are_named() {
    let msg = |e: Error| e.to_string();
    // Size not divisible by the downsampling.
    let u = UNet::new(UNetConfig::default()).unwrap();
    let p = u.init(&Stream::new(0, "init"), &Device::Cpu).unwrap();
    let x = Tensor::zeros((1, 1, 30, 32), DType::F32, &Device::Cpu).unwrap();
    let e = msg(u.forward(&p, &x, &[1.0], None).unwrap_err());
    assert!(
        e.contains("image size") && e.contains("30") && e.contains("divisible by 4"),
        "{e}"
    );
    // Unknown schedule.
    let e = msg(scarce_gen::BetaSchedule::from_name("quadratic", 1e-4, 0.02).unwrap_err());
    assert!(
        e.contains("beta_schedule") && e.contains("quadratic"),
        "{e}"
    );
    // Guidance without a class-conditional model.
    let x = Tensor::zeros((1, 1, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let e = msg(u.forward_guided(&p, &x, &[1.0], &[0], 3.0).unwrap_err());
    assert!(
        e.contains("guidance") && e.contains("class-conditional"),
        "{e}"
    );
    let d = Diffusion::new(DiffusionConfig::default()).unwrap();
    let e = msg(d
        .sample(
            &p,
            1,
            &[32, 32],
            Some(&[0]),
            Some(2.0),
            Sampling::Ddim { steps: 2, eta: 0.0 },
            &Stream::new(0, "s"),
            &Device::Cpu,
        )
        .unwrap_err());
    assert!(e.contains("guidance") || e.contains("class"), "{e}");
    // Label dropout on an unconditional model; groups not dividing channels.
    let e = msg(Diffusion::new(DiffusionConfig {
        p_uncond: 0.1,
        ..Default::default()
    })
    .unwrap_err());
    assert!(e.contains("p_uncond"), "{e}");
    let e = msg(UNet::new(UNetConfig {
        groups: 5,
        ..Default::default()
    })
    .unwrap_err());
    assert!(e.contains("groups"), "{e}");
}

#[test]
fn gradient_matches_finite_differences_f64() {
    // Every op of the network (conv, group norm, SiLU, attention softmax, nearest upsampling,
    // class embedding, skip concatenation) at once: d(sum(out · r))/d(input and one weight of
    // each kind).
    let u = UNet::new(tiny(2, Some(2))).unwrap();
    let p0 = u
        .init(&Stream::new(3, "init"), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    // Zero-initialised convolutions would hide their inputs' gradients: perturb everything.
    let p0 = p0
        .map(|n, t| {
            Ok((t + Stream::new(4, n).normal_tensor(
                t.shape(),
                0.0,
                0.3,
                DType::F64,
                &Device::Cpu,
            )?)?)
        })
        .unwrap();
    let x = Stream::new(5, "x")
        .normal_tensor((2, 1, 4, 4), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let r = Stream::new(6, "r")
        .normal_tensor((2, 1, 4, 4), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let names = [
        "conv_in.weight",
        "down.1.attn.0.to_q.weight",
        "up.1.res.1.norm2.weight",
        "class_embedding.weight",
        "out.conv.weight",
    ];
    let mut inputs = vec![x];
    inputs.extend(names.iter().map(|n| p0.require(n).unwrap().clone()));
    let f = |xs: &[Tensor]| -> scarce_core::Result<Tensor> {
        let mut p = Params::new();
        for (n, t) in p0.iter() {
            let t = names
                .iter()
                .position(|m| *m == n)
                .map_or(t.clone(), |i| xs[i + 1].clone());
            p.insert(n, t);
        }
        let y = u
            .forward(&p, &xs[0], &[10.0, 500.0], Some(&[1, 2]))
            .map_err(|e| scarce_core::Error::param("unet", e.to_string()))?;
        Ok((y * &r)?.sum_all()?)
    };
    let rep = gradcheck(
        f,
        &inputs,
        GradcheckOpts {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-5,
        },
    )
    .unwrap();
    assert!(rep.checked > 100, "checked {}", rep.checked);
    println!(
        "UNet gradcheck: {} entries, max abs err {:.1e}",
        rep.checked, rep.max_abs_err
    );
}
