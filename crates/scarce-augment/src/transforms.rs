//! Random transforms: each draws its parameters from a counter-based stream and applies
//! them as recorded [`Op`]s, so the result can be replayed and, for invertible operations,
//! undone. Composition (sequence, one-of, random-apply) and parallel batches.

use rayon::prelude::*;

use crate::field::{Field, Smoothness};
use crate::filter::gaussian_filter;
use crate::interp::{Mode, Order};
use crate::kspace::Artefact;
use crate::ops::{bias_terms, Op};
use crate::rng::Rand;
use crate::sample::Sample;
use crate::warp::Affine3;
use crate::{Error, Result};

/// A random transform.
pub trait Transform: Send + Sync + std::fmt::Debug {
    /// Draws parameters from `rng` and applies them to `sample`, recording each operation
    /// in `sample.history`.
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()>;
}

/// Applies `t` to `sample` with the stream of `(seed, sample.id, epoch)`.
pub fn augment(t: &dyn Transform, sample: &mut Sample, seed: u64, epoch: u64) -> Result<()> {
    t.apply(sample, Rand::new(seed).at(sample.id).at(epoch))
}

/// [`augment`] over a batch in parallel; the result is the same at any thread count. The
/// first error (by position) is returned.
pub fn augment_batch(
    t: &dyn Transform,
    samples: &mut [Sample],
    seed: u64,
    epoch: u64,
) -> Result<()> {
    let errors: Vec<Result<()>> = samples
        .par_iter_mut()
        .map(|s| augment(t, s, seed, epoch))
        .collect();
    errors.into_iter().collect()
}

fn probability(name: &str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::param(
            name,
            format!("{p}: a probability must be in [0, 1]"),
        ))
    }
}

fn range(name: &str, (lo, hi): (f64, f64), min: f64) -> Result<()> {
    if lo.is_finite() && hi.is_finite() && lo <= hi && lo >= min {
        Ok(())
    } else {
        Err(Error::param(
            name,
            format!("({lo}, {hi}): need {min} ≤ low ≤ high, finite"),
        ))
    }
}

fn draw(rng: &Rand, counter: u64, (lo, hi): (f64, f64)) -> f64 {
    rng.range(counter, lo, hi)
}

// ---------------------------------------------------------------------------------------
// Composition.

/// Each transform in turn (each with its own child stream).
#[derive(Debug)]
pub struct Sequence(pub Vec<Box<dyn Transform>>);

impl Transform for Sequence {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        for (i, t) in self.0.iter().enumerate() {
            t.apply(sample, rng.at(i as u64))?;
        }
        Ok(())
    }
}

/// One transform chosen uniformly.
#[derive(Debug)]
pub struct OneOf(pub Vec<Box<dyn Transform>>);

impl Transform for OneOf {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::param("one_of", "no transforms to choose from"));
        }
        let k = rng.below(0, self.0.len() as u64) as usize;
        self.0[k].apply(sample, rng.at(k as u64 + 1))
    }
}

/// The inner transform with probability `p`.
#[derive(Debug)]
pub struct RandomApply {
    /// Probability of applying.
    pub p: f64,
    /// The transform.
    pub inner: Box<dyn Transform>,
}

impl Transform for RandomApply {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        probability("p", self.p)?;
        if rng.uniform(0) < self.p {
            self.inner.apply(sample, rng.at(1))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Spatial.

/// Flips each listed axis with probability `p` (vertical flips are legitimate for medical
/// images: there is no "up" that a flip would violate for most modalities' axes).
#[derive(Debug, Clone)]
pub struct RandomFlip {
    /// Spatial axes that may flip.
    pub axes: Vec<usize>,
    /// Probability per axis.
    pub p: f64,
}

impl Transform for RandomFlip {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        probability("p", self.p)?;
        let axes: Vec<usize> = self
            .axes
            .iter()
            .enumerate()
            .filter(|(i, _)| rng.uniform(*i as u64) < self.p)
            .map(|(_, &a)| a)
            .collect();
        if axes.is_empty() {
            return Ok(());
        }
        Op::Flip { axes }.apply(sample)
    }
}

/// A random number (0–3) of quarter turns in the plane of two axes.
#[derive(Debug, Clone)]
pub struct RandomRot90 {
    /// The plane.
    pub axes: [usize; 2],
}

impl Transform for RandomRot90 {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        let k = rng.below(0, 4) as u8;
        Op::Rot90 { k, axes: self.axes }.apply(sample)
    }
}

/// Random rotation, scaling, translation and shear about the image centre, in physical
/// space (anisotropic voxels are handled through the spacing).
#[derive(Debug, Clone)]
pub struct RandomAffine {
    /// Largest rotation in degrees about each axis (3D: axes 0, 1, 2; 2D: `[0]` is the
    /// in-plane angle).
    pub degrees: [f64; 3],
    /// Scale factor range (per axis, drawn independently when `isotropic` is false).
    pub scale: (f64, f64),
    /// Draw one scale for all axes.
    pub isotropic: bool,
    /// Largest translation per spatial axis, in voxels.
    pub translate: Vec<f64>,
    /// Largest shear (off-diagonal term).
    pub shear: f64,
    /// Outside the image.
    pub mode: Mode,
    /// Interpolation of the image (nearest for label-like images; masks are always
    /// nearest).
    pub interpolation: Order,
}

impl Default for RandomAffine {
    fn default() -> Self {
        RandomAffine {
            degrees: [10.0, 10.0, 10.0],
            scale: (0.9, 1.1),
            isotropic: false,
            translate: Vec::new(),
            shear: 0.0,
            mode: Mode::Constant(0.0),
            interpolation: Order::Linear,
        }
    }
}

fn rotation(axis: usize, radians: f64) -> [[f64; 3]; 3] {
    let (s, c) = radians.sin_cos();
    let (a, b) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let mut m = [[0.0; 3]; 3];
    for (k, row) in m.iter_mut().enumerate() {
        row[k] = 1.0;
    }
    m[a][a] = c;
    m[a][b] = -s;
    m[b][a] = s;
    m[b][b] = c;
    m
}

fn mul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            m[r][c] = (0..3).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    m
}

impl RandomAffine {
    fn check(&self, nd: usize) -> Result<()> {
        range("scale", self.scale, 1e-6)?;
        if self.degrees.iter().any(|d| !d.is_finite() || *d < 0.0) {
            return Err(Error::param(
                "degrees",
                format!("{:?}: finite, ≥ 0", self.degrees),
            ));
        }
        if !(self.translate.is_empty() || self.translate.len() == nd)
            || self.translate.iter().any(|t| !t.is_finite() || *t < 0.0)
        {
            return Err(Error::param(
                "translate",
                format!(
                    "{:?}: empty or one value ≥ 0 per axis ({nd})",
                    self.translate
                ),
            ));
        }
        if !(self.shear.is_finite() && self.shear >= 0.0) {
            return Err(Error::param(
                "shear",
                format!("{}: finite, ≥ 0", self.shear),
            ));
        }
        Ok(())
    }

    /// The drawn pull map (output index → input index) for an image of `shape` and
    /// `spacing`.
    pub fn matrix(&self, shape: &[usize], spacing: &[f64], rng: &Rand) -> Result<Affine3> {
        let nd = shape.len();
        self.check(nd)?;
        let lead = 3 - nd;
        // Physical-space linear part: rotations, then scales, then shear.
        let mut lin = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let angles: Vec<(usize, f64)> = if nd == 2 {
            vec![(0, self.degrees[0])]
        } else {
            (0..3).map(|a| (a, self.degrees[a])).collect()
        };
        for (i, (axis, max)) in angles.into_iter().enumerate() {
            let a = draw(rng, i as u64, (-max, max)).to_radians();
            lin = mul3(&lin, &rotation(axis, a));
        }
        let iso = draw(rng, 10, self.scale);
        let mut scale = [[0.0; 3]; 3];
        for (k, row) in scale.iter_mut().enumerate() {
            row[k] = if k < lead {
                1.0
            } else if self.isotropic {
                iso
            } else {
                draw(rng, 11 + k as u64, self.scale)
            };
        }
        lin = mul3(&lin, &scale);
        let mut shear = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut counter = 20;
        for (r, row) in shear.iter_mut().enumerate().skip(lead) {
            for (c, v) in row.iter_mut().enumerate().skip(lead) {
                if r != c {
                    *v = draw(rng, counter, (-self.shear, self.shear));
                    counter += 1;
                }
            }
        }
        lin = mul3(&lin, &shear);
        // Index space: x_index = S⁻¹ · lin · S · o, about the centre; spacing per axis.
        let mut sp = [1.0; 3];
        sp[lead..].copy_from_slice(&spacing[..nd]);
        let dims = crate::interp::dims3(shape)?;
        let mut m = [[0.0; 4]; 3];
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] = lin[r][c] * sp[c] / sp[r];
            }
        }
        let centre: Vec<f64> = dims.iter().map(|&n| (n as f64 - 1.0) / 2.0).collect();
        for r in 0..3 {
            let shift = if r >= lead && !self.translate.is_empty() {
                let t = self.translate[r - lead];
                draw(rng, 30 + r as u64, (-t, t))
            } else {
                0.0
            };
            m[r][3] = centre[r] + shift - (0..3).map(|c| m[r][c] * centre[c]).sum::<f64>();
        }
        Ok(Affine3(m))
    }
}

impl Transform for RandomAffine {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        let matrix = self.matrix(&sample.image.shape, &sample.image.spacing, &rng)?;
        Op::Warp {
            matrix,
            field: None,
            in_shape: sample.image.shape.clone(),
            out_shape: sample.image.shape.clone(),
            mode: self.mode,
            interpolation: self.interpolation,
        }
        .apply(sample)
    }
}

/// Elastic deformation: random displacements on a coarse grid of control points, made
/// smooth by a cubic B-spline (`Smoothness::BSpline`, TorchIO's method) or by Gaussian
/// smoothing of the grid with `sigma` (in control-point units) and linear interpolation.
#[derive(Debug, Clone)]
pub struct RandomElastic {
    /// Control points per spatial axis (≥ 4 for B-splines).
    pub control_points: usize,
    /// Largest displacement, in voxels (B-spline: uniform in ±this; smoothed: the scale of
    /// the normal draws before smoothing).
    pub max_displacement: f64,
    /// Interpolation between control points.
    pub smoothness: Smoothness,
    /// Gaussian smoothing of the grid (smoothed fields only).
    pub sigma: f64,
    /// Keep the outermost control points still, so the image border does not move.
    pub locked_borders: bool,
    /// Outside the image.
    pub mode: Mode,
    /// Interpolation of the image (masks are always nearest).
    pub interpolation: Order,
}

impl Default for RandomElastic {
    fn default() -> Self {
        RandomElastic {
            control_points: 7,
            max_displacement: 7.5,
            smoothness: Smoothness::BSpline,
            sigma: 1.0,
            locked_borders: true,
            mode: Mode::Constant(0.0),
            interpolation: Order::Linear,
        }
    }
}

impl RandomElastic {
    /// The drawn field for an image of `shape`.
    pub fn field(&self, shape: &[usize], rng: &Rand) -> Result<Field> {
        if !(self.max_displacement.is_finite() && self.max_displacement >= 0.0) {
            return Err(Error::param(
                "max_displacement",
                format!("{}: finite, ≥ 0", self.max_displacement),
            ));
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(Error::param(
                "sigma",
                format!("{}: finite, ≥ 0", self.sigma),
            ));
        }
        let nd = shape.len();
        let m = self.control_points;
        let grid = if nd == 2 { [1, m, m] } else { [m, m, m] };
        let per: usize = grid.iter().product();
        let mut values = vec![0.0; 3 * per];
        for comp in (3 - nd)..3 {
            let s = rng.at(comp as u64);
            let v = &mut values[comp * per..(comp + 1) * per];
            for (i, x) in v.iter_mut().enumerate() {
                *x = match self.smoothness {
                    Smoothness::BSpline => s.range(i as u64, -1.0, 1.0) * self.max_displacement,
                    Smoothness::Linear => s.normal(i as u64) * self.max_displacement,
                };
            }
            if self.smoothness == Smoothness::Linear && self.sigma > 0.0 {
                let sh = &grid[3 - nd..];
                gaussian_filter(v, sh, &vec![self.sigma; nd], 4.0, Mode::Reflect)?;
            }
            if self.locked_borders {
                for (i, x) in v.iter_mut().enumerate() {
                    let idx = [i / (grid[1] * grid[2]), i / grid[2] % grid[1], i % grid[2]];
                    if (3 - nd..3).any(|a| idx[a] == 0 || idx[a] == grid[a] - 1) {
                        *x = 0.0;
                    }
                }
            }
        }
        let f = Field {
            grid,
            values,
            smoothness: self.smoothness,
        };
        f.check()?;
        Ok(f)
    }
}

impl Transform for RandomElastic {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        let field = self.field(&sample.image.shape, &rng)?;
        Op::Warp {
            matrix: Affine3::identity(),
            field: Some(field),
            in_shape: sample.image.shape.clone(),
            out_shape: sample.image.shape.clone(),
            mode: self.mode,
            interpolation: self.interpolation,
        }
        .apply(sample)
    }
}

/// Affine and elastic fused into one resampling pass (one interpolation, not two).
#[derive(Debug, Clone)]
pub struct RandomAffineElastic {
    /// The affine part.
    pub affine: RandomAffine,
    /// The elastic part.
    pub elastic: RandomElastic,
}

impl Transform for RandomAffineElastic {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        let matrix = self
            .affine
            .matrix(&sample.image.shape, &sample.image.spacing, &rng.at(0))?;
        let field = self.elastic.field(&sample.image.shape, &rng.at(1))?;
        Op::Warp {
            matrix,
            field: Some(field),
            in_shape: sample.image.shape.clone(),
            out_shape: sample.image.shape.clone(),
            mode: self.affine.mode,
            interpolation: self.affine.interpolation,
        }
        .apply(sample)
    }
}

fn check_size(size: &[usize], shape: &[usize]) -> Result<()> {
    if size.len() != shape.len() || size.contains(&0) {
        return Err(Error::param(
            "size",
            format!("{size:?}: one positive size per axis of {shape:?}"),
        ));
    }
    Ok(())
}

/// Crops a box of `size` at a random position; axes already smaller are padded first
/// (constant 0) so the output always has `size`.
#[derive(Debug, Clone)]
pub struct RandomCrop {
    /// Output size.
    pub size: Vec<usize>,
}

fn pad_to(sample: &mut Sample, size: &[usize], mode: Mode) -> Result<()> {
    let shape = sample.image.shape.clone();
    if shape.iter().zip(size).all(|(n, s)| n >= s) {
        return Ok(());
    }
    let missing: Vec<usize> = shape
        .iter()
        .zip(size)
        .map(|(n, s)| s.saturating_sub(*n))
        .collect();
    Op::Pad {
        in_shape: shape,
        before: missing.iter().map(|m| m / 2).collect(),
        after: missing.iter().map(|m| m - m / 2).collect(),
        mode,
    }
    .apply(sample)
}

impl Transform for RandomCrop {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        check_size(&self.size, &sample.image.shape)?;
        pad_to(sample, &self.size, Mode::Constant(0.0))?;
        let shape = sample.image.shape.clone();
        let start = (0..shape.len())
            .map(|k| rng.below(k as u64, (shape[k] - self.size[k] + 1) as u64) as usize)
            .collect();
        Op::Crop {
            start,
            size: self.size.clone(),
            in_shape: shape,
        }
        .apply(sample)
    }
}

/// Crops a box of `size` centred, with probability `p_foreground`, on a random voxel of the
/// label map that is not background (else anywhere), shifted to stay inside the image.
#[derive(Debug, Clone)]
pub struct ForegroundCrop {
    /// Output size.
    pub size: Vec<usize>,
    /// Probability of centring on foreground.
    pub p_foreground: f64,
}

impl Transform for ForegroundCrop {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        check_size(&self.size, &sample.image.shape)?;
        probability("p_foreground", self.p_foreground)?;
        pad_to(sample, &self.size, Mode::Constant(0.0))?;
        let mask = sample
            .mask
            .as_ref()
            .ok_or_else(|| Error::param("mask", "ForegroundCrop needs a label map"))?;
        let shape = sample.image.shape.clone();
        let dims = sample.image.dims();
        let foreground: Vec<usize> = (0..mask.len()).filter(|&i| mask[i] != 0).collect();
        let centre = if !foreground.is_empty() && rng.uniform(0) < self.p_foreground {
            foreground[rng.below(1, foreground.len() as u64) as usize]
        } else {
            rng.below(2, mask.len() as u64) as usize
        };
        let c3 = [
            centre / (dims[1] * dims[2]),
            centre / dims[2] % dims[1],
            centre % dims[2],
        ];
        let lead = 3 - shape.len();
        let start = (0..shape.len())
            .map(|k| {
                let c = c3[lead + k];
                c.saturating_sub(self.size[k] / 2)
                    .min(shape[k] - self.size[k])
            })
            .collect();
        Op::Crop {
            start,
            size: self.size.clone(),
            in_shape: shape,
        }
        .apply(sample)
    }
}

/// Resamples to a voxel spacing (mm per axis), keeping the physical extent.
#[derive(Debug, Clone)]
pub struct ToSpacing {
    /// Target spacing per axis.
    pub spacing: Vec<f64>,
}

impl Transform for ToSpacing {
    fn apply(&self, sample: &mut Sample, _rng: Rand) -> Result<()> {
        let s = &sample.image;
        if self.spacing.len() != s.shape.len()
            || self.spacing.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(Error::param(
                "spacing",
                format!("{:?}: one positive value per axis", self.spacing),
            ));
        }
        let out_shape: Vec<usize> = (0..s.shape.len())
            .map(|k| ((s.shape[k] as f64 * s.spacing[k] / self.spacing[k]).round() as usize).max(1))
            .collect();
        Op::Resize {
            in_shape: s.shape.clone(),
            out_shape,
        }
        .apply(sample)
    }
}

/// Resizes to a shape (pixel edges aligned; linear for the image, nearest for the mask).
#[derive(Debug, Clone)]
pub struct Resize {
    /// Output shape.
    pub shape: Vec<usize>,
}

impl Transform for Resize {
    fn apply(&self, sample: &mut Sample, _rng: Rand) -> Result<()> {
        check_size(&self.shape, &sample.image.shape)?;
        Op::Resize {
            in_shape: sample.image.shape.clone(),
            out_shape: self.shape.clone(),
        }
        .apply(sample)
    }
}

// ---------------------------------------------------------------------------------------
// Intensity.

/// Additive Gaussian noise with a standard deviation drawn from `std`.
#[derive(Debug, Clone)]
pub struct GaussianNoise {
    /// Standard deviation range.
    pub std: (f64, f64),
}

impl Transform for GaussianNoise {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("std", self.std, 0.0)?;
        Op::Noise {
            std: draw(&rng, 0, self.std),
            key: rng.at(1).key(),
        }
        .apply(sample)
    }
}

/// Rician noise (magnitude MR images) with a standard deviation drawn from `std`.
#[derive(Debug, Clone)]
pub struct RicianNoise {
    /// Standard deviation range.
    pub std: (f64, f64),
}

impl Transform for RicianNoise {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("std", self.std, 0.0)?;
        Op::Rician {
            std: draw(&rng, 0, self.std),
            key: rng.at(1).key(),
        }
        .apply(sample)
    }
}

/// Gaussian blur, σ (voxels) drawn from `sigma` per axis.
#[derive(Debug, Clone)]
pub struct GaussianBlur {
    /// σ range.
    pub sigma: (f64, f64),
}

impl Transform for GaussianBlur {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("sigma", self.sigma, 0.0)?;
        let sigma = (0..sample.image.shape.len())
            .map(|k| draw(&rng, k as u64, self.sigma))
            .collect();
        Op::Blur { sigma }.apply(sample)
    }
}

/// Brightness: adds a shift drawn from `±delta`.
#[derive(Debug, Clone)]
pub struct Brightness {
    /// Largest shift.
    pub delta: f64,
}

impl Transform for Brightness {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("delta", (self.delta, self.delta), 0.0)?;
        Op::Linear {
            scale: 1.0,
            shift: draw(&rng, 0, (-self.delta, self.delta)),
        }
        .apply(sample)
    }
}

/// Contrast: scales about the image mean by a factor drawn from `factor`.
#[derive(Debug, Clone)]
pub struct Contrast {
    /// Factor range.
    pub factor: (f64, f64),
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

impl Transform for Contrast {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("factor", self.factor, 0.0)?;
        let f = draw(&rng, 0, self.factor);
        let m = mean(&sample.image.data);
        Op::Linear {
            scale: f,
            shift: m * (1.0 - f),
        }
        .apply(sample)
    }
}

/// Gamma with `log γ` drawn from `log_gamma` (TorchIO's convention).
#[derive(Debug, Clone)]
pub struct RandomGamma {
    /// Range of `log γ`.
    pub log_gamma: (f64, f64),
}

impl Transform for RandomGamma {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("log_gamma", self.log_gamma, f64::NEG_INFINITY)?;
        Op::Gamma {
            gamma: draw(&rng, 0, self.log_gamma).exp(),
        }
        .apply(sample)
    }
}

/// MR bias field: coefficients of Legendre polynomials up to total degree `order`, each
/// uniform in `±coefficient`.
#[derive(Debug, Clone)]
pub struct BiasField {
    /// Polynomial degree.
    pub order: usize,
    /// Largest coefficient magnitude.
    pub coefficient: f64,
}

impl Transform for BiasField {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("coefficient", (self.coefficient, self.coefficient), 0.0)?;
        let nd = sample.image.shape.len();
        // A 2D image has no axis-0 terms.
        let coefficients = bias_terms(self.order)
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if nd == 2 && t[0] > 0 {
                    0.0
                } else {
                    draw(&rng, i as u64, (-self.coefficient, self.coefficient))
                }
            })
            .collect();
        Op::BiasField {
            order: self.order,
            coefficients,
        }
        .apply(sample)
    }
}

/// Z-score normalisation (mean 0, standard deviation 1 over all voxels).
#[derive(Debug, Clone, Default)]
pub struct ZScore;

impl Transform for ZScore {
    fn apply(&self, sample: &mut Sample, _rng: Rand) -> Result<()> {
        let v = &sample.image.data;
        let m = mean(v);
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len().max(1) as f64;
        let sd = var.sqrt();
        if sd.is_nan() || sd <= 0.0 {
            return Err(Error::param("image", "constant image: z-score undefined"));
        }
        Op::Linear {
            scale: 1.0 / sd,
            shift: -m / sd,
        }
        .apply(sample)
    }
}

/// Maps the `lo`–`hi` percentiles to [0, 1], clipping outside.
#[derive(Debug, Clone)]
pub struct PercentileNorm {
    /// Lower percentile (0–100).
    pub lo: f64,
    /// Upper percentile (0–100).
    pub hi: f64,
}

impl Transform for PercentileNorm {
    fn apply(&self, sample: &mut Sample, _rng: Rand) -> Result<()> {
        if !(0.0 <= self.lo && self.lo < self.hi && self.hi <= 100.0) {
            return Err(Error::param(
                "percentiles",
                format!("({}, {}): need 0 ≤ lo < hi ≤ 100", self.lo, self.hi),
            ));
        }
        let mut v: Vec<f32> = sample.image.data.clone();
        v.sort_by(f32::total_cmp);
        // Linear interpolation between order statistics (numpy's default).
        let q = |p: f64| {
            let x = p / 100.0 * (v.len() - 1) as f64;
            let i = x.floor() as usize;
            let f = x - i as f64;
            v[i] as f64 * (1.0 - f) + v[(i + 1).min(v.len() - 1)] as f64 * f
        };
        let (a, b) = (q(self.lo), q(self.hi));
        if b.is_nan() || b <= a {
            return Err(Error::param("percentiles", "the two percentiles are equal"));
        }
        Op::Clip { lo: a, hi: b }.apply(sample)?;
        Op::Linear {
            scale: 1.0 / (b - a),
            shift: -a / (b - a),
        }
        .apply(sample)
    }
}

/// CT windowing: clip to `centre ± width / 2` (Hounsfield units) and map to [0, 1].
#[derive(Debug, Clone)]
pub struct CtWindow {
    /// Window centre (level).
    pub centre: f64,
    /// Window width.
    pub width: f64,
}

impl Transform for CtWindow {
    fn apply(&self, sample: &mut Sample, _rng: Rand) -> Result<()> {
        if !(self.width.is_finite() && self.width > 0.0 && self.centre.is_finite()) {
            return Err(Error::param(
                "width",
                format!("{}: must be positive", self.width),
            ));
        }
        let lo = self.centre - self.width / 2.0;
        Op::Clip {
            lo,
            hi: lo + self.width,
        }
        .apply(sample)?;
        Op::Linear {
            scale: 1.0 / self.width,
            shift: -lo / self.width,
        }
        .apply(sample)
    }
}

/// Coarse dropout: `holes` boxes of `size` (per axis, voxels) at random positions set to
/// `fill`.
#[derive(Debug, Clone)]
pub struct CoarseDropout {
    /// Number of boxes.
    pub holes: usize,
    /// Box size per axis.
    pub size: Vec<usize>,
    /// Value written.
    pub fill: f32,
}

impl Transform for CoarseDropout {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        check_size(&self.size, &sample.image.shape)?;
        let shape = sample.image.shape.clone();
        let boxes = (0..self.holes)
            .map(|h| {
                let r = rng.at(h as u64);
                let start = (0..shape.len())
                    .map(|k| r.below(k as u64, shape[k] as u64) as usize)
                    .collect();
                (start, self.size.clone())
            })
            .collect();
        Op::Dropout {
            boxes,
            fill: self.fill,
        }
        .apply(sample)
    }
}

// ---------------------------------------------------------------------------------------
// MR artefacts (k-space).

/// Gibbs ringing: k-space truncated to a central fraction drawn from `keep`.
#[derive(Debug, Clone)]
pub struct RandomGibbs {
    /// Range of the kept fraction, within (0, 1].
    pub keep: (f64, f64),
}

impl Transform for RandomGibbs {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("keep", self.keep, 1e-6)?;
        Op::KSpace {
            artefact: Artefact::Gibbs {
                keep: draw(&rng, 0, self.keep).min(1.0),
            },
        }
        .apply(sample)
    }
}

/// Spikes: `spikes` bright k-space points at random frequencies, each adding a fraction
/// drawn from `intensity` of the spectrum's peak.
#[derive(Debug, Clone)]
pub struct RandomSpike {
    /// Number of spikes.
    pub spikes: usize,
    /// Relative intensity range.
    pub intensity: (f64, f64),
}

impl Transform for RandomSpike {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("intensity", self.intensity, 0.0)?;
        let shape = sample.image.shape.clone();
        let positions = (0..self.spikes)
            .map(|s| {
                let r = rng.at(s as u64 + 1);
                shape
                    .iter()
                    .enumerate()
                    .map(|(a, &n)| r.below(a as u64, n as u64) as i64 - n as i64 / 2)
                    .collect()
            })
            .collect();
        Op::KSpace {
            artefact: Artefact::Spikes {
                positions,
                intensity: draw(&rng, 0, self.intensity),
            },
        }
        .apply(sample)
    }
}

/// Ghosting along a random axis of `axes`: every `ghosts`-th k-space plane kept, the others
/// attenuated by a fraction drawn from `intensity`; `ghosts` drawn from the range.
#[derive(Debug, Clone)]
pub struct RandomGhosting {
    /// Candidate phase-encoding axes.
    pub axes: Vec<usize>,
    /// Ghost spacing range (inclusive).
    pub ghosts: (usize, usize),
    /// Attenuation range within [0, 1].
    pub intensity: (f64, f64),
}

impl Transform for RandomGhosting {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        range("intensity", self.intensity, 0.0)?;
        if self.axes.is_empty() || self.ghosts.0 < 2 || self.ghosts.1 < self.ghosts.0 {
            return Err(Error::param(
                "ghosts",
                "an axis to choose from and 2 ≤ low ≤ high ghost spacing",
            ));
        }
        let axis = self.axes[rng.below(0, self.axes.len() as u64) as usize];
        let span = (self.ghosts.1 - self.ghosts.0 + 1) as u64;
        Op::KSpace {
            artefact: Artefact::Ghosting {
                axis,
                ghosts: self.ghosts.0 + rng.below(1, span) as usize,
                intensity: draw(&rng, 2, self.intensity).min(1.0),
            },
        }
        .apply(sample)
    }
}

/// Motion: k-space along a random axis of `axes` split into `segments` parts, each acquired
/// with the image at a random rigid position (rotation up to `degrees`, translation up to
/// `translate` voxels); the first segment is the unmoved image.
#[derive(Debug, Clone)]
pub struct RandomMotion {
    /// Candidate phase-encoding axes.
    pub axes: Vec<usize>,
    /// Segments (≥ 2).
    pub segments: usize,
    /// Largest rotation (degrees).
    pub degrees: f64,
    /// Largest translation (voxels).
    pub translate: f64,
}

impl Transform for RandomMotion {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        if self.axes.is_empty() || self.segments < 2 {
            return Err(Error::param(
                "segments",
                "an axis to choose from and ≥ 2 segments",
            ));
        }
        let nd = sample.image.shape.len();
        let axis = self.axes[rng.below(0, self.axes.len() as u64) as usize];
        let mut cuts: Vec<f64> = (0..self.segments - 1)
            .map(|i| rng.range(10 + i as u64, 0.05, 0.95))
            .collect();
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let moves = (0..=cuts.len())
            .map(|i| {
                if i == 0 {
                    return Ok(Affine3::identity());
                }
                RandomAffine {
                    degrees: [self.degrees; 3],
                    scale: (1.0, 1.0),
                    isotropic: true,
                    translate: vec![self.translate; nd],
                    ..RandomAffine::default()
                }
                .matrix(
                    &sample.image.shape,
                    &sample.image.spacing,
                    &rng.at(100 + i as u64),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Op::KSpace {
            artefact: Artefact::Motion {
                axis,
                boundaries: cuts,
                moves,
            },
        }
        .apply(sample)
    }
}

/// PCA colour jitter for RGB images (Krizhevsky et al. 2012, as used for dermoscopy and
/// pathology): adds `Σ_i α_i λ_i v_i` to every pixel, with `(λ_i, v_i)` the eigenpairs of
/// the image's 3 × 3 channel covariance and `α_i ~ N(0, σ²)`.
#[derive(Debug, Clone)]
pub struct PcaColourJitter {
    /// σ of the α draws.
    pub sigma: f64,
}

impl Transform for PcaColourJitter {
    fn apply(&self, sample: &mut Sample, rng: Rand) -> Result<()> {
        if sample.image.channels != 3 {
            return Err(Error::param(
                "channels",
                format!(
                    "{}: PCA colour jitter needs RGB (3 channels)",
                    sample.image.channels
                ),
            ));
        }
        range("sigma", (self.sigma, self.sigma), 0.0)?;
        let n = sample.image.voxels();
        let ch: Vec<&[f32]> = (0..3).map(|c| sample.image.channel(c)).collect();
        let means: Vec<f64> = ch.iter().map(|c| mean(c)).collect();
        let mut cov = [[0.0f64; 3]; 3];
        for (a, row) in cov.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v = (0..n)
                    .map(|i| (ch[a][i] as f64 - means[a]) * (ch[b][i] as f64 - means[b]))
                    .sum::<f64>()
                    / n.max(1) as f64;
            }
        }
        let (values, vectors) = symmetric_eigen3(cov);
        let shift: Vec<f64> = (0..3)
            .map(|c| {
                (0..3)
                    .map(|i| self.sigma * rng.normal(i as u64) * values[i].max(0.0) * vectors[c][i])
                    .sum()
            })
            .collect();
        Op::ChannelShift { shift }.apply(sample)
    }
}

// Matrix algebra reads best with explicit indices.
#[allow(clippy::needless_range_loop)]
/// Eigenvalues and eigenvectors (as columns) of a symmetric 3 × 3 matrix, by Jacobi
/// rotations.
fn symmetric_eigen3(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..50 {
        let (mut p, mut q, mut big) = (0, 1, 0.0);
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            if a[i][j].abs() > big {
                (p, q, big) = (i, j, a[i][j].abs());
            }
        }
        if big < 1e-15 {
            break;
        }
        let theta = 0.5 * (2.0 * a[p][q]).atan2(a[q][q] - a[p][p]);
        let (s, c) = theta.sin_cos();
        for k in 0..3 {
            let (akp, akq) = (a[k][p], a[k][q]);
            a[k][p] = c * akp - s * akq;
            a[k][q] = s * akp + c * akq;
        }
        for k in 0..3 {
            let (apk, aqk) = (a[p][k], a[q][k]);
            a[p][k] = c * apk - s * aqk;
            a[q][k] = s * apk + c * aqk;
        }
        for row in v.iter_mut() {
            let (vp, vq) = (row[p], row[q]);
            row[p] = c * vp - s * vq;
            row[q] = s * vp + c * vq;
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}
