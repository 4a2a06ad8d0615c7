//! What the VAE and the GAN share: class conditioning by one-hot planes or vectors, the
//! batch-shape check of square-image models, and PyTorch's default uniform initialiser.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use scarce_core::{Params, Stream};

/// `[N, K, H, W]` one-hot planes (or `[N, K]` when `hw` is empty) for labels `y`.
pub(crate) fn one_hot(y: &[usize], k: usize, hw: &[usize], like: &Tensor) -> Result<Tensor> {
    let plane: usize = hw.iter().product();
    let mut v = vec![0f32; y.len() * k * plane];
    for (i, &c) in y.iter().enumerate() {
        if c >= k {
            return Err(Error::config("class", format!("{c} outside 0..{k}")));
        }
        v[(i * k + c) * plane..][..plane].fill(1.0);
    }
    let mut shape = vec![y.len(), k];
    shape.extend_from_slice(hw);
    Ok(Tensor::from_vec(v, shape, like.device())?.to_dtype(like.dtype())?)
}

pub(crate) fn uniform(
    p: &mut Params,
    rng: &Stream,
    name: &str,
    shape: Vec<usize>,
    fan_in: usize,
    device: &Device,
) -> Result<()> {
    let b = 1.0 / (fan_in as f64).sqrt();
    p.insert(
        name,
        rng.child(name)
            .uniform_tensor(shape, -b, b, DType::F32, device)?,
    );
    Ok(())
}

/// `x` with the condition attached along axis 1: one-hot planes for images `[N, C, H, W]`,
/// a one-hot vector for `[N, D]`. Labels must be given exactly when the model is
/// conditional (`what` names the model in the error).
pub(crate) fn condition(
    x: &Tensor,
    y: Option<&[usize]>,
    classes: Option<usize>,
    what: &str,
) -> Result<Tensor> {
    match (classes, y) {
        (Some(k), Some(y)) => Ok(Tensor::cat(&[x, &one_hot(y, k, &x.dims()[2..], x)?], 1)?),
        (None, None) => Ok(x.clone()),
        _ => Err(Error::config(
            "labels",
            format!("give labels exactly when the {what} is conditional"),
        )),
    }
}

/// Checks a batch `[B, C, S, S]` of a model of square `size`×`size` images.
pub(crate) fn check_square_batch(
    dims: &[usize],
    channels: usize,
    size: usize,
    what: &str,
) -> Result<()> {
    if dims.len() != 4 || dims[1] != channels || dims[2] != size || dims[3] != size {
        return Err(Error::config(
            "images",
            format!("shape {dims:?}: the {what} takes [B, {channels}, {size}, {size}]"),
        ));
    }
    Ok(())
}
