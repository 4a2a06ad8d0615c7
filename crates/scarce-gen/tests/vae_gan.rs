//! VAE and GAN: gradients against finite differences in f64 (including the GAN's R1 penalty,
//! a second-order term), the loud failure of R1 without second-order gradients, and
//! configuration errors.

use candle_core::{DType, Device, Tensor};
use scarce_core::gradcheck::{gradcheck, GradcheckOpts};
use scarce_core::{Params, Stream};
use scarce_gen::{Gan, GanConfig, Vae, VaeConfig};

fn perturbed(p: Params) -> Params {
    p.map(|n, t| {
        Ok((t.to_dtype(DType::F64)?
            + Stream::new(4, n).normal_tensor(t.shape(), 0.0, 0.1, DType::F64, &Device::Cpu)?)?)
    })
    .unwrap()
}

fn with(p0: &Params, names: &[&str], xs: &[Tensor]) -> Params {
    let mut p = Params::new();
    for (n, t) in p0.iter() {
        p.insert(
            n,
            names
                .iter()
                .position(|m| *m == n)
                .map_or(t.clone(), |i| xs[i].clone()),
        );
    }
    p
}

#[test]
fn vae_loss_gradient_f64() {
    let vae = Vae::new(VaeConfig {
        image_size: 8,
        channels: vec![2, 4],
        latent: 3,
        num_classes: Some(2),
        beta: 0.5,
        ..Default::default()
    })
    .unwrap();
    let p0 = perturbed(
        scarce_gen::Generative::init(&vae, &Stream::new(1, "i"), &Device::Cpu)
            .unwrap()
            .remove(0),
    );
    let x = Stream::new(2, "x")
        .uniform_tensor((2, 1, 8, 8), -1.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let names = [
        "enc.0.weight",
        "enc.logvar.weight",
        "dec.fc.weight",
        "dec.0.weight",
    ];
    let inputs: Vec<Tensor> = names
        .iter()
        .map(|n| p0.require(n).unwrap().clone())
        .collect();
    let f = |xs: &[Tensor]| -> scarce_core::Result<Tensor> {
        let (l, _, _) = vae
            .loss(
                &with(&p0, &names, xs),
                &x,
                Some(&[0, 1]),
                &Stream::new(3, "eps"),
            )
            .map_err(|e| scarce_core::Error::param("vae", e.to_string()))?;
        Ok(l)
    };
    let rep = gradcheck(
        f,
        &inputs,
        GradcheckOpts {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-5,
        },
    )
    .unwrap();
    println!(
        "VAE gradcheck: {} entries, max abs err {:.1e}",
        rep.checked, rep.max_abs_err
    );
}

#[test]
fn gan_configuration_errors() {
    let e = Gan::new(GanConfig {
        image_size: 30,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("image_size") && e.contains("30"), "{e}");
    let e = Vae::new(VaeConfig {
        image_size: 30,
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("image_size") && e.contains("30"), "{e}");
}

#[test]
fn r1_penalty_gradient_matches_finite_differences() {
    // Second order: this crate's cargo config sets CANDLE_GRAD_DO_NOT_DETACH=1 for tests
    // (tests/r1_refused.rs checks the refusal without it).
    let gan = Gan::new(GanConfig {
        image_size: 8,
        width: 8,
        latent: 4,
        r1_gamma: 1.0,
        diff_augment: None,
        ..Default::default()
    })
    .unwrap();
    let init = scarce_gen::Generative::init(&gan, &Stream::new(1, "i"), &Device::Cpu).unwrap();
    let d0 = perturbed(init[1].clone());
    let x = Stream::new(2, "x")
        .uniform_tensor((2, 1, 8, 8), -1.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let names = ["conv.0.weight", "out.weight"];
    let inputs: Vec<Tensor> = names
        .iter()
        .map(|n| d0.require(n).unwrap().clone())
        .collect();
    // R1(D) = ‖∇ₓ Σ D(x)‖², itself computed with a backward pass.
    let f = |xs: &[Tensor]| -> scarce_core::Result<Tensor> {
        let xv = candle_core::Var::from_tensor(&x)?;
        let (l, _) = gan
            .discriminate(&with(&d0, &names, xs), xv.as_tensor(), None)
            .map_err(|e| scarce_core::Error::param("gan", e.to_string()))?;
        let g = l
            .sum_all()?
            .backward()?
            .get(xv.as_tensor())
            .cloned()
            .ok_or_else(|| scarce_core::Error::param("x", "no grad"))?;
        Ok(g.sqr()?.sum_all()?)
    };
    let rep = gradcheck(
        f,
        &inputs,
        GradcheckOpts {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-4,
        },
    )
    .unwrap();
    println!(
        "R1 gradcheck (second order): {} entries, max abs err {:.1e}",
        rep.checked, rep.max_abs_err
    );
}
