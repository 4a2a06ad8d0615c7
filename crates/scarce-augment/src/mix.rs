//! MixUp and CutMix as batch operations on candle tensors, in torchvision's form
//! (`transforms.v2.MixUp` / `CutMix`): sample `i` is mixed with sample `i − 1` (the batch
//! rolled by one), labels become soft. The random draws (λ, the box centre) are arguments,
//! so a run can be replayed; [`beta`] draws λ from a counter-based stream.

use candle_core::Tensor;
use scarce_core::rng::Stream;

use crate::error::{Error, Result};

/// A mixed batch.
#[derive(Debug, Clone)]
pub struct Mixed {
    /// The mixed images, shaped like the input.
    pub images: Tensor,
    /// Soft labels `[B, classes]` in the images' dtype.
    pub labels: Tensor,
    /// The weight of each sample's own label (CutMix: after clamping the box).
    pub lam: f64,
    /// CutMix's pasted box `[x1, y1, x2, y2]` (half-open; x along the last axis).
    pub cut: Option<[usize; 4]>,
}

/// The partner of each sample: `(i − 1) mod B` (torchvision rolls the batch by one).
pub fn partners(b: usize) -> Vec<usize> {
    (0..b).map(|i| (i + b - 1) % b).collect()
}

fn check(images: &Tensor, labels: &[usize], classes: usize) -> Result<usize> {
    let b = images.dim(0).map_err(scarce_core::Error::from)?;
    if images.rank() < 3 || b == 0 {
        return Err(Error::Shape {
            name: "images".into(),
            expected: "[B, C, ...] with B > 0".into(),
            got: images.dims().to_vec(),
        });
    }
    if labels.len() != b {
        return Err(Error::param(
            "labels",
            format!("{} labels for {b} images", labels.len()),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= classes) {
        return Err(Error::param(
            "labels",
            format!("label {l} >= classes = {classes}"),
        ));
    }
    Ok(b)
}

fn soft_labels(labels: &[usize], classes: usize, lam: f64, like: &Tensor) -> Result<Tensor> {
    let b = labels.len();
    let part = partners(b);
    let mut y = vec![0f64; b * classes];
    for i in 0..b {
        y[i * classes + labels[i]] += lam;
        y[i * classes + labels[part[i]]] += 1.0 - lam;
    }
    Tensor::from_vec(y, (b, classes), like.device())
        .and_then(|t| t.to_dtype(like.dtype()))
        .map_err(|e| scarce_core::Error::from(e).into())
}

fn rolled(images: &Tensor) -> Result<Tensor> {
    let b = images.dim(0).map_err(scarce_core::Error::from)?;
    let idx: Vec<u32> = partners(b).into_iter().map(|p| p as u32).collect();
    let idx = Tensor::new(idx, images.device()).map_err(scarce_core::Error::from)?;
    images
        .index_select(&idx, 0)
        .map_err(|e| scarce_core::Error::from(e).into())
}

/// MixUp (Zhang et al. 2018): `λ · x_i + (1 − λ) · x_{i−1}`, labels alike.
pub fn mixup(images: &Tensor, labels: &[usize], classes: usize, lam: f64) -> Result<Mixed> {
    check(images, labels, classes)?;
    if !(0.0..=1.0).contains(&lam) {
        return Err(Error::param("lam", format!("{lam} is not in [0, 1]")));
    }
    let partner = rolled(images)?;
    let mixed = ((images * lam).and_then(|a| a + (partner * (1.0 - lam))?))
        .map_err(scarce_core::Error::from)?;
    Ok(Mixed {
        images: mixed,
        labels: soft_labels(labels, classes, lam, images)?,
        lam,
        cut: None,
    })
}

/// CutMix (Yun et al. 2019) on `[B, C, H, W]`: the box of half-sides `⌊r·W⌋`, `⌊r·H⌋`
/// (`r = √(1 − λ)/2`) around `center = (x, y)`, clamped to the image, is pasted from sample
/// `i − 1`; the labels use the area actually kept.
pub fn cutmix(
    images: &Tensor,
    labels: &[usize],
    classes: usize,
    lam: f64,
    center: (usize, usize),
) -> Result<Mixed> {
    check(images, labels, classes)?;
    let (_, _, h, w) = images.dims4().map_err(|_| Error::Shape {
        name: "images".into(),
        expected: "[B, C, H, W]".into(),
        got: images.dims().to_vec(),
    })?;
    if !(0.0..=1.0).contains(&lam) {
        return Err(Error::param("lam", format!("{lam} is not in [0, 1]")));
    }
    let (rx, ry) = center;
    if rx >= w || ry >= h {
        return Err(Error::param(
            "center",
            format!("({rx}, {ry}) outside the {h}x{w} image"),
        ));
    }
    let r = 0.5 * (1.0 - lam).sqrt();
    let (rw, rh) = ((r * w as f64) as usize, (r * h as f64) as usize);
    let (x1, y1) = (rx.saturating_sub(rw), ry.saturating_sub(rh));
    let (x2, y2) = ((rx + rw).min(w), (ry + rh).min(h));
    let kept = 1.0 - ((x2 - x1) * (y2 - y1)) as f64 / (w * h) as f64;
    let mut m = vec![0f32; h * w];
    for y in y1..y2 {
        for x in x1..x2 {
            m[y * w + x] = 1.0;
        }
    }
    let partner = rolled(images)?;
    let mixed = (|| -> candle_core::Result<Tensor> {
        let m = Tensor::from_vec(m, (1, 1, h, w), images.device())?.to_dtype(images.dtype())?;
        let keep = m.affine(-1.0, 1.0)?;
        images.broadcast_mul(&keep)? + partner.broadcast_mul(&m)?
    })()
    .map_err(scarce_core::Error::from)?;
    Ok(Mixed {
        images: mixed,
        labels: soft_labels(labels, classes, kept, images)?,
        lam: kept,
        cut: Some([x1, y1, x2, y2]),
    })
}

/// A draw of Beta(α, α) (MixUp's and CutMix's λ) from `rng`, as the ratio of two Gamma(α)
/// draws (Marsaglia & Tsang), deterministic in the stream.
pub fn beta(alpha: f64, rng: &Stream) -> Result<f64> {
    if alpha.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !alpha.is_finite() {
        return Err(Error::param(
            "alpha",
            format!("{alpha} must be finite and > 0"),
        ));
    }
    let x = gamma(alpha, &rng.child("x"));
    let y = gamma(alpha, &rng.child("y"));
    Ok(if x + y > 0.0 { x / (x + y) } else { 0.5 })
}

fn gamma(alpha: f64, rng: &Stream) -> f64 {
    if alpha < 1.0 {
        // Gamma(α) = Gamma(α + 1) · U^(1/α).
        let u = rng.uniform(u64::MAX).max(f64::MIN_POSITIVE);
        return gamma(alpha + 1.0, &rng.child("boost")) * u.powf(1.0 / alpha);
    }
    let d = alpha - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    // Rejection sampling: each proposal is accepted with probability above 0.95.
    let mut k = 0;
    loop {
        let z = rng.normal(2 * k);
        let v = (1.0 + c * z).powi(3);
        let u = rng.uniform(2 * k + 1).max(f64::MIN_POSITIVE);
        if v > 0.0 && u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn beta_draws_have_the_right_mean_and_variance() {
        for alpha in [0.4, 1.0, 2.5] {
            let n = 4000;
            let v: Vec<f64> = (0..n)
                .map(|i| beta(alpha, &Stream::new(3, "beta").at(i)).unwrap())
                .collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            // Beta(α, α): mean 1/2, variance 1 / (4 (2α + 1)).
            let want = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.02, "alpha {alpha}: mean {mean}");
            assert!(
                (var - want).abs() < 0.1 * want,
                "alpha {alpha}: var {var} vs {want}"
            );
        }
    }

    #[test]
    fn bad_arguments_are_named() {
        let x = Tensor::zeros((2, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(mixup(&x, &[0], 2, 0.5)
            .unwrap_err()
            .to_string()
            .contains("labels"));
        assert!(mixup(&x, &[0, 2], 2, 0.5)
            .unwrap_err()
            .to_string()
            .contains("label 2"));
        assert!(cutmix(&x, &[0, 1], 2, 0.5, (4, 0))
            .unwrap_err()
            .to_string()
            .contains("center"));
        assert!(beta(0.0, &Stream::new(0, "b")).is_err());
    }
}
