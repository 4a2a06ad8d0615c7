//! 3×3 stride-1 f32 convolution by Winograd's minimal filtering F(2×2, 3×3), on AVX2 + FMA.
//!
//! Each 2×2 block of outputs (a "tile") is `Aᵀ [Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B)] A`, where `d_c`
//! is channel `c`'s 4×4 input patch under the tile and `g_c` its 3×3 kernel: 16 products per
//! channel and tile where the direct sum takes 36, so the multiply work falls 2.25-fold. For
//! each of the 16 transform positions `ξ` the sum over channels is a matrix product,
//! `M_ξ [O × tiles] = U_ξ [O × C] · V_ξ [C × tiles]`, run on the direct kernels' register
//! tile. The transforms are sums and halvings, so the result differs from the direct sum by
//! rounding alone (the tests hold both to the same tolerance against the f64 path).
//!
//! Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016.

#![allow(unsafe_code)] // the register tile's raw pointers and disjoint output writes.

use super::conv_cpu::bias_row;
use super::direct::{Avx2, Packed, Strided, MR, NR};
use super::im2col::Geom;
use super::par::{self, SharedMut};

/// Transform positions: the 4×4 of a tile's transformed patch.
const XI: usize = 16;
/// Tiles one task transforms and multiplies (about): for 64 channels its `V` and `M` are
/// 128 KiB each, within L2.
const TILES_PER_TASK: usize = 32;
/// Narrowest output the transform pays for: below 16 columns a row holds fewer than eight
/// tiles, the vector width of the transforms.
const MIN_WIDTH: usize = 16;

/// Fewest input and output channels the transform pays for: the products' inner size and
/// rows.
const MIN_CHANNELS: usize = 8;

/// Whether [`forward`] takes this convolution: 2D, 3×3, stride and dilation 1, one group,
/// outputs at least [`MIN_WIDTH`] wide, at least [`MIN_CHANNELS`] in and out.
pub(crate) fn applies(g: &Geom, out_channels: usize, groups: usize) -> bool {
    g.kernel == [1, 3, 3]
        && g.stride == [1; 3]
        && g.dil == [1; 3]
        && g.input[0] == 1
        && g.pad[0] == 0
        && groups == 1
        && g.output[2] >= MIN_WIDTH
        && g.output[1] > 0
        && g.c >= MIN_CHANNELS
        && out_channels >= MIN_CHANNELS
}

thread_local! {
    /// Each thread's `V` and `M` of its current task, kept between tasks and calls.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// Makes `buf` at least `len` long (new elements zero, old ones as they were).
fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// `U_ξ = G g Gᵀ` for every (output, input) channel pair, packed as the tiles read it:
/// `[ξ][output block of MR][C][MR]`.
fn transform_weights(w: &[f32], o: usize, c: usize) -> Vec<f32> {
    let obs = o.div_ceil(MR);
    let mut u = vec![0.0f32; XI * obs * c * MR];
    for oc in 0..o {
        for ci in 0..c {
            let g = &w[(oc * c + ci) * 9..][..9];
            // G g: rows g₀, (g₀+g₁+g₂)/2, (g₀−g₁+g₂)/2, g₂ of the kernel's rows.
            let mut gg = [[0.0f32; 3]; 4];
            for col in 0..3 {
                let (a, b, d) = (g[col], g[3 + col], g[6 + col]);
                gg[0][col] = a;
                gg[1][col] = 0.5 * (a + b + d);
                gg[2][col] = 0.5 * (a - b + d);
                gg[3][col] = d;
            }
            for (r, row) in gg.iter().enumerate() {
                let [a, b, d] = *row;
                let uu = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
                for (s, &val) in uu.iter().enumerate() {
                    let xi = 4 * r + s;
                    u[((xi * obs + oc / MR) * c + ci) * MR + oc % MR] = val;
                }
            }
        }
    }
    u
}

/// `y = conv(x, w) (+ b)` for a geometry [`applies`] accepts (`None` otherwise). `x` is
/// `[N, C, H, W]`, `w` `[O, C, 3, 3]`, `b` `[O]` or `[N, O]`.
pub(crate) fn forward(
    k: Avx2,
    g: &Geom,
    o: usize,
    groups: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Option<Vec<f32>> {
    if !applies(g, o, groups) {
        return None;
    }
    let c = g.c;
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let [_, ph, pw] = g.pad;
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let rows_per_task = TILES_PER_TASK.div_ceil(tw).clamp(1, th);
    let chunks = th.div_ceil(rows_per_task);
    // Tiles of one task, padded to whole 16-column blocks of the product.
    let tp = (rows_per_task * tw).next_multiple_of(NR);
    let obs = o.div_ceil(MR);
    let u = transform_weights(w, o, c);
    // A padded row, even and odd columns apart: the four columns under tile j are
    // even[j], odd[j], even[j + 1], odd[j + 1], so eight tiles read four contiguous runs.
    let half = tw + 1;
    // Every padded plane deinterleaved once, [N·C][rows][half] for even and odd columns
    // (tasks share the rows between their tile rows).
    let prows = 2 * th + 2;
    let plane = prows * half;
    let planes = g.n * c;
    let mut even: Vec<f32> = Vec::with_capacity(planes * plane);
    let mut odd: Vec<f32> = Vec::with_capacity(planes * plane);
    let (ep, op) = (SharedMut(even.as_mut_ptr()), SharedMut(odd.as_mut_ptr()));
    par::for_each(planes, |pi| {
        let src = &x[pi * ih * iw..][..ih * iw];
        let mut padded = vec![0.0f32; 2 * half];
        for rr in 0..prows {
            let (e, od) = (ep.at(pi * plane + rr * half), op.at(pi * plane + rr * half));
            match rr.checked_sub(ph).filter(|&h| h < ih) {
                Some(h) => {
                    // Input column wi is padded column wi + pw < 2·half (see `half`).
                    padded[pw..pw + iw].copy_from_slice(&src[h * iw..][..iw]);
                    // SAFETY: padded holds 2·half floats; row rr of plane pi (half floats
                    // each of even and odd) is written by this call alone.
                    unsafe { avx2::deinterleave(padded.as_ptr(), half, e, od) };
                }
                // SAFETY: as above.
                None => unsafe {
                    e.write_bytes(0, half);
                    od.write_bytes(0, half);
                },
            }
        }
    });
    // SAFETY: every row of every plane was written above.
    unsafe {
        even.set_len(planes * plane);
        odd.set_len(planes * plane);
    }

    let total = g.n * o * oh * ow;
    let mut y: Vec<f32> = Vec::with_capacity(total);
    let yp = SharedMut(y.as_mut_ptr());
    par::for_each(g.n * chunks, |task| {
        let (n, chunk) = (task / chunks, task % chunks);
        let i0 = chunk * rows_per_task;
        let rows = rows_per_task.min(th - i0);
        let tiles = rows * tw;
        SCRATCH.with_borrow_mut(|(v, m)| {
            // V_ξ[c][tile] = (Bᵀ d B)_ξ; the columns of a last block past `tiles` are zero.
            grow(v, XI * c * tp);
            if tiles < tp {
                for row in v.chunks_exact_mut(tp).take(XI * c) {
                    row[tiles..].fill(0.0);
                }
            }
            for ci in 0..c {
                let base = (n * c + ci) * plane;
                for ii in 0..rows {
                    let at = base + 2 * (i0 + ii) * half;
                    // SAFETY: rows 2·(i0 + ii) .. + 4 ≤ prows of the plane exist; V_ξ's tiles
                    // ii·tw .. ii·tw + tw of channel ci lie within its c·tp.
                    unsafe {
                        avx2::input_row(
                            even[at..][..4 * half].as_ptr(),
                            odd[at..][..4 * half].as_ptr(),
                            half,
                            tw,
                            v[ci * tp + ii * tw..].as_mut_ptr(),
                            c * tp,
                        )
                    };
                }
            }

            // M_ξ = U_ξ · V_ξ, [ξ][o (in whole blocks)][tile].
            grow(m, XI * obs * MR * tp);
            for xi in 0..XI {
                for tb in 0..tiles.div_ceil(NR) {
                    let bv = Strided {
                        base: v[xi * c * tp + tb * NR..].as_ptr(),
                        stride: tp,
                    };
                    for ob in 0..obs {
                        let a = Packed {
                            base: u[(xi * obs + ob) * c * MR..].as_ptr(),
                        };
                        let out = m[((xi * obs + ob) * MR) * tp + tb * NR..].as_mut_ptr();
                        // SAFETY: U's block holds c rows of MR, V_ξ c rows of tp ≥ tb·16 + 16
                        // tiles, and M's block MR rows of tp.
                        unsafe { k.tile(MR.min(o - ob * MR), c, a, bv, out, tp, false) };
                    }
                }
            }

            // y = Aᵀ M A (+ b) for each output channel and tile row.
            for oc in 0..o {
                let bias = b.map_or(0.0, |b| bias_row(b, n, o)[oc]);
                for ii in 0..rows {
                    let orow = 2 * (i0 + ii);
                    let dst = |r: usize| yp.at(((n * o + oc) * oh + r) * ow);
                    // SAFETY: M_ξ's row oc holds tiles ii·tw .. ii·tw + tw; output rows
                    // 2·i0 .. 2·(i0 + rows) of (n, oc) are this task's alone, each ow long.
                    unsafe {
                        avx2::output_row(
                            m[oc * tp + ii * tw..].as_ptr(),
                            obs * MR * tp,
                            tw,
                            bias,
                            dst(orow),
                            (orow + 1 < oh).then(|| dst(orow + 1)),
                            ow,
                        )
                    };
                }
            }
        });
    });
    // SAFETY: every output (n, oc, row, col) was written: the tasks cover every tile row,
    // each tile row writes its two output rows (the second when inside), every column.
    unsafe { y.set_len(total) };
    Some(y)
}

/// The transforms, eight tiles to a vector.
#[allow(clippy::needless_range_loop)] // the formulas index several rows at one position
mod avx2 {
    use std::arch::x86_64::*;

    /// `even[k] = row[2k]`, `odd[k] = row[2k + 1]` for `k < half` (`row`: 2·half floats).
    ///
    /// # Safety
    /// `row` readable for `2·half` floats, `even` and `odd` writable for `half`; AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn deinterleave(row: *const f32, half: usize, even: *mut f32, odd: *mut f32) {
        let mut k = 0;
        while k + 8 <= half {
            let a = _mm256_loadu_ps(row.add(2 * k));
            let b = _mm256_loadu_ps(row.add(2 * k + 8));
            // Per 128-bit lane: a0 a2 b0 b2 | a4 a6 b4 b6; then order the 64-bit pairs.
            let e = _mm256_shuffle_ps::<0x88>(a, b);
            let o = _mm256_shuffle_ps::<0xDD>(a, b);
            let e = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(e)));
            let o = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(o)));
            _mm256_storeu_ps(even.add(k), e);
            _mm256_storeu_ps(odd.add(k), o);
            k += 8;
        }
        while k < half {
            *even.add(k) = *row.add(2 * k);
            *odd.add(k) = *row.add(2 * k + 1);
            k += 1;
        }
    }

    /// `Bᵀ d B` for the `tw` tiles of one tile row of one channel. Row `r` of the patches is
    /// at `even + r·half` / `odd + r·half`; transform position ξ goes to `v + ξ·xi_stride`.
    ///
    /// # Safety
    /// Four rows of `half = tw + 1` floats readable at `even` and `odd`; `tw` floats writable
    /// at `v + ξ·xi_stride` for ξ < 16; AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn input_row(
        even: *const f32,
        odd: *const f32,
        half: usize,
        tw: usize,
        v: *mut f32,
        xi_stride: usize,
    ) {
        let mut j = 0;
        while j + 8 <= tw {
            let mut t = [[_mm256_setzero_ps(); 4]; 4];
            for (r, t) in t.iter_mut().enumerate() {
                let (e, o) = (even.add(r * half + j), odd.add(r * half + j));
                let (e0, e1) = (_mm256_loadu_ps(e), _mm256_loadu_ps(e.add(1)));
                let (o0, o1) = (_mm256_loadu_ps(o), _mm256_loadu_ps(o.add(1)));
                *t = [
                    _mm256_sub_ps(e0, e1),
                    _mm256_add_ps(o0, e1),
                    _mm256_sub_ps(e1, o0),
                    _mm256_sub_ps(o0, o1),
                ];
            }
            for s in 0..4 {
                let cols = [
                    _mm256_sub_ps(t[0][s], t[2][s]),
                    _mm256_add_ps(t[1][s], t[2][s]),
                    _mm256_sub_ps(t[2][s], t[1][s]),
                    _mm256_sub_ps(t[1][s], t[3][s]),
                ];
                for (a, &col) in cols.iter().enumerate() {
                    _mm256_storeu_ps(v.add((4 * a + s) * xi_stride + j), col);
                }
            }
            j += 8;
        }
        while j < tw {
            let mut t = [[0.0f32; 4]; 4];
            for (r, t) in t.iter_mut().enumerate() {
                let (e, o) = (even.add(r * half + j), odd.add(r * half + j));
                let (e0, e1, o0, o1) = (*e, *e.add(1), *o, *o.add(1));
                *t = [e0 - e1, o0 + e1, e1 - o0, o0 - o1];
            }
            for s in 0..4 {
                let cols = [
                    t[0][s] - t[2][s],
                    t[1][s] + t[2][s],
                    t[2][s] - t[1][s],
                    t[1][s] - t[3][s],
                ];
                for (a, &col) in cols.iter().enumerate() {
                    *v.add((4 * a + s) * xi_stride + j) = col;
                }
            }
            j += 1;
        }
    }

    /// `Aᵀ M A + bias` for the `tw` tiles of one tile row of one output channel (`M_ξ` at
    /// `m + ξ·xi_stride`), written to output row `top` and, where given, `bottom`; a column
    /// past `ow` (the last tile's right half, for odd `ow`) is dropped.
    ///
    /// # Safety
    /// `tw` floats readable at `m + ξ·xi_stride` (ξ < 16), `ow ≤ 2·tw` writable at `top` and
    /// `bottom`; AVX2.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn output_row(
        m: *const f32,
        xi_stride: usize,
        tw: usize,
        bias: f32,
        top: *mut f32,
        bottom: Option<*mut f32>,
        ow: usize,
    ) {
        let mut j = 0;
        let bv = _mm256_set1_ps(bias);
        while 2 * (j + 8) <= ow {
            let ld = |xi: usize| _mm256_loadu_ps(m.add(xi * xi_stride + j));
            let mut s = [[_mm256_setzero_ps(); 2]; 4];
            for (a, s) in s.iter_mut().enumerate() {
                let (m0, m1, m2, m3) = (ld(4 * a), ld(4 * a + 1), ld(4 * a + 2), ld(4 * a + 3));
                *s = [
                    _mm256_add_ps(_mm256_add_ps(m0, m1), m2),
                    _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3),
                ];
            }
            for (dr, dst) in [(0, Some(top)), (1, bottom)] {
                let Some(dst) = dst else { continue };
                let y = |col: usize| {
                    let v = if dr == 0 {
                        _mm256_add_ps(_mm256_add_ps(s[0][col], s[1][col]), s[2][col])
                    } else {
                        _mm256_sub_ps(_mm256_sub_ps(s[1][col], s[2][col]), s[3][col])
                    };
                    _mm256_add_ps(v, bv)
                };
                let (l, r) = (y(0), y(1));
                // l0 r0 l1 r1 | l4 r4 l5 r5 and l2 r2 l3 r3 | l6 r6 l7 r7, then by halves.
                let (lo, hi) = (_mm256_unpacklo_ps(l, r), _mm256_unpackhi_ps(l, r));
                _mm256_storeu_ps(dst.add(2 * j), _mm256_permute2f128_ps::<0x20>(lo, hi));
                _mm256_storeu_ps(dst.add(2 * j + 8), _mm256_permute2f128_ps::<0x31>(lo, hi));
            }
            j += 8;
        }
        while j < tw {
            let ld = |xi: usize| *m.add(xi * xi_stride + j);
            let mut s = [[0.0f32; 2]; 4];
            for (a, s) in s.iter_mut().enumerate() {
                let (m0, m1, m2, m3) = (ld(4 * a), ld(4 * a + 1), ld(4 * a + 2), ld(4 * a + 3));
                *s = [m0 + m1 + m2, m1 - m2 - m3];
            }
            for (dr, dst) in [(0, Some(top)), (1, bottom)] {
                let Some(dst) = dst else { continue };
                for col in 0..2 {
                    if 2 * j + col < ow {
                        let v = if dr == 0 {
                            s[0][col] + s[1][col] + s[2][col]
                        } else {
                            s[1][col] - s[2][col] - s[3][col]
                        };
                        *dst.add(2 * j + col) = v + bias;
                    }
                }
            }
            j += 1;
        }
    }
}
