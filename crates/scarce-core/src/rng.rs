//! Counter-based random streams.
//!
//! A draw is a pure function of `(seed, purpose, indices…, counter)`: nothing is mutable, so
//! results never depend on thread count, scheduling or the order in which items are visited.
//! The generator is SplitMix64 used as a counter-based hash (`mix(key + counter * γ)`), a
//! well-studied 64-bit mixer that passes BigCrush; child streams get keys by mixing the
//! parent key with the index or name. candle's own CPU RNG cannot be seeded, so every random
//! tensor in the workspace comes from here.

use crate::Result;
use candle_core::{DType, Device, Shape, Tensor};
use rayon::prelude::*;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Stafford variant 13).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, to turn a purpose name into a 64-bit key part.
fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A keyed random stream. Cheap to copy; deriving a child never changes the parent.
///
/// ```
/// use scarce_core::rng::Stream;
/// let s = Stream::new(7, "dropout").at(3).at(12); // epoch 3, item 12
/// assert_eq!(s.uniform(0), Stream::new(7, "dropout").at(3).at(12).uniform(0));
/// assert_ne!(s.uniform(0), s.uniform(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    key: u64,
}

impl Stream {
    /// The root stream for `seed` and a purpose such as `"init"` or `"episodes"`.
    pub fn new(seed: u64, purpose: &str) -> Self {
        Stream {
            key: mix64(mix64(seed ^ GAMMA) ^ hash_str(purpose)),
        }
    }

    /// The child stream for an index (epoch, item, layer, …).
    pub fn at(&self, index: u64) -> Self {
        Stream {
            key: mix64(self.key ^ mix64(index.wrapping_add(0x632B_E59B_D9B4_E019))),
        }
    }

    /// The child stream for a name (a parameter name, a transform name, …).
    pub fn child(&self, name: &str) -> Self {
        Stream {
            key: mix64(self.key ^ hash_str(name).rotate_left(17)),
        }
    }

    /// The `counter`-th 64-bit draw.
    pub fn u64(&self, counter: u64) -> u64 {
        mix64(self.key.wrapping_add(counter.wrapping_mul(GAMMA)))
    }

    /// The `counter`-th draw, uniform on `[0, 1)` with 53 random bits.
    pub fn uniform(&self, counter: u64) -> f64 {
        (self.u64(counter) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// The `counter`-th standard normal draw (Box–Muller on draws `2c` and `2c+1`).
    pub fn normal(&self, counter: u64) -> f64 {
        let u1 = 1.0 - self.uniform(2 * counter); // (0, 1]
        let u2 = self.uniform(2 * counter + 1);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An integer uniform on `0..n` (`n > 0`), by Lemire's multiply-shift (bias < 2^-64·n).
    pub fn below(&self, counter: u64, n: u64) -> u64 {
        ((self.u64(counter) as u128 * n as u128) >> 64) as u64
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates on this stream's draws).
    pub fn permutation(&self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64, i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }

    /// `n` draws uniform on `[lo, hi)`, element `i` from counter `i` (parallel, same result
    /// for any thread count).
    pub fn uniform_vec(&self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n)
            .into_par_iter()
            .map(|i| lo + (hi - lo) * self.uniform(i as u64))
            .collect()
    }

    /// `n` normal draws with mean `mean` and standard deviation `std`.
    pub fn normal_vec(&self, n: usize, mean: f64, std: f64) -> Vec<f64> {
        (0..n)
            .into_par_iter()
            .map(|i| mean + std * self.normal(i as u64))
            .collect()
    }

    /// A tensor of uniform draws on `[lo, hi)`.
    pub fn uniform_tensor(
        &self,
        shape: impl Into<Shape>,
        lo: f64,
        hi: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v = self.uniform_vec(shape.elem_count(), lo, hi);
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }

    /// A tensor of normal draws.
    pub fn normal_tensor(
        &self,
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v = self.normal_vec(shape.elem_count(), mean, std);
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }

    /// A dropout mask: each element is `1 / (1 - p)` with probability `1 - p`, else 0.
    pub fn dropout_mask(
        &self,
        shape: impl Into<Shape>,
        p: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(crate::Error::param(
                "p",
                format!("dropout probability {p} not in [0, 1)"),
            ));
        }
        let shape = shape.into();
        let keep = 1.0 / (1.0 - p);
        let v: Vec<f64> = (0..shape.elem_count())
            .into_par_iter()
            .map(|i| {
                if self.uniform(i as u64) < p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_function_of_key_and_counter() {
        let a = Stream::new(1, "x").at(5);
        let v1 = a.uniform_vec(1000, 0.0, 1.0);
        let v2: Vec<f64> = (0..1000).rev().map(|i| a.uniform(i)).collect();
        let v2: Vec<f64> = v2.into_iter().rev().collect();
        assert_eq!(v1, v2);
        assert_ne!(
            Stream::new(1, "x").uniform(0),
            Stream::new(2, "x").uniform(0)
        );
        assert_ne!(
            Stream::new(1, "x").uniform(0),
            Stream::new(1, "y").uniform(0)
        );
        assert_ne!(a.at(0).uniform(0), a.at(1).uniform(0));
    }

    #[test]
    fn moments_match_the_distributions() {
        // Closed forms: U[0,1) has mean 1/2, variance 1/12; N(0,1) mean 0, variance 1.
        let n = 200_000;
        let s = Stream::new(42, "moments");
        let u = s.uniform_vec(n, 0.0, 1.0);
        let mean = u.iter().sum::<f64>() / n as f64;
        let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "{var}");
        let z = s.child("z").normal_vec(n, 0.0, 1.0);
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Stream::new(3, "perm").permutation(100);
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
