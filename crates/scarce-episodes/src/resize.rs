//! Image resizing that reproduces Pillow's `Image.resize(size, LANCZOS)` on 8-bit images
//! pixel for pixel, so that a dataset resized here equals the one the Python literature
//! trained on (Omniglot 105×105 → 28×28 is done this way by the standard loaders).
//!
//! Pillow resamples separably (horizontal pass, then vertical), with a Lanczos-3 kernel
//! stretched by the scale factor when shrinking (anti-aliasing), normalised weights rounded
//! to 22-bit fixed point, and each pass rounded and clamped to 0..=255.

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// For each output position: the first input index and the fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 3.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // Pillow truncates towards zero after adding 0.5 (C's int cast).
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| lanczos((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let v = k * (1u32 << PRECISION_BITS) as f64;
                    if k < 0.0 {
                        (v - 0.5) as i32
                    } else {
                        (v + 0.5) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes a single-channel 8-bit image (`h × w`, row-major) to `out_h × out_w` exactly as
/// Pillow's `resize((out_w, out_h), Image.LANCZOS)` does.
///
/// # Errors
/// When `src` does not hold `h × w` values, or a size is zero.
pub fn lanczos_u8(
    src: &[u8],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> crate::Result<Vec<u8>> {
    if src.len() != h * w {
        return Err(crate::Error::param(
            "src",
            format!("{} values for a {h} x {w} image", src.len()),
        ));
    }
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return Err(crate::Error::param(
            "size",
            format!("{h} x {w} -> {out_h} x {out_w}: every size must be positive"),
        ));
    }
    let half = 1i32 << (PRECISION_BITS - 1);
    let horizontal = if out_w != w {
        let cx = coefficients(w, out_w);
        let mut tmp = vec![0u8; h * out_w];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for (xx, (xmin, k)) in cx.iter().enumerate() {
                let acc = k
                    .iter()
                    .zip(&row[*xmin..])
                    .fold(half, |a, (&k, &p)| a + k * p as i32);
                tmp[y * out_w + xx] = clip8(acc);
            }
        }
        tmp
    } else {
        src.to_vec()
    };
    if out_h == h {
        return Ok(horizontal);
    }
    let cy = coefficients(h, out_h);
    let mut out = vec![0u8; out_h * out_w];
    for (yy, (ymin, k)) in cy.iter().enumerate() {
        for x in 0..out_w {
            let acc = k.iter().enumerate().fold(half, |a, (j, &k)| {
                a + k * horizontal[(ymin + j) * out_w + x] as i32
            });
            out[yy * out_w + x] = clip8(acc);
        }
    }
    Ok(out)
}

/// Rotates a square single-channel plane by `quarter_turns` × 90° counter-clockwise
/// (NumPy's `rot90` convention).
pub fn rot90_square<T: Copy>(src: &[T], side: usize, quarter_turns: usize) -> Vec<T> {
    let mut out = src.to_vec();
    for _ in 0..quarter_turns % 4 {
        let prev = out.clone();
        for i in 0..side {
            for j in 0..side {
                // rot90: out[i][j] = in[j][side-1-i]
                out[i * side + j] = prev[j * side + (side - 1 - i)];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_stay_constant() {
        let src = vec![200u8; 105 * 105];
        assert!(lanczos_u8(&src, 105, 105, 28, 28)
            .unwrap()
            .iter()
            .all(|&v| v == 200));
        // A buffer that is not h × w, or a zero size: named errors, not panics.
        let e = lanczos_u8(&src[1..], 105, 105, 28, 28).unwrap_err();
        assert!(
            e.to_string().contains("11024 values for a 105 x 105"),
            "{e}"
        );
        assert!(lanczos_u8(&src, 105, 105, 0, 28).is_err());
    }

    #[test]
    fn rot90_matches_numpy_convention() {
        // [[1,2],[3,4]] rotated counter-clockwise is [[2,4],[1,3]].
        assert_eq!(rot90_square(&[1, 2, 3, 4], 2, 1), vec![2, 4, 1, 3]);
        assert_eq!(rot90_square(&[1, 2, 3, 4], 2, 4), vec![1, 2, 3, 4]);
    }
}
