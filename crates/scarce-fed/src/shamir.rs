//! Shamir secret sharing of 32-byte secrets, byte by byte over GF(2⁸) (the AES field,
//! x⁸ + x⁴ + x³ + x + 1): any `threshold` shares give the secret back, fewer give no
//! information about it. Share x-coordinates are 1..=255, so at most 255 holders.

use rand_core::RngCore;

use crate::{Error, Result};

/// A secret of 32 bytes (an X25519 secret key, a mask seed).
pub type Secret = [u8; 32];

/// One holder's share of a secret: the polynomials' values at `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The evaluation point (1..=255; never 0, which is the secret).
    pub x: u8,
    /// One value per byte of the secret.
    pub y: Secret,
}

/// Multiplication in GF(2⁸), branch-free (shift and add with masks).
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// The inverse of a non-zero element: a²⁵⁴.
fn inv(a: u8) -> u8 {
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

/// Splits `secret` into shares at x = 1..=`holders`, any `threshold` of which reconstruct it.
pub fn split(
    secret: &Secret,
    threshold: usize,
    holders: usize,
    rng: &mut impl RngCore,
) -> Result<Vec<Share>> {
    if threshold == 0 || threshold > holders || holders > 255 {
        return Err(Error::config(
            "threshold",
            format!("{threshold} of {holders}: need 1 ≤ threshold ≤ holders ≤ 255"),
        ));
    }
    // coefficients[k] holds the degree-k coefficient of every byte's polynomial.
    let mut coefficients = vec![*secret];
    for _ in 1..threshold {
        let mut c = [0u8; 32];
        rng.fill_bytes(&mut c);
        coefficients.push(c);
    }
    Ok((1..=holders as u8)
        .map(|x| {
            let mut y = [0u8; 32];
            for (b, y) in y.iter_mut().enumerate() {
                // Horner from the highest degree.
                *y = coefficients
                    .iter()
                    .rev()
                    .fold(0, |acc, c| mul(acc, x) ^ c[b]);
            }
            Share { x, y }
        })
        .collect())
}

/// The polynomial through `shares` evaluated at `at` (0 gives the secret), by Lagrange
/// interpolation. The shares' x must be distinct and non-zero.
pub fn interpolate(shares: &[Share], at: u8) -> Result<Secret> {
    if shares.is_empty() {
        return Err(Error::config("shares", "no shares to reconstruct from"));
    }
    for (i, s) in shares.iter().enumerate() {
        if s.x == 0 || shares[..i].iter().any(|t| t.x == s.x) {
            return Err(Error::config(
                "shares",
                format!("share x = {} is zero or repeated", s.x),
            ));
        }
    }
    let mut out = [0u8; 32];
    for (i, si) in shares.iter().enumerate() {
        // Basis polynomial ℓ_i(at) = Π_{j≠i} (at − x_j) / (x_i − x_j); minus is xor here.
        let (mut num, mut den) = (1u8, 1u8);
        for (j, sj) in shares.iter().enumerate() {
            if i != j {
                num = mul(num, at ^ sj.x);
                den = mul(den, si.x ^ sj.x);
            }
        }
        let l = mul(num, inv(den));
        for (o, &y) in out.iter_mut().zip(&si.y) {
            *o ^= mul(l, y);
        }
    }
    Ok(out)
}

/// The secret from `shares` (at least the threshold of them).
pub fn reconstruct(shares: &[Share]) -> Result<Secret> {
    interpolate(shares, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn field_axioms() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
            assert_eq!(mul(a, 1), a);
        }
        // The AES field's worked example: {57}·{83} = {c1} (FIPS-197, 4.2).
        assert_eq!(mul(0x57, 0x83), 0xc1);
    }

    #[test]
    fn any_threshold_subset_reconstructs() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let shares = split(&secret, 3, 6, &mut rng).unwrap();
        for a in 0..6 {
            for b in a + 1..6 {
                for c in b + 1..6 {
                    let s = [shares[a], shares[b], shares[c]];
                    assert_eq!(reconstruct(&s).unwrap(), secret);
                    // The same polynomial passes through every other share.
                    for (d, other) in shares.iter().enumerate() {
                        assert_eq!(interpolate(&s, other.x).unwrap(), other.y, "{d}");
                    }
                }
            }
        }
        // Below the threshold the interpolation is some other value.
        let two = [shares[0], shares[1]];
        assert_ne!(reconstruct(&two).unwrap(), secret);
        assert!(split(&secret, 4, 3, &mut rng).is_err());
        assert!(reconstruct(&[shares[0], shares[0]]).is_err());
    }
}
