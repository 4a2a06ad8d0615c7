//! Every scarce-augment transform on a real DICOM slice and a real NIfTI volume, as an SVG
//! grid with the label map's outline in red — look at it.
//!
//! Row 1: `data/dicom/pydicom_test_files/MR_small.dcm` (2D). Row 2: the middle slice of
//! `data/nifti/nibabel/anatomical.nii` (transformed in 3D). The data sets carry no
//! segmentation, so the label map is made by thresholding (label 1 above the 60th
//! percentile) plus a disc (label 2), which is enough to see image and mask move together.
//! Each tile is titled with its transform; `gallery.txt` says which file each row shows.
//!
//!     cargo run --release --example augment_gallery [-- --out DIR]

#[path = "common/cli.rs"]
mod cli;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use scarce::augment::field::Smoothness;
use scarce::augment::transforms::*;
use scarce::augment::{augment, Image, Op, Rand, Sample, Transform};
use scarce::eval::plot::{colours, Canvas, Figure};
use scarce::io::dicom::ImageOptions;
use scarce::io::{DicomFile, Nifti};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A sample from a scarce-io image (`[c, d, h, w]`, spacing along w, h, d), intensities
/// scaled to [0, 1], with a made-up
/// label map: 1 above the 60th percentile, 2 in a disc left of centre.
fn sample(img: &scarce::io::Image) -> Res<Sample> {
    let [_, d, h, w] = img.shape;
    // scarce-io's axes run width first, scarce-augment's depth first: the conversion turns
    // the shape and spacing around.
    let mut image = Image::try_from(img)?;
    // Intensities scaled to [0, 1], so noise levels read as fractions of the range.
    let (lo, hi) = image
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    image
        .data
        .iter_mut()
        .for_each(|v| *v = (*v - lo) / (hi - lo).max(1e-12));
    let mut sorted = image.channel(0).to_vec();
    sorted.sort_by(f32::total_cmp);
    let cut = sorted[sorted.len() * 6 / 10];
    let mask = (0..d * h * w)
        .map(|i| {
            let (z, y, x) = (i / (h * w), i / w % h, i % w);
            let (dz, dy, dx) = (
                z as f32 - d as f32 / 2.0,
                y as f32 - h as f32 / 2.0,
                x as f32 - w as f32 / 3.0,
            );
            if dz * dz + dy * dy + dx * dx < (w as f32 / 8.0).powi(2) {
                2
            } else {
                u16::from(image.channel(0)[i] > cut)
            }
        })
        .collect();
    Ok(Sample::new(image, Some(mask), 1)?)
}

/// An operation with fixed parameters, as a transform (to show one definite rotation).
#[derive(Debug)]
struct Fixed(Op);

impl Transform for Fixed {
    fn apply(&self, sample: &mut Sample, _rng: Rand) -> scarce::augment::Result<()> {
        self.0.apply(sample)
    }
}

/// The transforms shown, sized for an image of `shape` where that matters.
fn transforms(shape: &[usize]) -> Vec<(&'static str, Box<dyn Transform>)> {
    let affine = RandomAffine {
        degrees: [15.0; 3],
        scale: (0.85, 1.15),
        shear: 0.1,
        ..RandomAffine::default()
    };
    let elastic = RandomElastic {
        control_points: 6,
        max_displacement: 4.0,
        ..RandomElastic::default()
    };
    vec![
        ("original", Box::new(Sequence(vec![]))),
        (
            "flip (all axes)",
            Box::new(RandomFlip {
                axes: vec![0, 1],
                p: 1.0,
            }),
        ),
        (
            "rot90 (one quarter turn, fixed)",
            Box::new(Fixed(Op::Rot90 { k: 1, axes: [0, 1] })),
        ),
        (
            "affine ±15°, scale 0.85–1.15, shear 0.1",
            Box::new(affine.clone()),
        ),
        (
            "elastic, B-spline (6 control points, 4 voxels)",
            Box::new(elastic.clone()),
        ),
        (
            "elastic, smoothed grid (σ = 1 control point)",
            Box::new(RandomElastic {
                smoothness: Smoothness::Linear,
                max_displacement: 3.0,
                ..elastic.clone()
            }),
        ),
        (
            "affine + elastic in one pass",
            Box::new(RandomAffineElastic { affine, elastic }),
        ),
        (
            "foreground crop (half size)",
            Box::new(ForegroundCrop {
                size: shape.iter().map(|n| (n / 2).max(1)).collect(),
                p_foreground: 1.0,
            }),
        ),
        (
            "Gaussian noise σ 5–10% of the range",
            Box::new(GaussianNoise { std: (0.05, 0.1) }),
        ),
        (
            "Rician noise σ 5–10%",
            Box::new(RicianNoise { std: (0.05, 0.1) }),
        ),
        (
            "Gaussian blur σ 1–2",
            Box::new(GaussianBlur { sigma: (1.0, 2.0) }),
        ),
        (
            "contrast ×0.5–0.7",
            Box::new(Contrast { factor: (0.5, 0.7) }),
        ),
        (
            "gamma, log γ ∈ ±0.5",
            Box::new(RandomGamma {
                log_gamma: (-0.5, 0.5),
            }),
        ),
        (
            "MR bias field (order 3)",
            Box::new(BiasField {
                order: 3,
                coefficient: 0.5,
            }),
        ),
        (
            "percentile normalisation 1–99",
            Box::new(PercentileNorm { lo: 1.0, hi: 99.0 }),
        ),
        (
            "Gibbs ringing (keep 30–50% of k-space)",
            Box::new(RandomGibbs { keep: (0.3, 0.5) }),
        ),
        (
            "k-space spike",
            Box::new(RandomSpike {
                spikes: 1,
                intensity: (0.05, 0.1),
            }),
        ),
        (
            "ghosting along axis 0",
            Box::new(RandomGhosting {
                axes: vec![0],
                ghosts: (3, 5),
                intensity: (0.5, 0.8),
            }),
        ),
        (
            "motion (3 positions, ±5°, ±3 voxels)",
            Box::new(RandomMotion {
                axes: vec![0],
                segments: 3,
                degrees: 5.0,
                translate: 3.0,
            }),
        ),
        (
            "coarse dropout, 4 boxes",
            Box::new(CoarseDropout {
                holes: 4,
                size: shape.iter().map(|n| (n / 8).max(1)).collect(),
                fill: 0.0,
            }),
        ),
    ]
}

/// The middle slice of channel 0 and of the label map.
fn view(s: &Sample) -> (Vec<f32>, Vec<u16>, usize, usize) {
    let dims = s.image.dims();
    let plane = dims[1] * dims[2];
    let z = dims[0] / 2;
    let img = s.image.channel(0)[z * plane..(z + 1) * plane].to_vec();
    let mask = s
        .mask
        .as_ref()
        .map_or(vec![0; plane], |m| m[z * plane..(z + 1) * plane].to_vec());
    (img, mask, dims[1], dims[2])
}

fn draw(canvas: &mut Canvas, x0: i64, y0: i64, s: &Sample, scale: i64) {
    let (img, mask, h, w) = view(s);
    canvas.grey_image(x0, y0, &img, h, w, scale);
    for y in 0..h {
        for x in 0..w {
            let l = mask[y * w + x];
            let edge = [(0i64, 1i64), (1, 0), (0, -1), (-1, 0)]
                .iter()
                .any(|(dy, dx)| {
                    let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                    yy >= 0
                        && xx >= 0
                        && (yy as usize) < h
                        && (xx as usize) < w
                        && mask[yy as usize * w + xx as usize] != l
                });
            if edge && l != 0 {
                let colour = if l == 2 {
                    colours::ORANGE
                } else {
                    colours::RED
                };
                let (px, py) = (x0 + x as i64 * scale, y0 + y as i64 * scale);
                canvas.rect(px, py, px + scale - 1, py + scale - 1, colour);
            }
        }
    }
}

/// Every augmentation on a DICOM slice and a NIfTI volume, as one SVG grid.
#[derive(clap::Parser)]
struct Args {
    /// Output folder.
    #[arg(long, default_value = "target/augment_gallery")]
    out: PathBuf,
}

fn run() -> Res<()> {
    let Args { out } = clap::Parser::parse();
    std::fs::create_dir_all(&out)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let dicom = DicomFile::open(root.join("dicom/pydicom_test_files/MR_small.dcm"))?
        .to_image(&ImageOptions::default())?;
    let nifti = Nifti::open(root.join("nifti/nibabel/anatomical.nii"))?.to_image();
    let rows = [
        ("MR_small.dcm", sample(&dicom)?),
        ("anatomical.nii", sample(&nifti)?),
    ];
    let count = transforms(&rows[0].1.image.shape).len();
    let mut figure = Figure::new(count, (180, 180));
    let mut legend = String::new();
    for (r, (file, base)) in rows.iter().enumerate() {
        let _ = writeln!(
            legend,
            "row {}: {file}, shape {:?}, spacing {:?}",
            r + 1,
            base.image.shape,
            base.image.spacing
        );
        let dims = base.image.dims();
        let scale = (128 / dims[1].max(dims[2]) as i64).max(1);
        for (name, t) in transforms(&base.image.shape) {
            let mut s = base.clone();
            augment(t.as_ref(), &mut s, 7, 0)?;
            let (_, _, h, w) = view(&s);
            let mut tile = Canvas::new(w * scale as usize, h * scale as usize);
            draw(&mut tile, 0, 0, &s, scale);
            figure = figure.picture(name, tile);
        }
    }
    figure.save_svg(&out.join("gallery.svg"))?;
    std::fs::write(out.join("gallery.txt"), &legend)?;
    print!("{legend}");
    println!("wrote {}", out.join("gallery.svg").display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::exit(run())
}
