//! Views for self-supervised learning on grey-scale (or few-channel) medical images: random
//! resized crop, flip, small rotation, brightness / contrast / gamma, Gaussian blur and
//! noise, in 2D and 3D. No colour jitter: a one-channel image has no hue or saturation.
//!
//! The defaults follow the SimCLR recipe for medical images of Azizi et al. (2021, "Big
//! self-supervised models advance medical image classification"): crops of 50–100 % of the
//! area, flips, rotation within ±10°, brightness and contrast jitter 0.4 with probability
//! 0.8, blur with probability 0.5 — the same numbers as the PyTorch label-efficiency anchor
//! (`shared/bench/label_efficiency.py`, `simclr_view`).
//!
//! A view is a pure function of (image, seed, sample id, view index): the same call returns
//! the same pixels on any machine, in any batch order, on any number of threads.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::Rand;

/// How views are drawn. Intensities are assumed in `[0, 1]` (clamped there after the
/// brightness / contrast step, as torchvision's `ColorJitter` does).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ViewConfig {
    /// Crop area as a fraction of the image, drawn uniformly in this range.
    pub crop_area: (f64, f64),
    /// Crop aspect ratio range (log-uniform); torchvision's `RandomResizedCrop` uses 3/4–4/3.
    pub crop_ratio: (f64, f64),
    /// Zoom factor range (uniform; > 1 enlarges), applied after the crop.
    pub zoom: (f64, f64),
    /// Shift as a fraction of the image side, uniform in `±shift` per in-plane axis.
    pub shift: f64,
    /// Mirror the last axis with probability 0.5.
    pub flip: bool,
    /// Rotation in degrees, uniform in `±rotate` (in-plane: the last two axes).
    pub rotate: f64,
    /// Probability of the brightness / contrast jitter.
    pub jitter_p: f64,
    /// Brightness factor uniform in `1 ± brightness`.
    pub brightness: f64,
    /// Contrast factor uniform in `1 ± contrast` (about the image mean).
    pub contrast: f64,
    /// Gamma: `x^γ` with `ln γ` uniform in `±gamma` (0 = off).
    pub gamma: f64,
    /// Probability of a Gaussian blur.
    pub blur_p: f64,
    /// Blur sigma range in pixels.
    pub blur_sigma: (f64, f64),
    /// Standard deviation of additive Gaussian noise (0 = off).
    pub noise_std: f64,
    /// Cutout: a square of this fraction of the in-plane side, at a random centre, set to
    /// 0.5 (DeVries & Taylor 2017; 0 = off).
    #[serde(default)]
    pub cutout: f64,
}

impl Default for ViewConfig {
    /// Azizi et al. (2021)'s medical SimCLR views at MedMNIST scale (see the module docs).
    fn default() -> Self {
        ViewConfig {
            crop_area: (0.5, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            zoom: (1.0, 1.0),
            shift: 0.0,
            flip: true,
            rotate: 10.0,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            gamma: 0.0,
            blur_p: 0.5,
            blur_sigma: (0.1, 1.5),
            noise_std: 0.0,
            cutout: 0.0,
        }
    }
}

impl ViewConfig {
    /// The supervised training augmentation of the anchor's from-scratch and fine-tuning
    /// runs (`sup_aug`): flip, rotation ±10°, zoom 0.9–1.1 and shift ±10 % (no crop, no
    /// intensity).
    pub fn supervised() -> Self {
        ViewConfig {
            crop_area: (1.0, 1.0),
            crop_ratio: (1.0, 1.0),
            zoom: (0.9, 1.1),
            shift: 0.1,
            flip: true,
            rotate: 10.0,
            jitter_p: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            gamma: 0.0,
            blur_p: 0.0,
            blur_sigma: (0.1, 0.1),
            noise_std: 0.0,
            cutout: 0.0,
        }
    }

    /// FixMatch's strong view for grey-scale images: a fixed RandAugment-like policy of
    /// every geometric and intensity operation at high magnitude — crop 35–100 %, ±30°,
    /// shift ±12.5 %, brightness / contrast ±0.5 always, gamma, blur, noise — and Cutout of
    /// half the side, as FixMatch (Sohn et al. 2020) ends its strong policy with.
    pub fn strong() -> Self {
        ViewConfig {
            crop_area: (0.35, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            zoom: (1.0, 1.0),
            shift: 0.125,
            flip: true,
            rotate: 30.0,
            jitter_p: 1.0,
            brightness: 0.5,
            contrast: 0.5,
            gamma: 0.4,
            blur_p: 0.5,
            blur_sigma: (0.1, 1.5),
            noise_std: 0.03,
            cutout: 0.5,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |name: &str, why: &str| Err(Error::param(format!("ViewConfig.{name}"), why));
        let (a0, a1) = self.crop_area;
        if !(a0 > 0.0 && a0 <= a1 && a1 <= 1.0) {
            return bad("crop_area", "must satisfy 0 < lo <= hi <= 1");
        }
        for (name, (lo, hi)) in [
            ("crop_ratio", self.crop_ratio),
            ("zoom", self.zoom),
            ("blur_sigma", self.blur_sigma),
        ] {
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                return bad(name, "must satisfy 0 < lo <= hi");
            }
        }
        for (name, p) in [("jitter_p", self.jitter_p), ("blur_p", self.blur_p)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(name, "must be a probability");
            }
        }
        for (name, v) in [
            ("shift", self.shift),
            ("rotate", self.rotate),
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("gamma", self.gamma),
            ("noise_std", self.noise_std),
            ("cutout", self.cutout),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(name, "must be finite and non-negative");
            }
        }
        Ok(())
    }
}

/// Draws views of a batch of images stored contiguously as `[N, C, *spatial]`
/// (`spatial` = `[H, W]` or `[D, H, W]`), one view per image: image `i` uses sample id
/// `ids[i]`. Returns the views in the same layout.
///
/// ```
/// use scarce_augment::views::{views, ViewConfig};
/// let images = vec![0.5f32; 2 * 28 * 28];
/// let v0 = views(&images, &[1, 28, 28], &[10, 11], 0, 7, &ViewConfig::default()).unwrap();
/// let again = views(&images[784..], &[1, 28, 28], &[11], 0, 7, &ViewConfig::default()).unwrap();
/// assert_eq!(&v0[784..], &again[..]); // a view depends on (seed, sample, view) alone
/// ```
pub fn views(
    images: &[f32],
    sample_shape: &[usize],
    ids: &[u64],
    view: u64,
    seed: u64,
    cfg: &ViewConfig,
) -> Result<Vec<f32>> {
    cfg.check()?;
    let (c, spatial) = match sample_shape {
        [c, h, w] => (*c, [1, *h, *w]),
        [c, d, h, w] => (*c, [*d, *h, *w]),
        _ => {
            return Err(Error::Shape {
                name: "sample_shape".into(),
                expected: "[C, H, W] or [C, D, H, W]".into(),
                got: sample_shape.to_vec(),
            })
        }
    };
    let per = c * spatial.iter().product::<usize>();
    if per == 0 || images.len() != per * ids.len() {
        return Err(Error::param(
            "images",
            format!(
                "{} values for {} images of shape {sample_shape:?}",
                images.len(),
                ids.len()
            ),
        ));
    }
    let root = Rand::new(seed).child("ssl-view");
    let mut out = vec![0f32; images.len()];
    out.par_chunks_mut(per)
        .zip(images.par_chunks(per))
        .zip(ids.par_iter())
        .for_each(|((dst, src), &id)| {
            let r = root.at(id).at(view);
            one_view(src, dst, c, spatial, cfg, &r);
        });
    Ok(out)
}

/// One image's view: geometry by inverse mapping with trilinear / bilinear interpolation
/// (border values outside), then intensity, blur and noise.
fn one_view(
    src: &[f32],
    dst: &mut [f32],
    c: usize,
    [d, h, w]: [usize; 3],
    cfg: &ViewConfig,
    r: &Rand,
) {
    // Geometry: output coordinate (normalised to [-1, 1]) -> input coordinate.
    let area = r.range(0, cfg.crop_area.0, cfg.crop_area.1);
    let log_ratio = r.range(1, cfg.crop_ratio.0.ln(), cfg.crop_ratio.1.ln());
    let ratio = log_ratio.exp();
    let zoom = r.range(13, cfg.zoom.0, cfg.zoom.1);
    let sx = (area * ratio).sqrt().min(1.0) / zoom;
    let sy = (area / ratio).sqrt().min(1.0) / zoom;
    // 3D: the crop's depth extent follows its in-plane area.
    let sz = if d > 1 { area.sqrt().min(1.0) } else { 1.0 };
    // Crop position within the image, plus the shift (normalised coordinates span 2).
    let tx = r.range(2, -1.0, 1.0) * (1.0 - sx).max(0.0) + 2.0 * r.range(14, -cfg.shift, cfg.shift);
    let ty = r.range(3, -1.0, 1.0) * (1.0 - sy).max(0.0) + 2.0 * r.range(15, -cfg.shift, cfg.shift);
    let tz = if d > 1 {
        r.range(4, -1.0, 1.0) * (1.0 - sz)
    } else {
        0.0
    };
    let angle = r.range(5, -cfg.rotate, cfg.rotate).to_radians();
    let flip = if cfg.flip && r.uniform(6) < 0.5 {
        -1.0
    } else {
        1.0
    };
    let (cs, sn) = (angle.cos(), angle.sin());
    // x_in = T + S R F x_out, as torch's affine_grid theta in the anchor.
    let m = [[sx * cs * flip, -sx * sn], [sy * sn * flip, sy * cs]];
    let (wf, hf, df) = (w as f64, h as f64, d as f64);
    let plane = h * w;
    let vox = d * plane;
    for ch in 0..c {
        let s = &src[ch * vox..(ch + 1) * vox];
        let o = &mut dst[ch * vox..(ch + 1) * vox];
        for z in 0..d {
            let gz = if d > 1 {
                (2.0 * z as f64 + 1.0) / df - 1.0
            } else {
                0.0
            };
            let iz = if d > 1 {
                ((sz * gz + tz + 1.0) * df - 1.0) / 2.0
            } else {
                0.0
            };
            for y in 0..h {
                let gy = (2.0 * y as f64 + 1.0) / hf - 1.0;
                for x in 0..w {
                    let gx = (2.0 * x as f64 + 1.0) / wf - 1.0;
                    let ix = ((m[0][0] * gx + m[0][1] * gy + tx + 1.0) * wf - 1.0) / 2.0;
                    let iy = ((m[1][0] * gx + m[1][1] * gy + ty + 1.0) * hf - 1.0) / 2.0;
                    o[z * plane + y * w + x] = sample_border(s, [d, h, w], iz, iy, ix);
                }
            }
        }
    }
    // Intensity, per image (all channels alike).
    if cfg.jitter_p > 0.0 && r.uniform(7) < cfg.jitter_p {
        let b = 1.0 + r.range(8, -cfg.brightness, cfg.brightness);
        let k = 1.0 + r.range(9, -cfg.contrast, cfg.contrast);
        for o in dst.chunks_mut(vox) {
            let mean = o.iter().map(|&v| v as f64 * b).sum::<f64>() / vox as f64;
            for v in o.iter_mut() {
                *v = (((*v as f64 * b) - mean) * k + mean).clamp(0.0, 1.0) as f32;
            }
        }
    }
    if cfg.gamma > 0.0 {
        let g = r.range(10, -cfg.gamma, cfg.gamma).exp();
        for v in dst.iter_mut() {
            *v = (v.max(0.0) as f64).powf(g) as f32;
        }
    }
    if cfg.blur_p > 0.0 && r.uniform(11) < cfg.blur_p {
        let sigma = r.range(12, cfg.blur_sigma.0, cfg.blur_sigma.1);
        for o in dst.chunks_mut(vox) {
            blur(o, [d, h, w], sigma);
        }
    }
    if cfg.noise_std > 0.0 {
        let n = r.child("noise");
        for (i, v) in dst.iter_mut().enumerate() {
            *v += (cfg.noise_std * n.normal(i as u64)) as f32;
        }
    }
    if cfg.cutout > 0.0 {
        let half_w = (cfg.cutout * w as f64 / 2.0).round() as i64;
        let half_h = (cfg.cutout * h as f64 / 2.0).round() as i64;
        let cx = (r.uniform(16) * w as f64) as i64;
        let cy = (r.uniform(17) * h as f64) as i64;
        for o in dst.chunks_mut(vox) {
            for z in 0..d {
                for y in (cy - half_h).max(0)..(cy + half_h).min(h as i64) {
                    for x in (cx - half_w).max(0)..(cx + half_w).min(w as i64) {
                        o[z * plane + y as usize * w + x as usize] = 0.5;
                    }
                }
            }
        }
    }
}

/// Linear interpolation at a fractional voxel, coordinates clamped to the volume (border).
fn sample_border(s: &[f32], [d, h, w]: [usize; 3], z: f64, y: f64, x: f64) -> f32 {
    let clamp = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64);
    let (z, y, x) = (clamp(z, d), clamp(y, h), clamp(x, w));
    let (z0, y0, x0) = (z.floor() as usize, y.floor() as usize, x.floor() as usize);
    let (z1, y1, x1) = (
        (z0 + 1).min(d - 1),
        (y0 + 1).min(h - 1),
        (x0 + 1).min(w - 1),
    );
    let (fz, fy, fx) = (z - z0 as f64, y - y0 as f64, x - x0 as f64);
    let at = |z: usize, y: usize, x: usize| s[(z * h + y) * w + x] as f64;
    let plane = |z: usize| {
        let top = at(z, y0, x0) * (1.0 - fx) + at(z, y0, x1) * fx;
        let bottom = at(z, y1, x0) * (1.0 - fx) + at(z, y1, x1) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    (plane(z0) * (1.0 - fz) + plane(z1) * fz) as f32
}

/// Separable Gaussian blur, a 5-tap kernel per axis (radius 2, as the anchor's `k = 5`),
/// reflecting at the edges; depth is blurred only in 3D.
fn blur(v: &mut [f32], [d, h, w]: [usize; 3], sigma: f64) {
    let k: Vec<f64> = {
        let raw: Vec<f64> = (-2..=2)
            .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
            .collect();
        let s: f64 = raw.iter().sum();
        raw.into_iter().map(|x| x / s).collect()
    };
    let reflect = |i: i64, n: usize| -> usize {
        let n = n as i64;
        if n == 1 {
            return 0;
        }
        let mut i = i;
        while i < 0 || i >= n {
            i = if i < 0 { -i } else { 2 * (n - 1) - i };
        }
        i as usize
    };
    let mut tmp = vec![0f32; v.len()];
    let axes: &[(usize, usize)] = if d > 1 {
        &[(w, 1), (h, w), (d, h * w)]
    } else {
        &[(w, 1), (h, w)]
    };
    for &(n, stride) in axes {
        for (i, t) in tmp.iter_mut().enumerate() {
            let pos = (i / stride) % n;
            let base = i - pos * stride;
            let mut acc = 0.0;
            for (j, kj) in k.iter().enumerate() {
                let q = reflect(pos as i64 + j as i64 - 2, n);
                acc += kj * v[base + q * stride] as f64;
            }
            *t = acc as f32;
        }
        v.copy_from_slice(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<f32> {
        (0..28 * 28).map(|i| (i % 28) as f32 / 27.0).collect()
    }

    #[test]
    fn identity_config_returns_the_image() {
        let cfg = ViewConfig {
            flip: false,
            rotate: 0.0,
            zoom: (1.0, 1.0),
            shift: 0.0,
            ..ViewConfig::supervised()
        };
        let x = ramp();
        let v = views(&x, &[1, 28, 28], &[3], 0, 1, &cfg).unwrap();
        let err = x
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-6, "{err}");
    }

    #[test]
    fn a_forced_flip_mirrors_the_last_axis() {
        let cfg = ViewConfig {
            rotate: 0.0,
            zoom: (1.0, 1.0),
            shift: 0.0,
            ..ViewConfig::supervised()
        };
        let x = ramp();
        // Find a (sample, view) that flips, from the recorded draw.
        let flipped = (0..20u64)
            .find(|&id| Rand::new(1).child("ssl-view").at(id).at(0).uniform(6) < 0.5)
            .unwrap();
        let v = views(&x, &[1, 28, 28], &[flipped], 0, 1, &cfg).unwrap();
        for y in 0..28 {
            for c in 0..28 {
                assert!((v[y * 28 + c] - x[y * 28 + 27 - c]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn views_differ_by_view_index_and_stay_in_range() {
        let x = ramp();
        let cfg = ViewConfig::default();
        let a = views(&x, &[1, 28, 28], &[5], 0, 9, &cfg).unwrap();
        let b = views(&x, &[1, 28, 28], &[5], 1, 9, &cfg).unwrap();
        assert_ne!(a, b);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        let vol = vec![0.25f32; 2 * 8 * 8 * 8];
        let v3 = views(&vol, &[1, 8, 8, 8], &[0, 1], 0, 9, &cfg).unwrap();
        assert_eq!(v3.len(), vol.len());
    }

    #[test]
    fn bad_shapes_and_settings_are_named() {
        let x = ramp();
        let e = views(&x, &[1, 28, 27], &[0], 0, 0, &ViewConfig::default()).unwrap_err();
        assert!(e.to_string().contains("values for 1 images"), "{e}");
        let cfg = ViewConfig {
            crop_area: (0.0, 1.0),
            ..ViewConfig::default()
        };
        let e = views(&x, &[1, 28, 28], &[0], 0, 0, &cfg).unwrap_err();
        assert!(e.to_string().contains("crop_area"), "{e}");
    }
}
