//! The masked autoencoder's patch layout and reconstruction loss (He et al. 2022).

use candle_core::{Tensor, D};
use scarce_core::{Error, Result};

/// Images `[N, C, H, W]` to patches `[N, L, p·p·C]`: the grid row-major, each patch as
/// (row in patch, column in patch, channel) with the channel fastest — MAE's and lightly's
/// `patchify`.
pub fn patchify(images: &Tensor, p: usize) -> Result<Tensor> {
    let (n, c, h, w) = images
        .dims4()
        .map_err(|_| Error::shape("images", "[N, C, H, W]", images.dims()))?;
    if p == 0 || h % p != 0 || w % p != 0 {
        return Err(Error::param(
            "patch",
            format!("patch size {p} does not divide the {h}x{w} image"),
        ));
    }
    let (gh, gw) = (h / p, w / p);
    // n c (gh p) (gw q) -> n gh gw p q c
    Ok(images
        .reshape((n, c, gh, p, gw, p))?
        .permute((0, 2, 4, 3, 5, 1))?
        .contiguous()?
        .reshape((n, gh * gw, p * p * c))?)
}

/// The MAE loss and its per-patch values.
#[derive(Debug, Clone)]
pub struct MaeLoss {
    /// Mean of the per-patch losses over the masked patches.
    pub loss: Tensor,
    /// `[N, L]` mean squared error of each patch.
    pub per_patch: Tensor,
}

/// MAE's `forward_loss`: the mean squared error between `pred` and the patches (each patch
/// standardised with its own mean and unbiased variance when `norm_pix`), averaged over the
/// masked patches (`mask` `[N, L]`, 1 = masked).
pub fn mae_loss(pred: &Tensor, patches: &Tensor, mask: &Tensor, norm_pix: bool) -> Result<MaeLoss> {
    if pred.dims() != patches.dims() || pred.rank() != 3 {
        return Err(Error::shape(
            "pred",
            format!("{:?} like patches", patches.dims()),
            pred.dims(),
        ));
    }
    if mask.dims() != &pred.dims()[..2] {
        return Err(Error::shape(
            "mask",
            format!("{:?}", &pred.dims()[..2]),
            mask.dims(),
        ));
    }
    let k = patches.dim(2)?;
    let target = if norm_pix {
        if k < 2 {
            return Err(Error::param(
                "norm_pix",
                "needs patches of at least 2 values",
            ));
        }
        let mean = patches.mean_keepdim(D::Minus1)?;
        let c = patches.broadcast_sub(&mean)?;
        let var = (c.sqr()?.sum_keepdim(D::Minus1)? / (k - 1) as f64)?;
        c.broadcast_div(&(var + 1e-6)?.sqrt()?)?
    } else {
        patches.clone()
    };
    let per_patch = (pred - target)?.sqr()?.mean(D::Minus1)?;
    let mask = mask.to_dtype(pred.dtype())?;
    let masked = mask
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    if masked <= 0.0 {
        return Err(Error::param("mask", "no patch is masked"));
    }
    let loss = ((&per_patch * mask)?.sum_all()? / masked)?;
    Ok(MaeLoss { loss, per_patch })
}
