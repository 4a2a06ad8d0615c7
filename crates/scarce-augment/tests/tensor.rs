//! The tensor side: DiffAugment and the affine warp are differentiable in the images
//! (autodiff against central finite differences in f64) and do what their closed forms say.

use candle_core::{DType, Device, Tensor};
use scarce_augment::tensor::{
    affine_grid, brightness, contrast, cutout, random_affine, saturation, translation, DiffAugment,
};
use scarce_core::gradcheck::{gradcheck, GradcheckOpts};
use scarce_core::rng::Stream;

fn batch() -> Tensor {
    let s = Stream::new(4, "tensor-test");
    s.uniform_tensor((2, 3, 6, 7), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap()
}

#[test]
fn every_augmentation_passes_gradcheck() {
    let x = batch();
    let weights = Stream::new(5, "w")
        .normal_tensor(x.dims(), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let rng = Stream::new(9, "aug");
    type Aug = Box<dyn Fn(&Tensor) -> scarce_augment::Result<Tensor>>;
    let cases: Vec<(&str, Aug)> = vec![
        ("brightness", Box::new(move |x| brightness(x, &rng))),
        ("saturation", Box::new(move |x| saturation(x, &rng))),
        ("contrast", Box::new(move |x| contrast(x, &rng))),
        ("translation", Box::new(move |x| translation(x, 0.3, &rng))),
        ("cutout", Box::new(move |x| cutout(x, 0.5, &rng))),
        (
            "affine",
            Box::new(move |x| random_affine(x, 20.0, (0.8, 1.2), 0.1, &rng)),
        ),
        (
            "DiffAugment",
            Box::new(move |x| DiffAugment::default().apply(x, &rng)),
        ),
    ];
    for (name, f) in cases {
        let w = weights.clone();
        let report = gradcheck(
            |inp: &[Tensor]| {
                let y = f(&inp[0]).map_err(|e| scarce_core::Error::param("aug", e.to_string()))?;
                Ok((y * &w)?.sum_all()?)
            },
            std::slice::from_ref(&x),
            GradcheckOpts::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{name}: gradcheck over {} entries, largest error {:.1e}",
            report.checked, report.max_abs_err
        );
    }
}

#[test]
fn closed_forms() {
    let x = batch();
    let rng = Stream::new(1, "c");
    // Brightness adds one constant per sample.
    let diff = (brightness(&x, &rng).unwrap() - &x)
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    for row in &diff {
        assert!(row
            .iter()
            .all(|v| (v - row[0]).abs() < 1e-12 && row[0].abs() <= 0.5));
    }
    // The identity affine grid samples every pixel at its own centre.
    let theta = Tensor::new(&[[[1.0f64, 0.0, 0.0], [0.0, 1.0, 0.0]]], &Device::Cpu).unwrap();
    let g = affine_grid(&theta, 2, 4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(&g[..4], &[-0.75, -0.5, -0.25, -0.5]);
    // A zero-ratio translation is the identity; a shift moves pixels by whole steps.
    let same = translation(&x, 0.0, &rng).unwrap();
    assert!(
        (same - &x)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            < 1e-12
    );
    let moved = translation(&x, 0.3, &rng)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let input = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let off = moved
        .iter()
        .map(|v| input.iter().map(|u| (u - v).abs()).fold(v.abs(), f64::min))
        .fold(0.0, f64::max);
    assert!(
        off < 1e-12,
        "a translated value is {off:.1e} from every input value and from 0"
    );
    // Cutout zeroes a box of about half the side and keeps the rest.
    let c = cutout(&x, 0.5, &rng)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let zeros = c.iter().filter(|v| **v == 0.0).count();
    assert!(zeros > 0 && zeros <= 2 * 3 * 3 * 4, "{zeros}");
    assert!(c.iter().zip(&input).all(|(a, b)| *a == 0.0 || a == b));
    // Bad settings name themselves.
    assert!(DiffAugment {
        translation: 1.5,
        ..DiffAugment::default()
    }
    .apply(&x, &rng)
    .is_err());
}
