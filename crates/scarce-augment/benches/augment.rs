//! `augment`: the workloads of `shared/bench/augment.py` (TorchIO / MONAI) — a 1×128³ f32
//! volume, here with a label map moved alongside: B-spline elastic (TorchIO's defaults: 7
//! control points, 7.5 voxels), affine (±10°, scale 0.9–1.1), affine + elastic in one pass,
//! Gaussian noise, flip; and a 1×256² elastic.
//!
//! Run: `cargo bench -p scarce-augment --bench augment`

use criterion::{criterion_group, criterion_main, Criterion};
use scarce_augment::transforms::{
    GaussianNoise, RandomAffine, RandomAffineElastic, RandomElastic, RandomFlip,
};
use scarce_augment::{augment, Image, Sample, Transform};

fn sample(shape: &[usize], with_mask: bool) -> Sample {
    let n: usize = shape.iter().product();
    let img: Vec<f32> = (0..n)
        .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 1000.0)
        .collect();
    let mask = with_mask.then(|| (0..n).map(|i| ((i / 4096) % 3) as u16).collect());
    Sample::new(Image::new(img, 1, shape).unwrap(), mask, 0).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("augment");
    g.sample_size(10);
    let vol = sample(&[128, 128, 128], true);
    let affine = RandomAffine {
        degrees: [10.0; 3],
        scale: (0.9, 1.1),
        ..RandomAffine::default()
    };
    let elastic = RandomElastic::default();
    let cases: Vec<(&str, Box<dyn Transform>)> = vec![
        ("elastic_128^3_with_mask", Box::new(elastic.clone())),
        ("affine_128^3_with_mask", Box::new(affine.clone())),
        (
            "affine+elastic_128^3_with_mask",
            Box::new(RandomAffineElastic {
                affine,
                elastic: elastic.clone(),
            }),
        ),
        ("noise_128^3", Box::new(GaussianNoise { std: (0.0, 0.25) })),
        (
            "flip_128^3_with_mask",
            Box::new(RandomFlip {
                axes: vec![0],
                p: 1.0,
            }),
        ),
    ];
    for (name, t) in &cases {
        let mut epoch = 0;
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut s = vol.clone();
                epoch += 1;
                augment(t.as_ref(), &mut s, 0, epoch).unwrap();
                s
            })
        });
    }
    let img = sample(&[256, 256], true);
    let mut epoch = 0;
    g.bench_function("elastic_256^2_with_mask", |b| {
        b.iter(|| {
            let mut s = img.clone();
            epoch += 1;
            augment(&elastic, &mut s, 0, epoch).unwrap();
            s
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
