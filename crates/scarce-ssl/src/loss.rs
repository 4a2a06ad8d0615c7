//! The self- and semi-supervised objectives, each a differentiable function of candle
//! tensors, in the form (and with the constants) of the library that defines it — lightly for
//! the self-supervised ones, FixMatch's reference code for the pseudo-label loss. Every one is
//! checked against its library in f64 (`tests/ssl_fixtures.rs`).

use candle_core::{DType, Tensor, D};
use scarce_core::{ops, Error, Result};

fn same_2d(name_a: &str, a: &Tensor, name_b: &str, b: &Tensor) -> Result<(usize, usize)> {
    let (n, d) = a
        .dims2()
        .map_err(|_| Error::shape(name_a, "[B, D]", a.dims()))?;
    if b.dims() != [n, d] {
        return Err(Error::shape(
            name_b,
            format!("[{n}, {d}] like `{name_a}`"),
            b.dims(),
        ));
    }
    Ok((n, d))
}

/// Rows divided by their L2 norm, floored at `eps` (`F.normalize`).
pub fn l2_normalize(z: &Tensor, eps: f64) -> Result<Tensor> {
    let norm = z.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(eps)?;
    Ok(z.broadcast_div(&norm)?)
}

/// NT-Xent (SimCLR; lightly's `NTXentLoss` with in-batch negatives): the rows of `z0`
/// and `z1` (`[B, D]`, two views of the same B images, not normalised) are L2-normalised,
/// and each of the 2B rows must pick its partner among the other 2B − 1 at `temperature`.
/// The mean over both directions.
pub fn nt_xent(z0: &Tensor, z1: &Tensor, temperature: f64) -> Result<Tensor> {
    let (b, _) = same_2d("z0", z0, "z1", z1)?;
    if b < 2 || temperature.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(Error::param(
            "nt_xent",
            format!("needs B >= 2 and temperature > 0 (B = {b}, temperature = {temperature})"),
        ));
    }
    let u = l2_normalize(&Tensor::cat(&[z0, z1], 0)?, 1e-12)?;
    let s = (u.matmul(&u.t()?)? / temperature)?;
    let n = 2 * b;
    // The diagonal (a row against itself) leaves the softmax; the partner is i ± B.
    let mut diag = vec![0f64; n * n];
    let mut partner = vec![0f64; n * n];
    for i in 0..n {
        diag[i * n + i] = -1e9;
        partner[i * n + (i + b) % n] = 1.0;
    }
    let dev = z0.device();
    let dt = z0.dtype();
    let diag = Tensor::from_vec(diag, (n, n), dev)?.to_dtype(dt)?;
    let partner = Tensor::from_vec(partner, (n, n), dev)?.to_dtype(dt)?;
    let logp = ops::log_softmax(&(s + diag)?, 1)?;
    Ok((logp * partner)?.sum_all()?.affine(-1.0 / n as f64, 0.0)?)
}

/// Negative cosine similarity (BYOL / SimSiam; lightly's `NegativeCosineSimilarity`):
/// `-mean_i cos(p_i, z_i)` with `z` the target branch behind a stop-gradient. The symmetric
/// SimSiam loss is `0.5 · (negative_cosine(p0, z1) + negative_cosine(p1, z0))`.
pub fn negative_cosine(p: &Tensor, z: &Tensor) -> Result<Tensor> {
    same_2d("p", p, "z", z)?;
    let z = z.detach();
    let eps = 1e-8;
    let np = p.sqr()?.sum(1)?.sqrt()?.maximum(eps)?;
    let nz = z.sqr()?.sum(1)?.sqrt()?.maximum(eps)?;
    let cos = ((p * &z)?.sum(1)? / (np * nz)?)?;
    Ok(cos.mean_all()?.neg()?)
}

/// Per-feature standardisation over the batch with the biased variance (`F.batch_norm` in
/// training mode, no affine).
fn standardize_biased(z: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = z.mean_keepdim(0)?;
    let c = z.broadcast_sub(&mean)?;
    let var = c.sqr()?.mean_keepdim(0)?;
    Ok(c.broadcast_div(&(var + eps)?.sqrt()?)?)
}

/// The off-diagonal part of a square matrix (the diagonal zeroed).
fn off_diagonal(m: &Tensor) -> Result<Tensor> {
    let d = m.dim(0)?;
    let eye = Tensor::eye(d, m.dtype(), m.device())?;
    Ok((m - m * eye)?)
}

fn diagonal(m: &Tensor) -> Result<Tensor> {
    let d = m.dim(0)?;
    let eye = Tensor::eye(d, m.dtype(), m.device())?;
    Ok((m * eye)?.sum(1)?)
}

/// Barlow Twins' terms (lightly's `BarlowTwinsLoss`).
#[derive(Debug, Clone)]
pub struct BarlowTwins {
    /// The loss: `invariance + λ · redundancy`.
    pub loss: Tensor,
    /// The `[D, D]` cross-correlation of the standardised embeddings.
    pub cross_corr: Tensor,
    /// `Σ_i (C_ii − 1)²`.
    pub invariance: Tensor,
    /// `Σ_{i≠j} C_ij²` (before λ).
    pub redundancy: Tensor,
}

/// Barlow Twins (Zbontar et al. 2021): each feature standardised over the batch (biased
/// variance, ε = 1e-5), cross-correlation `C = z_aᵀ z_b / B` pushed to the identity; `lambda`
/// weighs the off-diagonal (lightly's default 5e-3).
pub fn barlow_twins(z_a: &Tensor, z_b: &Tensor, lambda: f64) -> Result<BarlowTwins> {
    let (b, _) = same_2d("z_a", z_a, "z_b", z_b)?;
    if b < 2 {
        return Err(Error::param(
            "z_a",
            "Barlow Twins needs a batch of at least 2",
        ));
    }
    let a = standardize_biased(z_a, 1e-5)?;
    let bb = standardize_biased(z_b, 1e-5)?;
    let cross_corr = (a.t()?.matmul(&bb)? / b as f64)?;
    let invariance = (diagonal(&cross_corr)? - 1.0)?.sqr()?.sum_all()?;
    let redundancy = off_diagonal(&cross_corr)?.sqr()?.sum_all()?;
    let loss = (&invariance + (&redundancy * lambda)?)?;
    Ok(BarlowTwins {
        loss,
        cross_corr,
        invariance,
        redundancy,
    })
}

/// VICReg's weights (lightly's `VICRegLoss` defaults: 25, 25, 1, ε = 1e-4).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VicRegConfig {
    /// Weight of the invariance (mean squared difference) term.
    pub lambda: f64,
    /// Weight of the variance (hinge on the standard deviation) term.
    pub mu: f64,
    /// Weight of the covariance term.
    pub nu: f64,
    /// Added to the variance under the square root.
    pub eps: f64,
}

impl Default for VicRegConfig {
    fn default() -> Self {
        VicRegConfig {
            lambda: 25.0,
            mu: 25.0,
            nu: 1.0,
            eps: 1e-4,
        }
    }
}

/// VICReg's terms, as lightly's module functions return them.
#[derive(Debug, Clone)]
pub struct VicReg {
    /// `λ · invariance + μ · variance + ν · covariance`.
    pub loss: Tensor,
    /// Mean squared difference of the two branches.
    pub invariance: Tensor,
    /// `v(z_a)` and `v(z_b)`: mean hinge `relu(1 − std)` over features.
    pub variance: [Tensor; 2],
    /// `c(z_a)` and `c(z_b)`: squared off-diagonal covariance over D.
    pub covariance: [Tensor; 2],
    /// Per-feature `sqrt(var + ε)` of each branch.
    pub std: [Tensor; 2],
}

/// VICReg (Bardes et al. 2022), unbiased (B − 1) variance and covariance as in lightly. The
/// loss uses the mean of the two variance terms and the sum of the two covariance terms.
pub fn vicreg(z_a: &Tensor, z_b: &Tensor, cfg: &VicRegConfig) -> Result<VicReg> {
    let (b, d) = same_2d("z_a", z_a, "z_b", z_b)?;
    if b < 2 {
        return Err(Error::param("z_a", "VICReg needs a batch of at least 2"));
    }
    let invariance = (z_a - z_b)?.sqr()?.mean_all()?;
    let branch = |z: &Tensor| -> Result<(Tensor, Tensor, Tensor)> {
        let c = z.broadcast_sub(&z.mean_keepdim(0)?)?;
        let var = (c.sqr()?.sum(0)? / (b - 1) as f64)?;
        let std = (var + cfg.eps)?.sqrt()?;
        let v = ops::relu(&std.affine(-1.0, 1.0)?)?.mean_all()?;
        let cov = (c.t()?.matmul(&c)? / (b - 1) as f64)?;
        let cv = (off_diagonal(&cov)?.sqr()?.sum_all()? / d as f64)?;
        Ok((v, cv, std))
    };
    let (va, ca, sa) = branch(z_a)?;
    let (vb, cb, sb) = branch(z_b)?;
    let variance = ((&va + &vb)? * 0.5)?;
    let covariance = (&ca + &cb)?;
    let loss = ((&invariance * cfg.lambda)? + (variance * cfg.mu)?)?;
    let loss = (loss + (covariance * cfg.nu)?)?;
    Ok(VicReg {
        loss,
        invariance,
        variance: [va, vb],
        covariance: [ca, cb],
        std: [sa, sb],
    })
}

/// FixMatch's unlabelled term and what it decided.
#[derive(Debug, Clone)]
pub struct FixMatch {
    /// `(1/B) Σ_i mask_i · CE(strong_i, target_i)`: the mean over all B samples.
    pub loss: Tensor,
    /// Softmax of the weak view's logits over the temperature (no gradient).
    pub pseudo_probs: Tensor,
    /// Each sample's largest pseudo-probability.
    pub max_probs: Vec<f64>,
    /// Each sample's pseudo-label.
    pub targets: Vec<u32>,
    /// 1 where the pseudo-label is kept (`max_prob >= threshold`).
    pub mask: Vec<f64>,
}

/// FixMatch's pseudo-label loss (Sohn et al. 2020; `Lu` of the reference PyTorch code):
/// pseudo-labels from the weak view (detached), kept where confident, cross-entropy of the
/// strong view against them.
pub fn fixmatch_unlabelled(
    logits_weak: &Tensor,
    logits_strong: &Tensor,
    threshold: f64,
    temperature: f64,
) -> Result<FixMatch> {
    let (b, c) = same_2d("logits_weak", logits_weak, "logits_strong", logits_strong)?;
    if temperature.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(Error::param("temperature", "must be > 0"));
    }
    let pseudo_probs = ops::softmax(&(logits_weak.detach() / temperature)?, 1)?;
    let rows = pseudo_probs.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let mut max_probs = Vec::with_capacity(b);
    let mut targets = Vec::with_capacity(b);
    for r in &rows {
        // First maximum, as torch.max.
        let (arg, &best) = r
            .iter()
            .enumerate()
            .fold((0, &f64::NEG_INFINITY), |acc, (i, v)| {
                if *v > *acc.1 {
                    (i, v)
                } else {
                    acc
                }
            });
        max_probs.push(best);
        targets.push(arg as u32);
    }
    let mask: Vec<f64> = max_probs
        .iter()
        .map(|&p| if p >= threshold { 1.0 } else { 0.0 })
        .collect();
    let dev = logits_strong.device();
    let dt = logits_strong.dtype();
    let mut weights = vec![0f64; b * c];
    for i in 0..b {
        weights[i * c + targets[i] as usize] = mask[i];
    }
    let weights = Tensor::from_vec(weights, (b, c), dev)?.to_dtype(dt)?;
    let logp = ops::log_softmax(logits_strong, 1)?;
    let loss = (logp * weights)?.sum_all()?.affine(-1.0 / b as f64, 0.0)?;
    Ok(FixMatch {
        loss,
        pseudo_probs,
        max_probs,
        targets,
        mask,
    })
}

/// Cross-entropy against soft targets (`[B, C]` rows summing to 1, e.g. MixUp's labels):
/// `−mean_i Σ_c y_ic · log_softmax(logits)_ic`.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, _) = same_2d("logits", logits, "targets", targets)?;
    let logp = ops::log_softmax(logits, 1)?;
    Ok((logp * targets.to_dtype(logits.dtype())?)?
        .sum_all()?
        .affine(-1.0 / b as f64, 0.0)?)
}
