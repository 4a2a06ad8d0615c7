//! Differentiable augmentation on candle tensors (feature `tensor`): DiffAugment (Zhao et
//! al. 2020) — colour (brightness, saturation, contrast), translation and cutout — and a
//! random affine warp through `grid_sample`, for training generators and models on a few
//! images. Gradients flow to the images; the random parameters are constants drawn from a
//! `scarce_core::rng::Stream`, so a batch is augmented the same way at any thread count.

use candle_core::Tensor;
use scarce_core::ops::{grid_sample, Padding, SampleMode};
use scarce_core::rng::Stream;

use crate::{Error, Result};

fn core(e: scarce_core::Error) -> Error {
    Error::Tensor(e)
}

fn candle(e: candle_core::Error) -> Error {
    Error::Tensor(e.into())
}

/// `n` uniform draws on `[lo, hi)` as a `[n, 1, 1, 1]` tensor like `x`.
fn per_sample(x: &Tensor, s: &Stream, lo: f64, hi: f64) -> Result<Tensor> {
    let n = x.dim(0).map_err(candle)?;
    s.uniform_tensor((n, 1, 1, 1), lo, hi, x.dtype(), x.device())
        .map_err(core)
}

/// The DiffAugment policy: which augmentations, at the paper's strengths.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffAugment {
    /// Brightness (±0.5), saturation (×0–2) and contrast (×0.5–1.5).
    pub color: bool,
    /// Largest shift as a fraction of the side (the paper's 0.125); 0 disables it.
    pub translation: f64,
    /// Side of the zeroed square as a fraction of the image side (0.5); 0 disables it.
    pub cutout: f64,
}

impl Default for DiffAugment {
    fn default() -> Self {
        DiffAugment {
            color: true,
            translation: 0.125,
            cutout: 0.5,
        }
    }
}

impl DiffAugment {
    /// Augments a batch `[N, C, H, W]`; `rng` keys this call (use one per training step).
    pub fn apply(&self, x: &Tensor, rng: &Stream) -> Result<Tensor> {
        if x.rank() != 4 {
            return Err(Error::shape("x", "[N, C, H, W]", x.dims()));
        }
        for (name, v) in [("translation", self.translation), ("cutout", self.cutout)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::param(name, format!("{v}: a fraction in [0, 1]")));
            }
        }
        let mut x = x.clone();
        if self.color {
            x = brightness(&x, &rng.child("brightness"))?;
            if x.dim(1).map_err(candle)? > 1 {
                x = saturation(&x, &rng.child("saturation"))?;
            }
            x = contrast(&x, &rng.child("contrast"))?;
        }
        if self.translation > 0.0 {
            x = translation(&x, self.translation, &rng.child("translation"))?;
        }
        if self.cutout > 0.0 {
            x = cutout(&x, self.cutout, &rng.child("cutout"))?;
        }
        Ok(x)
    }
}

/// `x + u`, `u ~ U(−0.5, 0.5)` per sample.
pub fn brightness(x: &Tensor, rng: &Stream) -> Result<Tensor> {
    x.broadcast_add(&per_sample(x, rng, -0.5, 0.5)?)
        .map_err(candle)
}

/// `(x − m) · u + m`, `m` the per-pixel channel mean, `u ~ U(0, 2)` per sample.
pub fn saturation(x: &Tensor, rng: &Stream) -> Result<Tensor> {
    let m = x.mean_keepdim(1).map_err(candle)?;
    let u = per_sample(x, rng, 0.0, 2.0)?;
    x.broadcast_sub(&m)
        .and_then(|d| d.broadcast_mul(&u))
        .and_then(|d| d.broadcast_add(&m))
        .map_err(candle)
}

/// `(x − m) · u + m`, `m` the per-sample mean, `u ~ U(0.5, 1.5)` per sample.
pub fn contrast(x: &Tensor, rng: &Stream) -> Result<Tensor> {
    let m = x
        .mean_keepdim(1)
        .and_then(|t| t.mean_keepdim(2))
        .and_then(|t| t.mean_keepdim(3))
        .map_err(candle)?;
    let u = per_sample(x, rng, 0.5, 1.5)?;
    x.broadcast_sub(&m)
        .and_then(|d| d.broadcast_mul(&u))
        .and_then(|d| d.broadcast_add(&m))
        .map_err(candle)
}

/// Sampling grid `[N, H, W, 2]` (x, y in [−1, 1], `align_corners = false`) of the affine maps
/// `theta` (`[N, 2, 3]`, output normalised coordinates → input), as PyTorch's `affine_grid`.
pub fn affine_grid(theta: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let n = theta.dim(0).map_err(candle)?;
    if theta.dims() != [n, 2, 3] {
        return Err(Error::shape("theta", "[N, 2, 3]", theta.dims()));
    }
    let (dt, dev) = (theta.dtype(), theta.device());
    // Pixel centres in normalised coordinates: (2i + 1)/size − 1.
    let mut base = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            base.push((2 * x + 1) as f64 / w as f64 - 1.0);
            base.push((2 * y + 1) as f64 / h as f64 - 1.0);
            base.push(1.0);
        }
    }
    let base = Tensor::from_vec(base, (1, h * w, 3), dev)
        .and_then(|b| b.to_dtype(dt))
        .map_err(candle)?;
    base.broadcast_matmul(&theta.transpose(1, 2).map_err(candle)?)
        .and_then(|g| g.reshape((n, h, w, 2)))
        .map_err(candle)
}

/// Integer shifts of up to `ratio` of each side per sample, zeros shifted in (bilinear
/// sampling at exact pixel centres, so it is a pure shift and differentiable in `x`).
pub fn translation(x: &Tensor, ratio: f64, rng: &Stream) -> Result<Tensor> {
    let (n, _, h, w) = x.dims4().map_err(candle)?;
    let mut theta = Vec::with_capacity(n * 6);
    for i in 0..n {
        let s = rng.at(i as u64);
        let sx = ((ratio * w as f64 + 0.5) as i64).max(0);
        let sy = ((ratio * h as f64 + 0.5) as i64).max(0);
        let dx = s.below(0, (2 * sx + 1) as u64) as i64 - sx;
        let dy = s.below(1, (2 * sy + 1) as u64) as i64 - sy;
        // Output pixel p reads input pixel p − d: normalised offset −2d/size.
        theta.extend([1.0, 0.0, -2.0 * dx as f64 / w as f64]);
        theta.extend([0.0, 1.0, -2.0 * dy as f64 / h as f64]);
    }
    let theta = Tensor::from_vec(theta, (n, 2, 3), x.device())
        .and_then(|t| t.to_dtype(x.dtype()))
        .map_err(candle)?;
    let grid = affine_grid(&theta, h, w)?;
    grid_sample(x, &grid, SampleMode::Linear, Padding::Zeros, false).map_err(core)
}

/// Zeroes one square of side `ratio · size` per sample at a random centre (the square may
/// be cut by the border).
pub fn cutout(x: &Tensor, ratio: f64, rng: &Stream) -> Result<Tensor> {
    let (n, _, h, w) = x.dims4().map_err(candle)?;
    let (ch, cw) = (
        (ratio * h as f64 + 0.5) as usize,
        (ratio * w as f64 + 0.5) as usize,
    );
    let mut mask = vec![1f64; n * h * w];
    for i in 0..n {
        let s = rng.at(i as u64);
        // Centre anywhere in the image; the box is clipped at the border.
        let y0 = s.below(0, h as u64) as i64 - ch as i64 / 2;
        let x0 = s.below(1, w as u64) as i64 - cw as i64 / 2;
        for y in y0.max(0)..(y0 + ch as i64).min(h as i64) {
            for x in x0.max(0)..(x0 + cw as i64).min(w as i64) {
                mask[i * h * w + y as usize * w + x as usize] = 0.0;
            }
        }
    }
    let mask = Tensor::from_vec(mask, (n, 1, h, w), x.device())
        .and_then(|m| m.to_dtype(x.dtype()))
        .map_err(candle)?;
    x.broadcast_mul(&mask).map_err(candle)
}

/// A random affine warp per sample through `grid_sample` (bilinear, zeros outside):
/// rotation up to `degrees`, scale in `scale`, translation up to `translate` (fraction of
/// the side). Differentiable in `x`.
pub fn random_affine(
    x: &Tensor,
    degrees: f64,
    scale: (f64, f64),
    translate: f64,
    rng: &Stream,
) -> Result<Tensor> {
    if !(scale.0 > 0.0 && scale.0 <= scale.1) || degrees < 0.0 || translate < 0.0 {
        return Err(Error::param(
            "affine",
            "degrees ≥ 0, 0 < scale low ≤ high, translate ≥ 0",
        ));
    }
    let (n, _, h, w) = x.dims4().map_err(candle)?;
    let mut theta = Vec::with_capacity(n * 6);
    for i in 0..n {
        let s = rng.at(i as u64);
        let a = (s.uniform(0) * 2.0 - 1.0) * degrees.to_radians();
        let k = scale.0 + (scale.1 - scale.0) * s.uniform(1);
        let (tx, ty) = (
            (s.uniform(2) * 2.0 - 1.0) * translate * 2.0,
            (s.uniform(3) * 2.0 - 1.0) * translate * 2.0,
        );
        let (sn, cs) = a.sin_cos();
        theta.extend([cs / k, -sn / k, tx, sn / k, cs / k, ty]);
    }
    let theta = Tensor::from_vec(theta, (n, 2, 3), x.device())
        .and_then(|t| t.to_dtype(x.dtype()))
        .map_err(candle)?;
    let grid = affine_grid(&theta, h, w)?;
    grid_sample(x, &grid, SampleMode::Linear, Padding::Zeros, false).map_err(core)
}
