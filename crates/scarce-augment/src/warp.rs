//! The one resampling pass behind every geometric transform: each output voxel `o` reads the
//! input at `A · o + field(o)`; the image channels by linear interpolation and the label map
//! by nearest neighbour, from the same coordinate, so they stay aligned. Affine, elastic and
//! both together cost one pass.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::field::FieldSampler;
use crate::interp::{Mode, Order};

/// An affine map of 3D index space, `x ↦ M x + t`, as the 3 × 4 matrix `[M | t]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine3(pub [[f64; 4]; 3]);

// Matrix algebra reads best with explicit indices.
#[allow(clippy::needless_range_loop)]
impl Affine3 {
    /// The identity.
    pub fn identity() -> Self {
        let mut m = [[0.0; 4]; 3];
        for (k, row) in m.iter_mut().enumerate() {
            row[k] = 1.0;
        }
        Affine3(m)
    }

    /// `self ∘ other`: apply `other`, then `self`.
    pub fn then_after(&self, other: &Affine3) -> Affine3 {
        let (a, b) = (&self.0, &other.0);
        let mut m = [[0.0; 4]; 3];
        for r in 0..3 {
            for c in 0..4 {
                let mut v = if c == 3 { a[r][3] } else { 0.0 };
                for k in 0..3 {
                    v += a[r][k] * b[k][c];
                }
                m[r][c] = v;
            }
        }
        Affine3(m)
    }

    /// The inverse map, `None` when singular.
    pub fn inverse(&self) -> Option<Affine3> {
        let m = &self.0;
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        if det.abs() < 1e-300 || !det.is_finite() {
            return None;
        }
        let mut inv = [[0.0; 4]; 3];
        for r in 0..3 {
            for c in 0..3 {
                // Cofactor of (c, r) over det.
                let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
                let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
                inv[r][c] = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det;
            }
        }
        for r in 0..3 {
            inv[r][3] = -(0..3).map(|k| inv[r][k] * m[k][3]).sum::<f64>();
        }
        Some(Affine3(inv))
    }

    /// `M x + t`.
    #[inline]
    pub fn apply(&self, x: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        let mut y = [0.0; 3];
        for r in 0..3 {
            y[r] = m[r][3] + m[r][0] * x[0] + m[r][1] * x[1] + m[r][2] * x[2];
        }
        y
    }
}

/// Per axis: the two source indices (`usize::MAX` = outside, read as the fill value) and
/// the weight of the second.
#[inline]
fn axis(c: f64, n: usize, mode: Mode) -> ([usize; 2], f64) {
    let i0 = c.floor();
    let f = c - i0;
    let i0 = i0 as i64;
    let map = |i: i64| mode.index(i, n).unwrap_or(usize::MAX);
    ([map(i0), map(i0 + 1)], f)
}

/// Everything a slice of the warp needs.
struct Job<'a> {
    data: &'a [f32],
    channels: usize,
    mask: Option<&'a [u16]>,
    dims: [usize; 3],
    out_dims: [usize; 3],
    affine: &'a Affine3,
    field: Option<&'a FieldSampler>,
    mode: Mode,
    image_order: Order,
}

impl Job<'_> {
    /// Output slice `z`: `img` holds `channels` planes, `lab` one plane (or nothing).
    fn slice(&self, z: usize, img: &mut [f32], lab: &mut [u16]) {
        let (dims, out_dims) = (self.dims, self.out_dims);
        let n_in: usize = dims.iter().product();
        let plane = out_dims[1] * out_dims[2];
        let fill = self.mode.fill() as f32;
        img.fill(fill);
        lab.fill(0);
        let constant = matches!(self.mode, Mode::Constant(_));
        let hi = [
            (dims[0] - 1) as f64,
            (dims[1] - 1) as f64,
            (dims[2] - 1) as f64,
        ];
        let disp = self.field.map(|f| f.slice(z));
        let m = &self.affine.0;
        for y in 0..out_dims[1] {
            // The affine part along a row is a start and a step.
            let (zf, yf) = (z as f64, y as f64);
            // Summed in scipy's order (offset first, then axis by axis): at an exact image
            // edge the rounding decides whether constant mode reads the image or `cval`.
            let row = [
                m[0][3] + m[0][0] * zf + m[0][1] * yf,
                m[1][3] + m[1][0] * zf + m[1][1] * yf,
                m[2][3] + m[2][0] * zf + m[2][1] * yf,
            ];
            for x in 0..out_dims[2] {
                let k = y * out_dims[2] + x;
                let xf = x as f64;
                let mut c = [
                    row[0] + m[0][2] * xf,
                    row[1] + m[1][2] * xf,
                    row[2] + m[2][2] * xf,
                ];
                if let Some(d) = &disp {
                    c[0] += d[0][k] as f64;
                    c[1] += d[1][k] as f64;
                    c[2] += d[2][k] as f64;
                }
                let inside = (0..3).all(|a| c[a] >= 0.0 && c[a] <= hi[a]);
                if constant && !inside {
                    continue;
                }
                // Per axis: two indices (usize::MAX = outside) and the second's weight. In
                // range, the second index is clamped (its weight is 0 at the last sample).
                let (iz, fz, iy, fy, ix, fx) = if inside {
                    let fl = |v: f64, n: usize| {
                        let i = v as usize;
                        ([i, (i + 1).min(n - 1)], v - i as f64)
                    };
                    let (iz, fz) = fl(c[0], dims[0]);
                    let (iy, fy) = fl(c[1], dims[1]);
                    let (ix, fx) = fl(c[2], dims[2]);
                    (iz, fz, iy, fy, ix, fx)
                } else {
                    let (iz, fz) = axis(c[0], dims[0], self.mode);
                    let (iy, fy) = axis(c[1], dims[1], self.mode);
                    let (ix, fx) = axis(c[2], dims[2], self.mode);
                    (iz, fz, iy, fy, ix, fx)
                };
                // Nearest: the second index when the fraction is at least one half.
                let pick = |i: [usize; 2], f: f64| if f >= 0.5 { i[1] } else { i[0] };
                let near = [pick(iz, fz), pick(iy, fy), pick(ix, fx)];
                let near = if near.contains(&usize::MAX) {
                    usize::MAX
                } else {
                    (near[0] * dims[1] + near[1]) * dims[2] + near[2]
                };
                if let (Some(mk), true) = (self.mask, near != usize::MAX) {
                    lab[k] = mk[near];
                }
                if self.image_order == Order::Nearest {
                    if near != usize::MAX {
                        for ch in 0..self.channels {
                            img[ch * plane + k] = self.data[ch * n_in + near];
                        }
                    }
                    continue;
                }
                if inside {
                    // Every corner is inside: no fill, no index checks.
                    let at =
                        |a: usize, b: usize, e: usize| (iz[a] * dims[1] + iy[b]) * dims[2] + ix[e];
                    let idx = [
                        at(0, 0, 0),
                        at(0, 0, 1),
                        at(0, 1, 0),
                        at(0, 1, 1),
                        at(1, 0, 0),
                        at(1, 0, 1),
                        at(1, 1, 0),
                        at(1, 1, 1),
                    ];
                    let (gz, gy, gx) = (1.0 - fz, 1.0 - fy, 1.0 - fx);
                    for ch in 0..self.channels {
                        let src = &self.data[ch * n_in..(ch + 1) * n_in];
                        let v = |i: usize| src[idx[i]] as f64;
                        let c00 = v(0) * gx + v(1) * fx;
                        let c01 = v(2) * gx + v(3) * fx;
                        let c10 = v(4) * gx + v(5) * fx;
                        let c11 = v(6) * gx + v(7) * fx;
                        let r = (c00 * gy + c01 * fy) * gz + (c10 * gy + c11 * fy) * fz;
                        img[ch * plane + k] = r as f32;
                    }
                    continue;
                }
                let wz = [1.0 - fz, fz];
                let wy = [1.0 - fy, fy];
                let wx = [1.0 - fx, fx];
                for ch in 0..self.channels {
                    let src = &self.data[ch * n_in..(ch + 1) * n_in];
                    let mut v = 0.0f64;
                    for a in 0..2 {
                        for b in 0..2 {
                            for e in 0..2 {
                                let w = wz[a] * wy[b] * wx[e];
                                if w == 0.0 {
                                    continue;
                                }
                                let outside = iz[a] == usize::MAX
                                    || iy[b] == usize::MAX
                                    || ix[e] == usize::MAX;
                                v += w * if outside {
                                    fill as f64
                                } else {
                                    src[(iz[a] * dims[1] + iy[b]) * dims[2] + ix[e]] as f64
                                };
                            }
                        }
                    }
                    img[ch * plane + k] = v as f32;
                }
            }
        }
    }
}

/// Resamples `channels` image channels (channel-major in `data`) and the label map from
/// `dims` to `out_dims`. Linear or nearest for the image, nearest (round half up) for the
/// label map; outside the image as `mode` says (the label map gets 0 where the image gets
/// a constant). Slices run in parallel.
#[allow(clippy::too_many_arguments)]
pub fn warp(
    data: &[f32],
    channels: usize,
    mask: Option<&[u16]>,
    dims: [usize; 3],
    out_dims: [usize; 3],
    affine: &Affine3,
    field: Option<&FieldSampler>,
    mode: Mode,
    image_order: Order,
) -> (Vec<f32>, Option<Vec<u16>>) {
    let job = Job {
        data,
        channels,
        mask,
        dims,
        out_dims,
        affine,
        field,
        mode,
        image_order,
    };
    let plane = out_dims[1] * out_dims[2];
    let n_out = plane * out_dims[0];
    let mut labels = vec![0u16; if mask.is_some() { n_out } else { 0 }];
    let lab_plane = if mask.is_some() { plane } else { 0 };
    if channels == 1 {
        // Write straight into the output planes.
        let mut out = vec![0f32; n_out];
        let mut lab_chunks: Vec<&mut [u16]> = if mask.is_some() {
            labels.chunks_mut(plane).collect()
        } else {
            (0..out_dims[0]).map(|_| &mut [][..]).collect()
        };
        out.par_chunks_mut(plane)
            .zip(lab_chunks.par_iter_mut())
            .enumerate()
            .for_each(|(z, (img, lab))| job.slice(z, img, lab));
        return (out, mask.map(|_| labels));
    }
    let slices: Vec<(Vec<f32>, Vec<u16>)> = (0..out_dims[0])
        .into_par_iter()
        .map(|z| {
            let mut img = vec![0f32; channels * plane];
            let mut lab = vec![0u16; lab_plane];
            job.slice(z, &mut img, &mut lab);
            (img, lab)
        })
        .collect();
    let mut out = vec![0f32; channels * n_out];
    for (z, (img, lab)) in slices.into_iter().enumerate() {
        for ch in 0..channels {
            out[ch * n_out + z * plane..ch * n_out + (z + 1) * plane]
                .copy_from_slice(&img[ch * plane..(ch + 1) * plane]);
        }
        if mask.is_some() {
            labels[z * plane..(z + 1) * plane].copy_from_slice(&lab);
        }
    }
    (out, mask.map(|_| labels))
}
