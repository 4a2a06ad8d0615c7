//! Stride-1 f32 convolution on AVX2 + FMA without a column matrix: the forward pass and the
//! weight gradient as register-tiled products over a zero-padded copy of each sample.
//!
//! On the padded input (sizes `P = input + 2·pad`) every output position `(d, h, w)` has a
//! flat index `q = (d·P₁ + h)·P₂ + w` on the padded grid, and kernel row `(c, kd, kh, kw)`
//! reads the padded input at `q + off(c, kd, kh, kw)` with a constant offset. So sixteen
//! consecutive `q` read sixteen consecutive inputs for every kernel row: the column matrix
//! `im2col` would copy out is already there, a row at a time. The forward copies one block's
//! rows (256 at a time) into an L1-sized panel that every output channel's tile reads.
//! Positions of the grid outside the output (the padding columns between rows) are computed
//! and discarded, a waste of `2·pad / P₂` of a row. The input gradient of a stride-1
//! convolution is itself such a correlation (of `dy` with the flipped kernel), so the three
//! products of a convolution layer all run here (or in `winograd` for the 3×3 ones it
//! takes); other strides keep the `im2col` path.
//!
//! The kernel holds a 6×16 tile of the product in twelve ymm registers (the usual AVX2
//! shape: 12 FMAs for 2 loads and 6 broadcasts per step); `winograd` runs its channel sums
//! on it too.

#![allow(unsafe_code)] // SIMD intrinsics and raw tile pointers; each access is bounds-reasoned.

use super::conv_cpu::bias_row;
use super::im2col::Geom;
use super::par::{self, SharedMut};

/// Rows of a register tile.
pub(super) const MR: usize = 6;
/// Columns of a register tile (two ymm vectors).
pub(super) const NR: usize = 16;
/// Position blocks of one parallel task in the forward pass.
const BLOCKS_PER_TASK: usize = 4;
/// Kernel rows packed at a time in the forward pass: 256 rows of 16 floats, 16 KiB, stay
/// in L1 while every output channel's tile reads them.
const KC: usize = 256;
/// Bytes of `dy` on the grid that one stretch of the weight gradient reads (as [`KC`]).
const DY_CHUNK_BYTES: usize = 16 << 10;

/// Proof that this CPU has AVX2 and FMA; only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(Private);

#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct Private;
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy)]
enum Private {}

impl Avx2 {
    /// `Some` where the CPU runs AVX2 and FMA (checked once).
    pub fn detect() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        {
            static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let ok = *OK.get_or_init(|| {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            });
            ok.then_some(Avx2(Private))
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    /// `out_i[j] (+)= Σ_{p < k} A[i, p] · B_p[j]` for `i < m ≤ MR`, `j < NR`, where `B_p` is
    /// 16 consecutive floats at `b.row(p)` and `out_i` the 16 at `out + i · out_stride`;
    /// `accumulate` adds to what `out` holds instead of overwriting it.
    ///
    /// # Safety
    /// `a.at(i, p)` must be readable (`i < m`, `p < k`), `b.row(p)` for 16 floats (`p < k`),
    /// and `out_i` readable and writable for 16 (`i < m`).
    #[allow(clippy::too_many_arguments)] // one tile's whole description; kept in registers
    #[inline]
    pub(super) unsafe fn tile(
        self,
        m: usize,
        k: usize,
        a: impl RowsA,
        b: impl RowsB,
        out: *mut f32,
        out_stride: usize,
        accumulate: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        match m {
            1 => avx2::tile::<1>(k, a, b, out, out_stride, accumulate),
            2 => avx2::tile::<2>(k, a, b, out, out_stride, accumulate),
            3 => avx2::tile::<3>(k, a, b, out, out_stride, accumulate),
            4 => avx2::tile::<4>(k, a, b, out, out_stride, accumulate),
            5 => avx2::tile::<5>(k, a, b, out, out_stride, accumulate),
            _ => avx2::tile::<6>(k, a, b, out, out_stride, accumulate),
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }

    /// Row `i` of the 8×8 block at `dst` (rows `dst_stride` apart) := column `i` of the one
    /// at `src` (rows `src_stride` apart).
    ///
    /// # Safety
    /// Eight rows of eight floats must be readable at `src` and writable at `dst`.
    #[inline]
    pub(super) unsafe fn transpose8(
        self,
        src: *const f32,
        src_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        avx2::transpose8(src, src_stride, dst, dst_stride);
        #[cfg(not(target_arch = "x86_64"))]
        match self.0 {}
    }
}

/// Runs `f` compiled for AVX2 + FMA where the CPU has them (the closure is inlined into a
/// function with those features, so its loops vectorise eight lanes wide), else as it is.
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if Avx2::detect().is_some() {
            // SAFETY: the CPU has AVX2 and FMA (just checked).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Where element `(i, p)` of a tile's left-hand side is.
pub(super) trait RowsA: Copy {
    /// # Safety
    /// `(i, p)` must be an element the caller vouches for (see [`Avx2::tile`]).
    unsafe fn at(self, i: usize, p: usize) -> *const f32;
}

/// Rows packed as `[p][MR]`: the six elements one step reads are adjacent.
#[derive(Clone, Copy)]
pub(super) struct Packed {
    pub base: *const f32,
}

impl RowsA for Packed {
    #[inline(always)]
    unsafe fn at(self, i: usize, p: usize) -> *const f32 {
        self.base.add(p * MR + i)
    }
}

/// Rows where they lie, each its own run of consecutive floats.
#[derive(Clone, Copy)]
pub(super) struct Runs {
    pub rows: [*const f32; MR],
}

impl RowsA for Runs {
    #[inline(always)]
    unsafe fn at(self, i: usize, p: usize) -> *const f32 {
        self.rows[i].add(p)
    }
}

/// Where row `p` of a tile's right-hand side starts: rows at a fixed stride.
pub(super) trait RowsB: Copy {
    /// # Safety
    /// `p` must be a row the caller vouches for (see [`Avx2::tile`]).
    unsafe fn row(self, p: usize) -> *const f32;
}

/// Rows at a fixed stride.
#[derive(Clone, Copy)]
pub(super) struct Strided {
    pub base: *const f32,
    pub stride: usize,
}

impl RowsB for Strided {
    #[inline(always)]
    unsafe fn row(self, p: usize) -> *const f32 {
        self.base.add(p * self.stride)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RowsA, RowsB, MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const M: usize>(
        k: usize,
        a: impl RowsA,
        b: impl RowsB,
        out: *mut f32,
        out_stride: usize,
        accumulate: bool,
    ) {
        debug_assert!(M <= MR);
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        if accumulate {
            for (i, acc) in acc.iter_mut().enumerate() {
                let o = out.add(i * out_stride);
                *acc = [_mm256_loadu_ps(o), _mm256_loadu_ps(o.add(8))];
            }
        }
        for p in 0..k {
            let row = b.row(p);
            let b0 = _mm256_loadu_ps(row);
            let b1 = _mm256_loadu_ps(row.add(8));
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*a.at(i, p));
                acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let o = out.add(i * out_stride);
            _mm256_storeu_ps(o, acc[0]);
            _mm256_storeu_ps(o.add(NR / 2), acc[1]);
        }
    }

    /// See [`super::Avx2::transpose8`]: interleave pairs, then quads, then halves.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn transpose8(
        src: *const f32,
        src_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        let r = |i: usize| src.add(i * src_stride);
        let (r0, r1) = (_mm256_loadu_ps(r(0)), _mm256_loadu_ps(r(1)));
        let (r2, r3) = (_mm256_loadu_ps(r(2)), _mm256_loadu_ps(r(3)));
        let (r4, r5) = (_mm256_loadu_ps(r(4)), _mm256_loadu_ps(r(5)));
        let (r6, r7) = (_mm256_loadu_ps(r(6)), _mm256_loadu_ps(r(7)));
        let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
        let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let d = |i: usize| dst.add(i * dst_stride);
        _mm256_storeu_ps(d(0), _mm256_permute2f128_ps::<0x20>(s0, s4));
        _mm256_storeu_ps(d(1), _mm256_permute2f128_ps::<0x20>(s1, s5));
        _mm256_storeu_ps(d(2), _mm256_permute2f128_ps::<0x20>(s2, s6));
        _mm256_storeu_ps(d(3), _mm256_permute2f128_ps::<0x20>(s3, s7));
        _mm256_storeu_ps(d(4), _mm256_permute2f128_ps::<0x31>(s0, s4));
        _mm256_storeu_ps(d(5), _mm256_permute2f128_ps::<0x31>(s1, s5));
        _mm256_storeu_ps(d(6), _mm256_permute2f128_ps::<0x31>(s2, s6));
        _mm256_storeu_ps(d(7), _mm256_permute2f128_ps::<0x31>(s3, s7));
    }
}

/// `dst[q_of_l[li] · dst_stride + o] = src[o · l + li]` for `o < rows`, `li < l`: a `[rows, l]`
/// block transposed onto grid rows. Eight outputs on eight consecutive grid positions go as
/// 8×8 register transposes, the rest one element at a time.
pub(super) fn transpose_onto_grid(
    k: Avx2,
    src: &[f32],
    rows: usize,
    q_of_l: &[usize],
    dst: &mut [f32],
    dst_stride: usize,
) {
    let l = q_of_l.len();
    assert!(src.len() >= rows * l && rows <= dst_stride);
    assert!(q_of_l
        .last()
        .is_none_or(|&q| dst.len() >= (q + 1) * dst_stride));
    let full = rows - rows % 8;
    let mut li = 0;
    while li < l {
        let q = q_of_l[li];
        let (step, blocks) = if li + 8 <= l && q_of_l[li + 7] == q + 7 {
            (8, full)
        } else {
            (1, 0)
        };
        for o in (0..blocks).step_by(8) {
            // SAFETY: rows o..o + 8 of src hold li..li + 8 (li + 8 ≤ l, o + 8 ≤ rows); grid
            // rows q..q + 8 (q + 7 = q_of_l[li + 7]) of dst hold columns o..o + 8 ≤ dst_stride
            // (the asserts above).
            unsafe {
                k.transpose8(
                    src.as_ptr().add(o * l + li),
                    l,
                    dst.as_mut_ptr().add(q * dst_stride + o),
                    dst_stride,
                )
            };
        }
        for j in 0..step {
            for o in blocks..rows {
                dst[(q + j) * dst_stride + o] = src[o * l + li + j];
            }
        }
        li += step;
    }
}

/// The padded grid of a stride-1 convolution.
struct Grid {
    /// Padded input sizes.
    padded: [usize; 3],
    /// Elements of one padded channel.
    plane: usize,
    /// Grid positions covering every output: the last output's index + 1.
    qlen: usize,
    /// Offset of kernel row `(c, kd, kh, kw)` (channels of one group) from its position.
    offsets: Vec<usize>,
    /// For each output position `l` (row-major over the output), its grid position.
    q_of_l: Vec<usize>,
}

impl Grid {
    /// `None` unless every stride is 1.
    fn new(g: &Geom, channels: usize) -> Option<Grid> {
        if g.stride != [1; 3] || channels == 0 || g.in_len() == 0 {
            return None;
        }
        let padded: [usize; 3] = std::array::from_fn(|a| g.input[a] + 2 * g.pad[a]);
        let plane = padded.iter().product();
        let [od, oh, ow] = g.output;
        if od == 0 || oh == 0 || ow == 0 {
            return None;
        }
        let qlen = ((od - 1) * padded[1] + oh - 1) * padded[2] + ow;
        let [kd, kh, kw] = g.kernel;
        let mut offsets = Vec::with_capacity(channels * g.kernel_len());
        for c in 0..channels {
            for a in 0..kd {
                for b in 0..kh {
                    for e in 0..kw {
                        offsets.push(
                            c * plane
                                + (a * g.dil[0] * padded[1] + b * g.dil[1]) * padded[2]
                                + e * g.dil[2],
                        );
                    }
                }
            }
        }
        let mut q_of_l = Vec::with_capacity(g.out_len());
        for d in 0..od {
            for h in 0..oh {
                let row = (d * padded[1] + h) * padded[2];
                q_of_l.extend(row..row + ow);
            }
        }
        Some(Grid {
            padded,
            plane,
            qlen,
            offsets,
            q_of_l,
        })
    }

    /// Floats of one padded sample: every channel plus a margin, since the last block of
    /// sixteen positions may run up to 15 past the grid.
    fn span(&self, channels: usize) -> usize {
        channels * self.plane + NR
    }

    /// Writes sample `x` (`[C, D, H, W]`) into the interior of `dst`, whose padding (and
    /// margin) must already be zero: only the interior is ever written, so a buffer
    /// reused for the next sample keeps its zeros.
    fn pad(&self, g: &Geom, x: &[f32], dst: &mut [f32]) {
        let [id, ih, iw] = g.input;
        let [p1, p2] = [self.padded[1], self.padded[2]];
        for (c, src) in x.chunks_exact(g.in_len()).enumerate() {
            for d in 0..id {
                for h in 0..ih {
                    let to = c * self.plane + ((d + g.pad[0]) * p1 + h + g.pad[1]) * p2 + g.pad[2];
                    dst[to..to + iw].copy_from_slice(&src[(d * ih + h) * iw..][..iw]);
                }
            }
        }
    }

    /// Writes all `span` floats at `dst`: sample `x` zero-padded, and the zero margin (so a
    /// fresh buffer needs no zeroing first).
    ///
    /// # Safety
    /// `dst` must be valid for writing `span` floats.
    unsafe fn pad_all(&self, g: &Geom, x: &[f32], dst: *mut f32, span: usize) {
        let [id, ih, iw] = g.input;
        let [p0, p1, p2] = self.padded;
        let [d0, h0, w0] = g.pad;
        for (c, src) in x.chunks_exact(g.in_len()).enumerate() {
            for d in 0..p0 {
                for h in 0..p1 {
                    let row = dst.add(c * self.plane + (d * p1 + h) * p2);
                    if (d0..d0 + id).contains(&d) && (h0..h0 + ih).contains(&h) {
                        let from = &src[((d - d0) * ih + h - h0) * iw..][..iw];
                        row.write_bytes(0, w0);
                        std::ptr::copy_nonoverlapping(from.as_ptr(), row.add(w0), iw);
                        row.add(w0 + iw).write_bytes(0, p2 - w0 - iw);
                    } else {
                        row.write_bytes(0, p2);
                    }
                }
            }
        }
        let filled = g.c * self.plane;
        dst.add(filled).write_bytes(0, span - filled);
    }
}

/// Tile columns `col..col + len` that land on the consecutive outputs `out..out + len`: a
/// 16-position block of the padded grid spans a row end at most a few times, so its columns
/// are written as a few contiguous (vectorised) copies rather than one checked store each.
struct Run {
    col: usize,
    len: usize,
    out: usize,
}

impl Run {
    /// The runs of one block, given each grid position's output index (`usize::MAX` for a
    /// padding position).
    fn all(dests: &[usize]) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for (col, &out) in dests.iter().enumerate() {
            if out == usize::MAX {
                continue;
            }
            match runs.last_mut() {
                Some(r) if r.col + r.len == col && r.out + r.len == out => r.len += 1,
                _ => runs.push(Run { col, len: 1, out }),
            }
        }
        runs
    }
}

/// The weights `[groups · og, kg]` as the tiles read them: per group, per block of `MR`
/// output channels, `[kg][MR]` (a short last block padded with zeros).
fn pack_weights(w: &[f32], groups: usize, og: usize, kg: usize) -> Vec<f32> {
    let oblocks = og.div_ceil(MR);
    let mut wp = vec![0.0f32; groups * oblocks * kg * MR];
    for (gb, block) in wp.chunks_exact_mut(kg * MR).enumerate() {
        let (gi, ob) = (gb / oblocks, gb % oblocks);
        for i in 0..MR.min(og - ob * MR) {
            let row = &w[(gi * og + ob * MR + i) * kg..][..kg];
            for (p, &v) in row.iter().enumerate() {
                block[p * MR + i] = v;
            }
        }
    }
    wp
}

/// `y = conv(x, w) (+ b)` for a stride-1 geometry (`None` for other strides). `x` is
/// `[N, C, …]`, `w` `[O, C/groups, k…]`, `b` `[O]` or `[N, O]`.
pub(crate) fn forward(
    k: Avx2,
    g: &Geom,
    out_channels: usize,
    groups: usize,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Option<Vec<f32>> {
    let (cg, og) = (g.c / groups, out_channels / groups);
    let grid = Grid::new(g, cg)?;
    let kg = cg * g.kernel_len();
    let (l, span, xn) = (g.out_len(), grid.span(g.c), g.c * g.in_len());
    let mut xp = par::unwritten_f32(g.n * span);
    let xpp = SharedMut(xp.as_mut_ptr());
    par::for_each(g.n, |n| {
        // SAFETY: sample n's span of xp's capacity is written by this call alone.
        unsafe { grid.pad_all(g, &x[n * xn..][..xn], xpp.at(n * span), span) };
    });
    // SAFETY: pad_all wrote every one of the n spans.
    unsafe { par::finish_written(&mut xp, g.n * span, "direct conv: padded input") };

    // For each grid position, its output index (or none for a padding column).
    let mut l_of_q = vec![usize::MAX; grid.qlen.next_multiple_of(NR)];
    for (li, &q) in grid.q_of_l.iter().enumerate() {
        l_of_q[q] = li;
    }
    let blocks = grid.qlen.div_ceil(NR);
    let runs: Vec<Vec<Run>> = l_of_q.chunks(NR).map(Run::all).collect();
    let per_sample = blocks.div_ceil(BLOCKS_PER_TASK);
    let oblocks = og.div_ceil(MR);
    let wp = pack_weights(w, groups, og, kg);
    // Not zeroed first: every output is written exactly once below (each output position
    // has one grid position, and the tiles cover every channel).
    let total = g.n * out_channels * l;
    let mut y = par::unwritten_f32(total);
    let yp = SharedMut(y.as_mut_ptr());
    par::for_each(g.n * per_sample, |task| {
        let (n, first) = (task / per_sample, (task % per_sample) * BLOCKS_PER_TASK);
        let sample = &xp[n * span..][..span];
        // One block's kernel rows, packed; its outputs for every channel of a group.
        let mut panel = vec![0.0f32; KC.min(kg) * NR];
        let mut acc = vec![0.0f32; oblocks * MR * NR];
        let last = (first + BLOCKS_PER_TASK).min(blocks);
        for (blk, block_runs) in runs.iter().enumerate().take(last).skip(first) {
            let q0 = blk * NR;
            for gi in 0..groups {
                let at = &sample[gi * cg * grid.plane + q0..];
                for k0 in (0..kg).step_by(KC) {
                    let kl = KC.min(kg - k0);
                    vectorised(|| {
                        for (dst, &off) in
                            panel.chunks_exact_mut(NR).zip(&grid.offsets[k0..k0 + kl])
                        {
                            // In bounds: q0 + 15 + offsets ≤ span - 1 (see Grid::span).
                            dst.copy_from_slice(&at[off..off + NR]);
                        }
                    });
                    for ob in 0..oblocks {
                        let m = MR.min(og - ob * MR);
                        let a = Packed {
                            base: wp[((gi * oblocks + ob) * kg + k0) * MR..].as_ptr(),
                        };
                        let b = Strided {
                            base: panel.as_ptr(),
                            stride: NR,
                        };
                        // SAFETY: the packed block holds (kg - k0) · MR ≥ kl · MR floats, the
                        // panel kl rows of 16, and acc the rows of every block.
                        unsafe {
                            k.tile(m, kl, a, b, acc[ob * MR * NR..].as_mut_ptr(), NR, k0 > 0)
                        };
                    }
                }
                for (o, t) in acc.chunks_exact(NR).take(og).enumerate() {
                    let oc = gi * og + o;
                    let bias = b.map_or(0.0, |b| bias_row(b, n, out_channels)[oc]);
                    let row = (n * out_channels + oc) * l;
                    for r in block_runs {
                        let dst = yp.at(row + r.out);
                        for (j, &v) in t[r.col..r.col + r.len].iter().enumerate() {
                            // SAFETY: outputs (n, oc, r.out + j) are written by this
                            // task alone: tasks split the samples' grid positions.
                            unsafe { *dst.add(j) = v + bias };
                        }
                    }
                }
            }
        }
    });
    // SAFETY: all `total` elements were initialised above.
    unsafe { par::finish_written(&mut y, total, "direct conv: output") };
    Some(y)
}

/// `dW[o, (c, k…)] = Σ_n Σ_l dy[n, o, l] · x[n, c, l + k…]` for a stride-1 geometry (`None`
/// for other strides): `[O, C/groups, k…]` flat.
pub(crate) fn weight_grad(
    k: Avx2,
    g: &Geom,
    out_channels: usize,
    groups: usize,
    dy: &[f32],
    x: &[f32],
) -> Option<Vec<f32>> {
    let (cg, og) = (g.c / groups, out_channels / groups);
    let grid = Grid::new(g, cg)?;
    let kg = cg * g.kernel_len();
    let (l, span, xn) = (g.out_len(), grid.span(g.c), g.c * g.in_len());
    // dy of one group on the grid, transposed ([q, o] with o padded to a tile's 16 columns);
    // padding columns stay zero, so products over the whole grid count outputs only.
    let opad = og.next_multiple_of(NR);
    let dyq_len = grid.qlen * opad + NR;
    // Grid positions per stretch: the stretch of dyq stays in L1 while every kernel row's
    // tiles read it.
    let qc = (DY_CHUNK_BYTES / (4 * opad)).max(NR);
    // Fixed partial sums (par::partial_sums) of the transpose, [group][kg][opad], so a tile's
    // rows (kernel rows) and columns (output channels) are its rows and columns.
    let len = groups * kg * opad;
    let dwt = par::partial_sums(
        g.n,
        par::SAMPLES_PER_PARTIAL,
        len,
        |samples, dwt: &mut [f32]| {
            let mut xp = vec![0.0f32; span];
            let mut dyq = vec![0.0f32; dyq_len];
            for n in samples {
                grid.pad(g, &x[n * xn..][..xn], &mut xp);
                for gi in 0..groups {
                    // Contiguous writes; each cache line read serves sixteen positions.
                    let src = &dy[(n * out_channels + gi * og) * l..][..og * l];
                    transpose_onto_grid(k, src, og, &grid.q_of_l, &mut dyq, opad);
                    let base = gi * cg * grid.plane;
                    for q0 in (0..grid.qlen).step_by(qc) {
                        let ql = qc.min(grid.qlen - q0);
                        for k0 in (0..kg).step_by(MR) {
                            let m = MR.min(kg - k0);
                            let a = Runs {
                                rows: std::array::from_fn(|i| {
                                    xp[base + grid.offsets[k0 + i.min(m - 1)] + q0..].as_ptr()
                                }),
                            };
                            for o0 in (0..og).step_by(NR) {
                                let b = Strided {
                                    base: dyq[q0 * opad + o0..].as_ptr(),
                                    stride: opad,
                                };
                                let out = dwt[(gi * kg + k0) * opad + o0..].as_mut_ptr();
                                // SAFETY: a kernel row's offset + qlen ≤ the padded sample's
                                // channels (Grid::new); dyq holds qlen rows of opad ≥ o0 + 16;
                                // dwt rows k0..k0 + m hold opad ≥ o0 + 16 columns.
                                unsafe { k.tile(m, ql, a, b, out, opad, true) };
                            }
                        }
                    }
                }
            }
        },
    );
    let mut dw = vec![0.0f32; out_channels * kg];
    for (gk, row) in dwt.chunks_exact(opad).enumerate() {
        let (gi, kk) = (gk / kg, gk % kg);
        for (o, &v) in row.iter().take(og).enumerate() {
            dw[(gi * og + o) * kg + kk] = v;
        }
    }
    Some(dw)
}
