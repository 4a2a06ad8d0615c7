//! Weights from a formula instead of a file: SplitMix64 (Steele et al. 2014) over
//! (seed, tensor index, element index), so a test can rebuild a network's every weight exactly
//! without shipping it. This is the generator of the backbone fixtures: tensor `i` of the
//! state dict (buffers included, `num_batches_tracked` left out), element `e` in row-major
//! order, gets `u = splitmix64(seed·φ + i·M1 + e) >> 11 · 2⁻⁵³` and `s = 2u − 1`, then a value
//! by the tensor's [`Kind`].

use crate::state_dict::{build, Kind, TensorSpec};
use candle_core::{DType, Device, Tensor};
use scarce_core::{Params, Result};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const M1: u64 = 0xBF58_476D_1CE4_E5B9;
const M2: u64 = 0x94D0_49BB_1331_11EB;

/// The SplitMix64 output for state `x` (one step: add the golden gamma, then mix).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(M1);
    z = (z ^ (z >> 27)).wrapping_mul(M2);
    z ^ (z >> 31)
}

/// The uniform `u ∈ [0, 1)` of element `e` of tensor `i` under `seed` (exact in f64).
pub fn uniform(seed: u64, i: u64, e: u64) -> f64 {
    let state = seed
        .wrapping_mul(GOLDEN)
        .wrapping_add(i.wrapping_mul(M1))
        .wrapping_add(e);
    (splitmix64(state) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The value of element `e` of tensor `i`, of kind `kind` with fan-in `fan_in`.
pub fn value(seed: u64, i: u64, e: u64, kind: Kind, fan_in: usize) -> f64 {
    let u = uniform(seed, i, e);
    let s = 2.0 * u - 1.0;
    match kind {
        Kind::ConvWeight | Kind::ConvBias | Kind::LinearWeight | Kind::LinearBias => {
            s / (fan_in as f64).sqrt()
        }
        Kind::BnWeight | Kind::LnWeight => 1.0 + 0.1 * s,
        Kind::BnBias | Kind::LnBias | Kind::BnRunningMean => 0.1 * s,
        Kind::BnRunningVar => 1.0 + 0.5 * u,
        Kind::Token => 0.02 * s,
    }
}

/// Every tensor of `layout` filled by the formula, in f64 then cast to `dtype` (rounded to
/// nearest, as `tensor.float()` does): learnt parameters and buffers apart.
pub fn state(
    layout: &[TensorSpec],
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<(Params, Params)> {
    build(layout, |i, spec| {
        let n: usize = spec.shape.iter().product();
        let v: Vec<f64> = (0..n as u64)
            .map(|e| value(seed, i as u64, e, spec.kind, spec.fan_in))
            .collect();
        Ok(Tensor::from_vec(v, spec.shape.as_slice(), device)?.to_dtype(dtype)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_published_test_vector() {
        // Vigna's reference splitmix64.c from state 0: the first output.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn uniforms_land_in_the_unit_interval_with_53_bits() {
        for e in 0..1000 {
            let u = uniform(7, 3, e);
            assert!((0.0..1.0).contains(&u));
            assert_eq!((u * (1u64 << 53) as f64).fract(), 0.0);
        }
    }
}
