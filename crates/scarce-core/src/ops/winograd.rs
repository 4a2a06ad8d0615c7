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
use super::direct::{transpose_onto_grid, Avx2, Packed, Runs, Strided, MR, NR};
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

/// Partial sums of the weight gradient, at most: enough to share out among threads, few
/// enough that their memory (16·C·O floats each) stays bounded for any batch.
const MAX_PARTIALS: usize = 8;

/// Whether [`forward`] and [`weight_grad`] take this convolution: 2D, 3×3, stride and dilation 1, one group,
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
    /// Each thread's buffers for its current task (`V`, and `M` or the transformed `dy`),
    /// kept between tasks and calls.
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

/// How a convolution's outputs split into 2×2 tiles, and the tiles into tasks.
struct Tiling {
    /// Tile rows and columns: `⌈OH/2⌉`, `⌈OW/2⌉`.
    th: usize,
    tw: usize,
    /// Tile rows per task, and tasks per sample.
    rows_per_task: usize,
    chunks: usize,
    /// A task's tiles, padded to whole 16-column blocks of the products.
    tp: usize,
    /// A padded row, even and odd columns apart: the four columns under tile j are
    /// even[j], odd[j], even[j + 1], odd[j + 1], so eight tiles read four contiguous runs.
    half: usize,
    /// Rows of a padded plane (`2·th + 2`) and its floats in `even` (and in `odd`).
    prows: usize,
    plane: usize,
}

impl Tiling {
    /// `None` where the convolution is not Winograd's to take ([`applies`]).
    fn new(g: &Geom, out_channels: usize, groups: usize) -> Option<Tiling> {
        if !applies(g, out_channels, groups) {
            return None;
        }
        let [_, oh, ow] = g.output;
        let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
        let rows_per_task = TILES_PER_TASK.div_ceil(tw).clamp(1, th);
        let (half, prows) = (tw + 1, 2 * th + 2);
        Some(Tiling {
            th,
            tw,
            rows_per_task,
            chunks: th.div_ceil(rows_per_task),
            tp: (rows_per_task * tw).next_multiple_of(NR),
            half,
            prows,
            plane: prows * half,
        })
    }

    /// Floats from one transform position's `V` to the next: `C·tp` and a cache line more,
    /// so the sixteen positions a transform writes at once do not fall 4 KiB apart (where
    /// they would share L1 sets).
    fn v_stride(&self, c: usize) -> usize {
        c * self.tp + NR
    }

    /// The first tile row of task `chunk` and its number of tile rows.
    fn rows(&self, chunk: usize) -> (usize, usize) {
        let i0 = chunk * self.rows_per_task;
        (i0, self.rows_per_task.min(self.th - i0))
    }

    /// Every padded plane of `x` (`[N·C][H][W]`) deinterleaved once, `[N·C][prows][half]`
    /// for even and odd columns (tasks share the rows between their tile rows).
    fn deinterleave(&self, g: &Geom, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let [_, ih, iw] = g.input;
        let [_, ph, pw] = g.pad;
        let (half, plane, planes) = (self.half, self.plane, g.n * g.c);
        let mut even = par::unwritten_f32(planes * plane);
        let mut odd = par::unwritten_f32(planes * plane);
        let (ep, op) = (SharedMut(even.as_mut_ptr()), SharedMut(odd.as_mut_ptr()));
        par::for_each(planes, |pi| {
            let src = &x[pi * ih * iw..][..ih * iw];
            let mut padded = vec![0.0f32; 2 * half];
            for rr in 0..self.prows {
                let (e, od) = (ep.at(pi * plane + rr * half), op.at(pi * plane + rr * half));
                match rr.checked_sub(ph).filter(|&h| h < ih) {
                    Some(h) => {
                        // Input column wi is padded column wi + pw < 2·half: the outputs
                        // span ow = iw + 2·pw − 2 ≤ 2·tw columns.
                        padded[pw..pw + iw].copy_from_slice(&src[h * iw..][..iw]);
                        // SAFETY: padded holds 2·half floats; row rr of plane pi (half
                        // floats each of even and odd) is written by this call alone.
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
            par::finish_written(&mut even, planes * plane, "winograd: even columns");
            par::finish_written(&mut odd, planes * plane, "winograd: odd columns");
        }
        (even, odd)
    }

    /// `V_ξ[c][tile] = (Bᵀ d B)_ξ` of sample `n`'s tile rows `i0 .. i0 + rows` into `v`
    /// (`[ξ][C][tp]`, positions [`Self::v_stride`] apart); the columns of a last block past the task's tiles are zero.
    #[allow(clippy::too_many_arguments)]
    fn input_transform(
        &self,
        c: usize,
        even: &[f32],
        odd: &[f32],
        n: usize,
        i0: usize,
        rows: usize,
        v: &mut Vec<f32>,
    ) {
        let (tw, tp, half) = (self.tw, self.tp, self.half);
        let tiles = rows * tw;
        let vs = self.v_stride(c);
        grow(v, XI * vs);
        if tiles < tp {
            for xi in 0..XI {
                for ci in 0..c {
                    v[xi * vs + ci * tp..][tiles..tp].fill(0.0);
                }
            }
        }
        for ci in 0..c {
            let base = (n * c + ci) * self.plane;
            for ii in 0..rows {
                let at = base + 2 * (i0 + ii) * half;
                // SAFETY: rows 2·(i0 + ii) .. + 4 ≤ prows of the plane exist; V_ξ's tiles
                // ii·tw .. ii·tw + tw of channel ci lie within its c·tp ≤ vs.
                unsafe {
                    avx2::input_row(
                        even[at..][..4 * half].as_ptr(),
                        odd[at..][..4 * half].as_ptr(),
                        half,
                        tw,
                        v[ci * tp + ii * tw..].as_mut_ptr(),
                        vs,
                    )
                };
            }
        }
    }
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
    let t = Tiling::new(g, o, groups)?;
    let c = g.c;
    let [_, oh, ow] = g.output;
    let (tw, tp) = (t.tw, t.tp);
    let obs = o.div_ceil(MR);
    let vs = t.v_stride(c);
    let u = transform_weights(w, o, c);
    let (even, odd) = t.deinterleave(g, x);

    let total = g.n * o * oh * ow;
    let mut y = par::unwritten_f32(total);
    let yp = SharedMut(y.as_mut_ptr());
    par::for_each(g.n * t.chunks, |task| {
        let (n, chunk) = (task / t.chunks, task % t.chunks);
        let (i0, rows) = t.rows(chunk);
        let tiles = rows * tw;
        SCRATCH.with_borrow_mut(|(v, m)| {
            t.input_transform(c, &even, &odd, n, i0, rows, v);

            // M_ξ = U_ξ · V_ξ, [ξ][o (in whole blocks)][tile].
            grow(m, XI * obs * MR * tp);
            for xi in 0..XI {
                for tb in 0..tiles.div_ceil(NR) {
                    let bv = Strided {
                        base: v[xi * vs + tb * NR..].as_ptr(),
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
    unsafe { par::finish_written(&mut y, total, "winograd: output") };
    Some(y)
}

/// `dW[o, c, 3×3] = Σ_n Σ_l dy[n, o, l] · x[n, c, l + k]` for a geometry [`applies`] accepts
/// (`None` otherwise), as `Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`: the gradient of the
/// forward's `U` is, per transform position, `dU_ξ [C × O] = V_ξ [C × tiles] · DY_ξᵀ`.
pub(crate) fn weight_grad(
    k: Avx2,
    g: &Geom,
    o: usize,
    groups: usize,
    dy: &[f32],
    x: &[f32],
) -> Option<Vec<f32>> {
    let t = Tiling::new(g, o, groups)?;
    let c = g.c;
    let [_, oh, ow] = g.output;
    let (tw, tp) = (t.tw, t.tp);
    let opad = o.next_multiple_of(NR);
    let vs = t.v_stride(c);
    // DY's positions apart, skewed as V's.
    let ds = tp * opad + NR;
    let (even, odd) = t.deinterleave(g, x);
    // dy by position, [N][OH·OW][opad] (padding columns zero).
    let ohw = oh * ow;
    let every: Vec<usize> = (0..ohw).collect();
    let mut dyp = par::zeroed::<f32>(g.n * ohw * opad);
    par::chunks_mut(&mut dyp, ohw * opad, |n, dst| {
        transpose_onto_grid(k, &dy[n * o * ohw..][..o * ohw], o, &every, dst, opad)
    });
    // Fixed runs of tasks (tile-row chunks), each a partial sum of dU.
    let tasks = g.n * t.chunks;
    let per_part = tasks.div_ceil(MAX_PARTIALS);
    let du = par::partial_sums(tasks, per_part, XI * c * opad, |run, du: &mut [f32]| {
        SCRATCH.with_borrow_mut(|(v, dyt)| {
            for task in run {
                let (n, chunk) = (task / t.chunks, task % t.chunks);
                let (i0, rows) = t.rows(chunk);
                let tiles = rows * tw;
                t.input_transform(c, &even, &odd, n, i0, rows, v);
                // The task's output rows r0..r1 of sample n.
                let (r0, r1) = (2 * i0, (2 * (i0 + rows)).min(oh));
                let px = &dyp[(n * ohw + r0 * ow) * opad..];

                // DY_ξ = (A dY Aᵀ)_ξ, [ξ][tile][opad].
                grow(dyt, XI * ds);
                for ii in 0..rows {
                    let out_rows = (r1 - r0 - 2 * ii).min(2);
                    // SAFETY: px holds rows 2·ii .. 2·ii + out_rows of ow positions; DY's
                    // tiles ii·tw .. + tw hold opad each, per ξ within tp·opad.
                    unsafe {
                        avx2::grad_row(
                            px[2 * ii * ow * opad..].as_ptr(),
                            opad,
                            ow,
                            out_rows,
                            tw,
                            dyt[ii * tw * opad..].as_mut_ptr(),
                            ds,
                        )
                    };
                }

                // dU_ξ += V_ξ · DY_ξ over the task's tiles, [ξ][c][opad].
                for xi in 0..XI {
                    for c0 in (0..c).step_by(MR) {
                        let m = MR.min(c - c0);
                        let a = Runs {
                            rows: std::array::from_fn(|i| {
                                v[xi * vs + (c0 + i.min(m - 1)) * tp..].as_ptr()
                            }),
                        };
                        for o0 in (0..o).step_by(NR) {
                            let b = Strided {
                                base: dyt[xi * ds + o0..].as_ptr(),
                                stride: opad,
                            };
                            let out = du[(xi * c + c0) * opad + o0..].as_mut_ptr();
                            // SAFETY: V_ξ's rows hold tp ≥ tiles, DY_ξ tiles rows of opad ≥
                            // o0 + 16, dU's rows c0..c0 + m opad ≥ o0 + 16 columns.
                            unsafe { k.tile(m, tiles, a, b, out, opad, true) };
                        }
                    }
                }
            }
        });
    });
    // dW = Gᵀ dU G for every (output, input) channel pair.
    let mut dw = vec![0.0f32; o * c * 9];
    for (pair, dst) in dw.chunks_exact_mut(9).enumerate() {
        let (oc, ci) = (pair / c, pair % c);
        let d = |xi: usize| du[(xi * c + ci) * opad + oc];
        // Gᵀ: rows d₀ + (d₁ + d₂)/2, (d₁ − d₂)/2, (d₁ + d₂)/2 + d₃ of the patch's rows.
        let col = |s: usize| {
            let (d0, d1, d2, d3) = (d(s), d(4 + s), d(8 + s), d(12 + s));
            [d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3]
        };
        let cols = [col(0), col(1), col(2), col(3)];
        let gd: [[f32; 4]; 3] = std::array::from_fn(|kh| std::array::from_fn(|s| cols[s][kh]));
        for (kh, r) in gd.iter().enumerate() {
            dst[kh * 3] = r[0] + 0.5 * (r[1] + r[2]);
            dst[kh * 3 + 1] = 0.5 * (r[1] - r[2]);
            dst[kh * 3 + 2] = 0.5 * (r[1] + r[2]) + r[3];
        }
    }
    Some(dw)
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

    /// `A dY Aᵀ` for the `tw` tiles of one tile row, eight output channels to a vector: the
    /// tile's 2×2 of `dy` (`dy + (row·ow + col)·opad`, rows at or past `rows` and columns at
    /// or past `ow` zero) goes to `dyt + ξ·xi_stride + j·opad`.
    ///
    /// # Safety
    /// `rows` ≤ 2 rows of `ow` positions of `opad` floats readable at `dy`; `tw` tiles of
    /// `opad` floats writable at `dyt + ξ·xi_stride` (ξ < 16); `opad` a multiple of 8; AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn grad_row(
        dy: *const f32,
        opad: usize,
        ow: usize,
        rows: usize,
        tw: usize,
        dyt: *mut f32,
        xi_stride: usize,
    ) {
        let zero = _mm256_setzero_ps();
        for j in 0..tw {
            for o in (0..opad).step_by(8) {
                let ld = |r: usize, col: usize| {
                    if r < rows && col < ow {
                        _mm256_loadu_ps(dy.add((r * ow + col) * opad + o))
                    } else {
                        zero
                    }
                };
                let d = [
                    [ld(0, 2 * j), ld(0, 2 * j + 1)],
                    [ld(1, 2 * j), ld(1, 2 * j + 1)],
                ];
                // A·dY: rows d₀, d₀ + d₁, d₀ − d₁, −d₁ of the tile's two rows.
                let mut ad = [[zero; 2]; 4];
                for b in 0..2 {
                    ad[0][b] = d[0][b];
                    ad[1][b] = _mm256_add_ps(d[0][b], d[1][b]);
                    ad[2][b] = _mm256_sub_ps(d[0][b], d[1][b]);
                    ad[3][b] = _mm256_sub_ps(zero, d[1][b]);
                }
                for (r, row) in ad.iter().enumerate() {
                    let cols = [
                        row[0],
                        _mm256_add_ps(row[0], row[1]),
                        _mm256_sub_ps(row[0], row[1]),
                        _mm256_sub_ps(zero, row[1]),
                    ];
                    for (s, &v) in cols.iter().enumerate() {
                        _mm256_storeu_ps(dyt.add((4 * r + s) * xi_stride + j * opad + o), v);
                    }
                }
            }
        }
    }
}
