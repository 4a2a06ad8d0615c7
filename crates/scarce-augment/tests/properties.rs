//! Properties every user relies on: involutions are identities, recorded inverses undo,
//! label maps never gain labels, image and label map stay aligned, replays are exact, and
//! results do not depend on the thread count. Bad parameters name themselves.

use scarce_augment::field::Smoothness;
use scarce_augment::transforms::*;
use scarce_augment::{
    augment, augment_batch, invert, replay, Error, Image, Mode, Op, Order, Sample,
};

/// A 3D sample: a smooth image and a label map with background and two blobs.
fn volume(d: usize, h: usize, w: usize, id: u64) -> Sample {
    let mut img = Vec::with_capacity(d * h * w);
    let mut mask = Vec::with_capacity(d * h * w);
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let (fz, fy, fx) = (z as f32, y as f32, x as f32);
                img.push((fz * 0.3).sin() + (fy * 0.2).cos() * fx * 0.05);
                let r1 = (fz - d as f32 * 0.4).powi(2)
                    + (fy - h as f32 * 0.5).powi(2)
                    + (fx - w as f32 * 0.4).powi(2);
                let r2 = (fz - d as f32 * 0.6).powi(2)
                    + (fy - h as f32 * 0.3).powi(2)
                    + (fx - w as f32 * 0.7).powi(2);
                mask.push(if r1 < 30.0 {
                    1
                } else if r2 < 12.0 {
                    7
                } else {
                    0
                });
            }
        }
    }
    let mut s = Sample::new(Image::new(img, 1, &[d, h, w]).unwrap(), Some(mask), id).unwrap();
    s.image.spacing = vec![1.5, 1.0, 1.0];
    s
}

/// A 2D two-channel sample.
fn slice(h: usize, w: usize, id: u64) -> Sample {
    let mut img = Vec::new();
    for c in 0..2 {
        for y in 0..h {
            for x in 0..w {
                img.push((y * w + x) as f32 * 0.01 + c as f32);
            }
        }
    }
    let mask = (0..h * w).map(|i| ((i / w) > h / 2) as u16 * 3).collect();
    Sample::new(Image::new(img, 2, &[h, w]).unwrap(), Some(mask), id).unwrap()
}

fn spatial_pipelines() -> Vec<(&'static str, Box<dyn Transform>)> {
    let affine = RandomAffine {
        degrees: [20.0, 10.0, 10.0],
        scale: (0.8, 1.2),
        translate: vec![2.0, 2.0, 2.0],
        shear: 0.1,
        ..RandomAffine::default()
    };
    let affine2 = RandomAffine {
        translate: vec![],
        ..affine.clone()
    };
    let elastic = RandomElastic {
        control_points: 5,
        max_displacement: 3.0,
        ..RandomElastic::default()
    };
    let smooth = RandomElastic {
        smoothness: Smoothness::Linear,
        sigma: 1.0,
        ..elastic.clone()
    };
    vec![
        (
            "flip",
            Box::new(RandomFlip {
                axes: vec![0, 1],
                p: 1.0,
            }),
        ),
        ("rot90", Box::new(RandomRot90 { axes: [0, 1] })),
        ("affine", Box::new(affine2.clone())),
        ("elastic (B-spline)", Box::new(elastic.clone())),
        ("elastic (smoothed)", Box::new(smooth)),
        (
            "affine + elastic",
            Box::new(RandomAffineElastic {
                affine: affine2,
                elastic,
            }),
        ),
        ("random crop", Box::new(RandomCrop { size: vec![10, 12] })),
        (
            "resize",
            Box::new(Resize {
                shape: vec![13, 31],
            }),
        ),
        (
            "foreground crop",
            Box::new(ForegroundCrop {
                size: vec![9, 9],
                p_foreground: 1.0,
            }),
        ),
    ]
}

#[test]
fn flips_and_quarter_turns_are_involutions() {
    for s in [volume(6, 7, 9, 1), slice(8, 11, 2)] {
        let mut t = s.clone();
        let axes: Vec<usize> = (0..s.image.shape.len()).collect();
        Op::Flip { axes: axes.clone() }.apply(&mut t).unwrap();
        assert_ne!(t.image.data, s.image.data);
        Op::Flip { axes }.apply(&mut t).unwrap();
        assert_eq!((&t.image, &t.mask), (&s.image, &s.mask));

        let mut r = s.clone();
        for _ in 0..4 {
            Op::Rot90 { k: 1, axes: [0, 1] }.apply(&mut r).unwrap();
        }
        assert_eq!(
            (&r.image.data, &r.mask, &r.image.shape),
            (&s.image.data, &s.mask, &s.image.shape)
        );
    }
    // numpy's rot90 on [[1, 2], [3, 4]] is [[2, 4], [1, 3]].
    let mut q = Sample::new(
        Image::new(vec![1.0, 2.0, 3.0, 4.0], 1, &[2, 2]).unwrap(),
        None,
        0,
    )
    .unwrap();
    Op::Rot90 { k: 1, axes: [0, 1] }.apply(&mut q).unwrap();
    assert_eq!(q.image.data, vec![2.0, 4.0, 1.0, 3.0]);
}

/// The statement tested: on an image that is linear in the voxel coordinates, linear
/// interpolation is exact, so an affine warp followed by its recorded inverse returns the
/// image to f32 rounding (tolerance 1e-4 on values up to ~40; the values here are multiples
/// of 0.25, so rounding usually lands exactly on them) wherever the forward warp read
/// inside the image — tested on the voxels within a central ball of radius n/4.
#[test]
fn affine_then_recorded_inverse_is_identity_in_the_interior() {
    let n = 24;
    let img: Vec<f32> = (0..n * n * n)
        .map(|i| {
            let (z, y, x) = (i / (n * n), i / n % n, i % n);
            0.5 * z as f32 + 0.25 * y as f32 + x as f32 + 3.0
        })
        .collect();
    let original = Sample::new(Image::new(img, 1, &[n, n, n]).unwrap(), None, 5).unwrap();
    let t = RandomAffine {
        degrees: [15.0, 15.0, 15.0],
        scale: (0.9, 1.1),
        translate: vec![1.0; 3],
        ..RandomAffine::default()
    };
    let (mut worst, mut moved, mut interior) = (0f32, 0f32, 0usize);
    for epoch in 0..5 {
        let mut s = original.clone();
        augment(&t, &mut s, 3, epoch).unwrap();
        for (a, b) in s.image.data.iter().zip(&original.image.data) {
            moved = moved.max((a - b).abs());
        }
        let history = s.history.clone();
        invert(&mut s, &history).unwrap();
        let c = (n as f32 - 1.0) / 2.0;
        for (i, (a, b)) in s.image.data.iter().zip(&original.image.data).enumerate() {
            let (z, y, x) = ((i / (n * n)) as f32, (i / n % n) as f32, (i % n) as f32);
            if (z - c).powi(2) + (y - c).powi(2) + (x - c).powi(2) <= (n as f32 / 4.0).powi(2) {
                worst = worst.max((a - b).abs());
                interior += 1;
            }
        }
    }
    println!("affine ∘ inverse over {interior} interior voxels: largest difference {worst:.2e} (the warp alone moved values by up to {moved:.1})");
    assert!(moved > 1.0 && interior > 1000);
    assert!(worst < 1e-4, "{worst}");
}

#[test]
fn masks_keep_their_labels_and_stay_aligned_with_the_image() {
    for (name, t) in spatial_pipelines() {
        for base in [volume(12, 14, 16, 3), slice(20, 24, 4)] {
            let nd = base.image.shape.len();
            // The crop sizes are written for 2D; lift them for 3D.
            if nd == 3 && matches!(name, "random crop" | "resize" | "foreground crop") {
                continue;
            }
            let labels: std::collections::BTreeSet<u16> =
                base.mask.as_ref().unwrap().iter().copied().collect();
            for epoch in 0..3 {
                let mut s = base.clone();
                augment(t.as_ref(), &mut s, 11, epoch).unwrap();
                let got: std::collections::BTreeSet<u16> =
                    s.mask.as_ref().unwrap().iter().copied().collect();
                assert!(got.is_subset(&labels), "{name}: {got:?} ⊄ {labels:?}");
                // The same operations on an image made from the label map, with nearest
                // interpolation for the image, give the label map.
                let mask_image: Vec<f32> = base
                    .mask
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let mut m = Sample::new(
                    Image::with_spacing(mask_image, 1, &base.image.shape, &base.image.spacing)
                        .unwrap(),
                    None,
                    base.id,
                )
                .unwrap();
                let nearest: Vec<Op> = s
                    .history
                    .iter()
                    .map(|op| match op.clone() {
                        Op::Warp {
                            matrix,
                            field,
                            in_shape,
                            out_shape,
                            mode,
                            ..
                        } => Op::Warp {
                            matrix,
                            field,
                            in_shape,
                            out_shape,
                            mode,
                            interpolation: Order::Nearest,
                        },
                        other => other,
                    })
                    .collect();
                if nearest.iter().any(|o| matches!(o, Op::Resize { .. })) {
                    continue; // resizing interpolates the image linearly by design
                }
                replay(&mut m, &nearest).unwrap();
                let as_labels: Vec<u16> = m.image.data.iter().map(|&v| v as u16).collect();
                assert_eq!(
                    &as_labels,
                    s.mask.as_ref().unwrap(),
                    "{name} ({nd}D) misaligned"
                );
            }
        }
    }
}

#[test]
fn replay_is_exact_and_threads_do_not_matter() {
    let pipeline = Sequence(vec![
        Box::new(RandomAffineElastic {
            affine: RandomAffine::default(),
            elastic: RandomElastic {
                control_points: 5,
                max_displacement: 2.0,
                ..RandomElastic::default()
            },
        }),
        Box::new(RandomApply {
            p: 0.5,
            inner: Box::new(RandomFlip {
                axes: vec![2],
                p: 0.5,
            }),
        }),
        Box::new(OneOf(vec![
            Box::new(GaussianNoise { std: (0.0, 0.1) }),
            Box::new(RicianNoise { std: (0.0, 0.1) }),
        ])),
        Box::new(GaussianBlur { sigma: (0.3, 1.0) }),
        Box::new(BiasField {
            order: 2,
            coefficient: 0.3,
        }),
        Box::new(RandomGamma {
            log_gamma: (-0.3, 0.3),
        }),
        Box::new(Contrast { factor: (0.8, 1.2) }),
        Box::new(CoarseDropout {
            holes: 2,
            size: vec![3, 3, 3],
            fill: 0.0,
        }),
    ]);
    let batch: Vec<Sample> = (0..6).map(|i| volume(10, 12, 14, i)).collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut b = batch.clone();
        pool.install(|| augment_batch(&pipeline, &mut b, 99, 4))
            .unwrap();
        b
    };
    let (one, two) = (run(1), run(2));
    for (a, b) in one.iter().zip(&two) {
        let bits = |s: &Sample| s.image.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b), "1 vs 2 threads");
        assert_eq!(a.mask, b.mask);
        // Replaying the recorded operations on the original reproduces the result.
        let mut r = batch[a.id as usize].clone();
        replay(&mut r, &a.history).unwrap();
        assert_eq!(bits(&r), bits(a), "replay of sample {}", a.id);
        // The history survives a JSON round trip.
        let json = serde_json::to_string(&a.history).unwrap();
        let back: Vec<Op> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a.history);
    }
    // Different epochs give different results.
    let mut other = batch[0].clone();
    augment(&pipeline, &mut other, 99, 5).unwrap();
    assert_ne!(other.image.data, one[0].image.data);
}

#[test]
fn bad_parameters_name_themselves() {
    let name = |r: scarce_augment::Result<()>| match r {
        Err(Error::Param { name, .. }) | Err(Error::Shape { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    let mut s = slice(8, 8, 0);
    assert_eq!(
        name(augment(&GaussianBlur { sigma: (-1.0, 1.0) }, &mut s, 0, 0)),
        "sigma"
    );
    assert_eq!(
        name(augment(
            &RandomFlip {
                axes: vec![0],
                p: 1.5
            },
            &mut s,
            0,
            0
        )),
        "p"
    );
    assert_eq!(
        name(augment(
            &RandomApply {
                p: -0.1,
                inner: Box::new(ZScore)
            },
            &mut s,
            0,
            0
        )),
        "p"
    );
    assert_eq!(
        name(augment(&GaussianNoise { std: (0.2, 0.1) }, &mut s, 0, 0)),
        "std"
    );
    let bad_mask = Sample::new(
        Image::new(vec![0.0; 16], 1, &[4, 4]).unwrap(),
        Some(vec![0; 15]),
        0,
    );
    assert!(matches!(bad_mask, Err(Error::Shape { name, .. }) if name == "mask"));
    assert!(matches!(
        scarce_augment::filter::gaussian_filter(&mut [0f32; 4], &[2, 2], &[-1.0, 1.0], 4.0, Mode::Reflect),
        Err(Error::Param { name, .. }) if name == "sigma"
    ));
    let mut no_mask = Sample::new(Image::new(vec![0.0; 16], 1, &[4, 4]).unwrap(), None, 0).unwrap();
    assert_eq!(
        name(augment(
            &ForegroundCrop {
                size: vec![2, 2],
                p_foreground: 1.0
            },
            &mut no_mask,
            0,
            0
        )),
        "mask"
    );
}

/// k-space artefacts against closed forms: with nothing to change they are identities
/// (magnitude of a non-negative image), and a spike at DC adds `intensity · mean` to every
/// voxel (the DC coefficient is the sum; the inverse transform divides by N).
#[test]
fn kspace_artefacts_match_their_closed_forms() {
    use scarce_augment::kspace::Artefact;
    let base = volume(8, 10, 12, 0);
    let mean =
        base.image.data.iter().map(|&v| v as f64).sum::<f64>() / base.image.data.len() as f64;
    let shifted: Vec<f32> = base.image.data.iter().map(|v| v + 2.0).collect();
    let positive = Sample::new(
        Image::new(shifted.clone(), 1, &[8, 10, 12]).unwrap(),
        None,
        0,
    )
    .unwrap();
    let mean_pos = mean + 2.0;
    let cases = [
        (Artefact::Gibbs { keep: 1.0 }, 0.0),
        (
            Artefact::Ghosting {
                axis: 1,
                ghosts: 3,
                intensity: 0.0,
            },
            0.0,
        ),
        (
            Artefact::Motion {
                axis: 0,
                boundaries: vec![0.5],
                moves: vec![scarce_augment::warp::Affine3::identity(); 2],
            },
            0.0,
        ),
        (
            Artefact::Spikes {
                positions: vec![vec![0, 0, 0]],
                intensity: 0.3,
            },
            0.3 * mean_pos,
        ),
    ];
    for (artefact, add) in cases {
        let mut s = positive.clone();
        Op::KSpace {
            artefact: artefact.clone(),
        }
        .apply(&mut s)
        .unwrap();
        let worst = s
            .image
            .data
            .iter()
            .zip(&shifted)
            .map(|(a, b)| (*a as f64 - (*b as f64 + add)).abs())
            .fold(0.0, f64::max);
        println!("{artefact:?}: largest difference from the closed form {worst:.1e}");
        assert!(worst < 1e-4, "{artefact:?}: {worst}");
    }
    // And the random versions change the image.
    for t in [
        Box::new(RandomGibbs { keep: (0.3, 0.5) }) as Box<dyn Transform>,
        Box::new(RandomSpike {
            spikes: 2,
            intensity: (0.1, 0.2),
        }),
        Box::new(RandomGhosting {
            axes: vec![1],
            ghosts: (2, 4),
            intensity: (0.5, 0.8),
        }),
        Box::new(RandomMotion {
            axes: vec![0],
            segments: 3,
            degrees: 5.0,
            translate: 2.0,
        }),
    ] {
        let mut s = positive.clone();
        augment(t.as_ref(), &mut s, 1, 0).unwrap();
        assert_ne!(s.image.data, shifted, "{t:?}");
    }
}

#[test]
fn pca_colour_jitter_shifts_along_the_colour_eigenvectors() {
    // Pixels spread along (1, 2, 2)/3 only: the covariance has one non-zero eigenvalue with
    // that eigenvector, so every shift must be parallel to it.
    let n = 64;
    let mut data = vec![0f32; 3 * n];
    for i in 0..n {
        let t = (i as f32 / n as f32) - 0.5;
        for (c, d) in [1.0, 2.0, 2.0].iter().enumerate() {
            data[c * n + i] = 0.5 + t * d / 3.0;
        }
    }
    let original = Sample::new(Image::new(data, 3, &[8, 8]).unwrap(), None, 0).unwrap();
    let mut s = original.clone();
    augment(&PcaColourJitter { sigma: 0.5 }, &mut s, 3, 0).unwrap();
    let shift: Vec<f64> = (0..3)
        .map(|c| (s.image.data[c * n] - original.image.data[c * n]) as f64)
        .collect();
    let norm = shift.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(norm > 0.0);
    let cos = (shift[0] + 2.0 * shift[1] + 2.0 * shift[2]) / (3.0 * norm);
    assert!((cos.abs() - 1.0).abs() < 1e-4, "{shift:?}");
    assert!(matches!(
        augment(&PcaColourJitter { sigma: 0.5 }, &mut slice(4, 4, 0), 0, 0),
        Err(Error::Param { name, .. }) if name == "channels"
    ));
}

/// The fast warp behind every geometric transform against the scipy-exact
/// `affine_transform` (checked on the fixtures): the same values to f32 rounding, for every
/// boundary mode, order 1 and order 0, into an output of another shape.
#[test]
fn the_warp_pass_equals_scipy_affine_transform() {
    use scarce_augment::interp::affine_transform;
    use scarce_augment::warp::{warp, Affine3};
    let (dims, out_dims) = ([7usize, 9, 11], [8usize, 6, 12]);
    let input: Vec<f32> = (0..7 * 9 * 11)
        .map(|i| ((i * 37 % 101) as f32) / 10.0 - 4.0)
        .collect();
    let input64: Vec<f64> = input.iter().map(|&v| v as f64).collect();
    let m = [
        [0.9, 0.2, -0.1, -1.2],
        [-0.15, 1.1, 0.25, 0.4],
        [0.1, -0.2, 0.95, -0.7],
    ];
    let matrix: Vec<f64> = m.iter().flat_map(|r| r[..3].to_vec()).collect();
    let offset: Vec<f64> = m.iter().map(|r| r[3]).collect();
    for mode in [
        Mode::Constant(0.5),
        Mode::GridConstant(0.5),
        Mode::Nearest,
        Mode::Reflect,
    ] {
        for order in [Order::Linear, Order::Nearest] {
            let want = affine_transform(&input64, &dims, &matrix, &offset, &out_dims, order, mode)
                .unwrap();
            let (got, _) = warp(
                &input,
                1,
                None,
                dims,
                out_dims,
                &Affine3(m),
                None,
                mode,
                order,
            );
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            if worst >= 1e-5 {
                let k = got
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| (*a as f64 - b).abs() >= 1e-5)
                    .unwrap();
                let o = [k / 72, k / 12 % 6, k % 12];
                panic!(
                    "{mode:?} {order:?}: {worst} at {o:?}: got {} want {}",
                    got[k], want[k]
                );
            }
        }
    }
}
