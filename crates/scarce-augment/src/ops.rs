//! Operations with fixed parameters: what a random transform decided, recorded in a sample's
//! history. Applying the recorded operations replays a result exactly; the invertible ones
//! (flips, rotations by 90°, affine warps, crops, pads, resizes, linear intensity maps) give
//! their inverse, e.g. to map a prediction back onto the original image.
//!
//! Spatial operations move the image (linear interpolation) and the label map (nearest
//! only, so no label is ever invented) with one set of coordinates. Intensity operations
//! leave the label map alone.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::field::Field;
use crate::filter::gaussian_filter;
use crate::interp::{dims3, Mode, Order};
use crate::rng::Rand;
use crate::sample::Sample;
use crate::warp::{warp, Affine3};
use crate::{Error, Result};

/// One applied operation and its parameters. Axes are spatial axes of the image (0 first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Reverse these axes.
    Flip {
        /// The axes.
        axes: Vec<usize>,
    },
    /// Rotate by `k` quarter turns in the plane of two axes (numpy's `rot90`).
    Rot90 {
        /// Quarter turns, 0–3.
        k: u8,
        /// The plane.
        axes: [usize; 2],
    },
    /// One resampling pass: the output voxel `o` reads the input at
    /// `matrix · o + field(o)` (index space, 3D; a 2D image is `[1, h, w]`).
    Warp {
        /// Affine part (output index → input index).
        matrix: Affine3,
        /// Elastic displacement on the output grid, in input voxels.
        field: Option<Field>,
        /// Input spatial shape.
        in_shape: Vec<usize>,
        /// Output spatial shape.
        out_shape: Vec<usize>,
        /// What lies outside the image.
        mode: Mode,
        /// Interpolation of the image (the label map is always nearest).
        interpolation: Order,
    },
    /// Keep the box `start .. start + size`.
    Crop {
        /// First voxel kept per axis.
        start: Vec<usize>,
        /// Size per axis.
        size: Vec<usize>,
        /// Shape before.
        in_shape: Vec<usize>,
    },
    /// Add `before` and `after` voxels per axis; the label map is extended the same way,
    /// with 0 where the image gets a constant.
    Pad {
        /// Shape before.
        in_shape: Vec<usize>,
        /// Before, per axis.
        before: Vec<usize>,
        /// After, per axis.
        after: Vec<usize>,
        /// How the image is extended.
        mode: Mode,
    },
    /// Resample to `out_shape`, pixel edges aligned (scipy `zoom` with `grid_mode`), and
    /// set the spacing so that the physical extent is kept.
    Resize {
        /// Shape before.
        in_shape: Vec<usize>,
        /// Shape after.
        out_shape: Vec<usize>,
    },
    /// Add Gaussian noise of standard deviation `std`, drawn from the stream `key`.
    Noise {
        /// Standard deviation.
        std: f64,
        /// Stream key (replays the same noise).
        key: u64,
    },
    /// Rician noise (MR magnitude): `√((x + n₁)² + n₂²)`.
    Rician {
        /// Standard deviation of each Gaussian component.
        std: f64,
        /// Stream key.
        key: u64,
    },
    /// Gaussian blur with `sigma` (voxels) per axis, reflecting at the edges.
    Blur {
        /// Per axis.
        sigma: Vec<f64>,
    },
    /// `x · scale + shift` (brightness, contrast, normalisation).
    Linear {
        /// Factor.
        scale: f64,
        /// Offset.
        shift: f64,
    },
    /// Add one offset per channel (colour jitter).
    ChannelShift {
        /// Offset per channel.
        shift: Vec<f64>,
    },
    /// Clamp to `[lo, hi]` (windowing).
    Clip {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// Gamma on each channel's min–max normalised values: `min + (max − min) · t^γ`.
    Gamma {
        /// Exponent.
        gamma: f64,
    },
    /// MR bias field: multiply by `exp(Σ c_ijk P_i(z) P_j(y) P_k(x))`, Legendre polynomials
    /// on coordinates normalised to `[−1, 1]`, total degree ≤ `order`.
    BiasField {
        /// Maximum total degree.
        order: usize,
        /// One coefficient per `(i, j, k)` with `i + j + k ≤ order`, in lexicographic order.
        coefficients: Vec<f64>,
    },
    /// An MR artefact made in k-space, per channel (the result is the magnitude image).
    KSpace {
        /// The artefact and its parameters.
        artefact: crate::kspace::Artefact,
    },
    /// Set boxes to `fill` (coarse dropout / cutout).
    Dropout {
        /// `(start, size)` per box, per spatial axis.
        boxes: Vec<(Vec<usize>, Vec<usize>)>,
        /// The value written.
        fill: f32,
    },
}

fn lead(sample: &Sample) -> usize {
    3 - sample.image.shape.len()
}

fn check_axes(sample: &Sample, axes: &[usize]) -> Result<()> {
    let nd = sample.image.shape.len();
    if let Some(a) = axes.iter().find(|&&a| a >= nd) {
        return Err(Error::param("axes", format!("axis {a} of a {nd}D image")));
    }
    Ok(())
}

/// Applies `f(values, dims) -> (new values, new dims)` to every image channel and, with
/// `order` nearest, to the label map.
fn each_array(
    sample: &mut Sample,
    f: impl Fn(&[f32], [usize; 3]) -> (Vec<f32>, [usize; 3]),
    g: impl Fn(&[u16], [usize; 3]) -> Vec<u16>,
) -> [usize; 3] {
    let dims = sample.image.dims();
    let mut new_dims = dims;
    if sample.image.channels == 1 {
        // One channel: the result is the new data, no copy.
        let (v, d) = f(&sample.image.data, dims);
        sample.image.data = v;
        new_dims = d;
    } else {
        let mut out = Vec::with_capacity(sample.image.data.len());
        for c in 0..sample.image.channels {
            let (v, d) = f(sample.image.channel(c), dims);
            out.extend(v);
            new_dims = d;
        }
        sample.image.data = out;
    }
    if let Some(m) = &sample.mask {
        sample.mask = Some(g(m, dims));
    }
    new_dims
}

/// Copies with an index map: output index `o` (3D) reads input `src(o)`; slices in
/// parallel.
fn remap<T: Copy + Default + Send + Sync>(
    a: &[T],
    dims: [usize; 3],
    out_dims: [usize; 3],
    src: &(impl Fn([usize; 3]) -> Option<[usize; 3]> + Sync),
    fill: T,
) -> Vec<T> {
    let plane = out_dims[1] * out_dims[2];
    let mut out = vec![T::default(); out_dims.iter().product()];
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(z, slice)| {
            for (y, row) in slice.chunks_mut(out_dims[2].max(1)).enumerate() {
                for (x, o) in row.iter_mut().enumerate() {
                    *o = match src([z, y, x]) {
                        Some([a0, a1, a2]) => a[(a0 * dims[1] + a1) * dims[2] + a2],
                        None => fill,
                    };
                }
            }
        });
    out
}

/// `a` reversed along the axes marked in `flip`, row by row (a row is copied forwards or
/// backwards), slices in parallel.
fn flip_array<T: Copy + Default + Send + Sync>(
    a: &[T],
    dims: [usize; 3],
    flip: [bool; 3],
) -> Vec<T> {
    let (plane, w) = (dims[1] * dims[2], dims[2]);
    let mut out = vec![T::default(); a.len()];
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(z, slice)| {
            let sz = if flip[0] { dims[0] - 1 - z } else { z };
            for (y, row) in slice.chunks_mut(w.max(1)).enumerate() {
                let sy = if flip[1] { dims[1] - 1 - y } else { y };
                let src = &a[sz * plane + sy * w..][..w];
                if flip[2] {
                    for (o, v) in row.iter_mut().zip(src.iter().rev()) {
                        *o = *v;
                    }
                } else {
                    row.copy_from_slice(src);
                }
            }
        });
    out
}

fn set_shape(sample: &mut Sample, dims: [usize; 3]) {
    let l = lead(sample);
    sample.image.shape = dims[l..].to_vec();
}

/// Index-map operations (flip, rot90, crop, pad) on image and mask alike.
fn apply_remap(
    sample: &mut Sample,
    out_dims: [usize; 3],
    src: impl Fn([usize; 3]) -> Option<[usize; 3]> + Sync,
    image_fill: f32,
) {
    let d = each_array(
        sample,
        |a, dims| (remap(a, dims, out_dims, &src, image_fill), out_dims),
        |m, dims| remap(m, dims, out_dims, &src, 0),
    );
    set_shape(sample, d);
}

impl Op {
    /// Applies the operation to `sample` and records it in its history.
    pub fn apply(&self, sample: &mut Sample) -> Result<()> {
        self.apply_unrecorded(sample)?;
        sample.history.push(self.clone());
        Ok(())
    }

    fn apply_unrecorded(&self, sample: &mut Sample) -> Result<()> {
        let l = lead(sample);
        let dims = sample.image.dims();
        match self {
            Op::Flip { axes } => {
                check_axes(sample, axes)?;
                let mut flip = [false; 3];
                for &a in axes {
                    flip[a + l] = !flip[a + l];
                }
                each_array(
                    sample,
                    |a, dims| (flip_array(a, dims, flip), dims),
                    |m, dims| flip_array(m, dims, flip),
                );
            }
            Op::Rot90 { k, axes } => {
                check_axes(sample, axes)?;
                if axes[0] == axes[1] {
                    return Err(Error::param("axes", "rot90 needs two different axes"));
                }
                let (a, b) = (axes[0] + l, axes[1] + l);
                for _ in 0..k % 4 {
                    // numpy's rot90: new[i, j] = old[j, N − 1 − i] in the (a, b) plane.
                    let cur = sample.image.dims();
                    let mut out = cur;
                    out.swap(a, b);
                    apply_remap(
                        sample,
                        out,
                        |o| {
                            let mut s = o;
                            s[a] = o[b];
                            s[b] = cur[b] - 1 - o[a];
                            Some(s)
                        },
                        0.0,
                    );
                }
            }
            Op::Warp {
                matrix,
                field,
                in_shape,
                out_shape,
                mode,
                interpolation,
            } => {
                if *in_shape != sample.image.shape {
                    return Err(Error::shape(
                        "image",
                        format!("{in_shape:?}"),
                        &sample.image.shape,
                    ));
                }
                let out_dims = dims3(out_shape)?;
                let dense = field.as_ref().map(|f| f.sampler(out_dims)).transpose()?;
                let (img, mask) = warp(
                    &sample.image.data,
                    sample.image.channels,
                    sample.mask.as_deref(),
                    dims,
                    out_dims,
                    matrix,
                    dense.as_ref(),
                    *mode,
                    *interpolation,
                );
                sample.image.data = img;
                sample.mask = mask;
                sample.image.shape = out_shape.clone();
            }
            Op::Crop {
                start,
                size,
                in_shape,
            } => {
                if *in_shape != sample.image.shape
                    || start.len() != in_shape.len()
                    || size.len() != in_shape.len()
                    || (0..in_shape.len())
                        .any(|k| size[k] == 0 || start[k].saturating_add(size[k]) > in_shape[k])
                {
                    return Err(Error::param(
                        "crop",
                        format!(
                            "box {start:?} + {size:?} does not fit the image {:?}",
                            sample.image.shape
                        ),
                    ));
                }
                let mut st = [0usize; 3];
                for (k, &v) in start.iter().enumerate() {
                    st[l + k] = v;
                }
                let out = dims3(size)?;
                apply_remap(
                    sample,
                    out,
                    |o| Some([o[0] + st[0], o[1] + st[1], o[2] + st[2]]),
                    0.0,
                );
            }
            Op::Pad {
                in_shape,
                before,
                after,
                mode,
            } => {
                let nd = sample.image.shape.len();
                if *in_shape != sample.image.shape || before.len() != nd || after.len() != nd {
                    return Err(Error::param(
                        "pad",
                        format!(
                            "one value per axis of an image {in_shape:?}, got {:?}",
                            sample.image.shape
                        ),
                    ));
                }
                let mut b = [0usize; 3];
                let mut out = dims;
                b[l..].copy_from_slice(before);
                for k in 0..nd {
                    out[l + k] += before[k] + after[k];
                }
                let fill = mode.fill() as f32;
                let m = *mode;
                let src = move |o: [usize; 3]| {
                    let mut s = [0usize; 3];
                    for k in 0..3 {
                        s[k] = m.index(o[k] as i64 - b[k] as i64, dims[k])?;
                    }
                    Some(s)
                };
                let d = each_array(
                    sample,
                    |a, dims| (remap(a, dims, out, &src, fill), out),
                    |mk, dims| remap(mk, dims, out, &src, 0),
                );
                set_shape(sample, d);
            }
            Op::Resize {
                in_shape,
                out_shape,
            } => {
                if *in_shape != sample.image.shape
                    || out_shape.len() != in_shape.len()
                    || out_shape.contains(&0)
                {
                    return Err(Error::param(
                        "shape",
                        format!(
                            "resize {in_shape:?} → {out_shape:?} of an image {:?}",
                            sample.image.shape
                        ),
                    ));
                }
                let out_dims = dims3(out_shape)?;
                // Pixel edges aligned: c = (o + 0.5) · n_in / n_out − 0.5.
                let mut m = Affine3::identity();
                for k in 0..3 {
                    let s = dims[k] as f64 / out_dims[k] as f64;
                    m.0[k][k] = s;
                    m.0[k][3] = 0.5 * s - 0.5;
                }
                let (img, mask) = warp(
                    &sample.image.data,
                    sample.image.channels,
                    sample.mask.as_deref(),
                    dims,
                    out_dims,
                    &m,
                    None,
                    Mode::Nearest,
                    Order::Linear,
                );
                for k in 0..in_shape.len() {
                    sample.image.spacing[k] *= in_shape[k] as f64 / out_shape[k] as f64;
                }
                sample.image.data = img;
                sample.mask = mask;
                sample.image.shape = out_shape.clone();
            }
            Op::Noise { std, key } => {
                // Voxels 2i and 2i + 1 take the two normals of Box–Muller pair i.
                let r = Rand::from_key(*key);
                sample
                    .image
                    .data
                    .par_chunks_mut(2)
                    .enumerate()
                    .for_each(|(i, pair)| {
                        let n = r.normal_pair(i as u64);
                        for (v, n) in pair.iter_mut().zip([n.0, n.1]) {
                            *v += (std * n) as f32;
                        }
                    });
            }
            Op::Rician { std, key } => {
                let r = Rand::from_key(*key);
                sample
                    .image
                    .data
                    .par_iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| {
                        let (n1, n2) = r.normal_pair(i as u64);
                        let a = *v as f64 + std * n1;
                        let b = std * n2;
                        *v = (a * a + b * b).sqrt() as f32;
                    });
            }
            Op::Blur { sigma } => {
                let shape = sample.image.shape.clone();
                let n = sample.image.voxels();
                for ch in sample.image.data.chunks_mut(n) {
                    gaussian_filter(ch, &shape, sigma, 4.0, Mode::Reflect)?;
                }
            }
            Op::Linear { scale, shift } => {
                for v in &mut sample.image.data {
                    *v = (*v as f64 * scale + shift) as f32;
                }
            }
            Op::ChannelShift { shift } => {
                if shift.len() != sample.image.channels {
                    return Err(Error::param(
                        "shift",
                        format!(
                            "{} offsets for {} channels",
                            shift.len(),
                            sample.image.channels
                        ),
                    ));
                }
                let n = sample.image.voxels();
                for (ch, s) in sample.image.data.chunks_mut(n).zip(shift) {
                    for v in ch.iter_mut() {
                        *v = (*v as f64 + s) as f32;
                    }
                }
            }
            Op::Clip { lo, hi } => {
                for v in &mut sample.image.data {
                    *v = (*v as f64).clamp(*lo, *hi) as f32;
                }
            }
            Op::Gamma { gamma } => {
                let n = sample.image.voxels();
                for ch in sample.image.data.chunks_mut(n) {
                    let (lo, hi) = ch
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                            (a.min(v), b.max(v))
                        });
                    if hi > lo {
                        let r = (hi - lo) as f64;
                        for v in ch.iter_mut() {
                            let t = (*v - lo) as f64 / r;
                            *v = (lo as f64 + r * t.powf(*gamma)) as f32;
                        }
                    }
                }
            }
            Op::BiasField {
                order,
                coefficients,
            } => {
                let terms = bias_terms(*order);
                if terms.len() != coefficients.len() {
                    return Err(Error::param(
                        "coefficients",
                        format!(
                            "{} for order {order}, need {}",
                            coefficients.len(),
                            terms.len()
                        ),
                    ));
                }
                let n = sample.image.voxels();
                let norm = |i: usize, len: usize| {
                    if len > 1 {
                        2.0 * i as f64 / (len - 1) as f64 - 1.0
                    } else {
                        0.0
                    }
                };
                let mut field = vec![0f32; n];
                let mut at = 0;
                for z in 0..dims[0] {
                    let pz: Vec<f64> = (0..=*order)
                        .map(|d| legendre(d, norm(z, dims[0])))
                        .collect();
                    for y in 0..dims[1] {
                        let py: Vec<f64> = (0..=*order)
                            .map(|d| legendre(d, norm(y, dims[1])))
                            .collect();
                        for x in 0..dims[2] {
                            let px = norm(x, dims[2]);
                            let mut s = 0.0;
                            for (t, c) in terms.iter().zip(coefficients) {
                                s += c * pz[t[0]] * py[t[1]] * legendre(t[2], px);
                            }
                            field[at] = s.exp() as f32;
                            at += 1;
                        }
                    }
                }
                for ch in sample.image.data.chunks_mut(n) {
                    for (v, f) in ch.iter_mut().zip(&field) {
                        *v *= f;
                    }
                }
            }
            Op::KSpace { artefact } => {
                let n = sample.image.voxels();
                let mut out = Vec::with_capacity(sample.image.data.len());
                for ch in sample.image.data.chunks(n) {
                    out.extend(crate::kspace::apply(artefact, ch, dims, l)?);
                }
                sample.image.data = out;
            }
            Op::Dropout { boxes, fill } => {
                let nd = sample.image.shape.len();
                let n = sample.image.voxels();
                for (start, size) in boxes {
                    if start.len() != nd || size.len() != nd {
                        return Err(Error::param(
                            "boxes",
                            format!("one start and size per axis ({nd})"),
                        ));
                    }
                    let mut lo = [0usize; 3];
                    let mut hi = dims;
                    for k in 0..nd {
                        lo[l + k] = start[k].min(dims[l + k]);
                        hi[l + k] = start[k].saturating_add(size[k]).min(dims[l + k]);
                    }
                    for ch in sample.image.data.chunks_mut(n) {
                        for z in lo[0]..hi[0] {
                            for y in lo[1]..hi[1] {
                                let row = (z * dims[1] + y) * dims[2];
                                ch[row + lo[2]..row + hi[2]].fill(*fill);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The operation that undoes this one, for the invertible kinds: flips, rotations by
    /// 90°, affine warps without an elastic field (exact in the interior; what fell outside
    /// is lost), crops (undone by zero padding), pads, resizes (up to resampling) and linear
    /// intensity maps. `None` for the rest.
    pub fn inverse(&self) -> Option<Op> {
        Some(match self {
            Op::Flip { axes } => Op::Flip { axes: axes.clone() },
            Op::Rot90 { k, axes } => Op::Rot90 {
                k: (4 - k % 4) % 4,
                axes: *axes,
            },
            Op::Warp {
                matrix,
                field: None,
                in_shape,
                out_shape,
                mode,
                interpolation,
            } => Op::Warp {
                matrix: matrix.inverse()?,
                field: None,
                in_shape: out_shape.clone(),
                out_shape: in_shape.clone(),
                mode: *mode,
                interpolation: *interpolation,
            },
            Op::Crop {
                start,
                size,
                in_shape,
            } => Op::Pad {
                in_shape: size.clone(),
                before: start.clone(),
                after: (0..start.len())
                    .map(|k| in_shape[k] - start[k] - size[k])
                    .collect(),
                mode: Mode::Constant(0.0),
            },
            Op::Pad {
                in_shape,
                before,
                after,
                ..
            } => Op::Crop {
                start: before.clone(),
                size: in_shape.clone(),
                in_shape: (0..in_shape.len())
                    .map(|k| in_shape[k] + before[k] + after[k])
                    .collect(),
            },
            Op::Resize {
                in_shape,
                out_shape,
            } => Op::Resize {
                in_shape: out_shape.clone(),
                out_shape: in_shape.clone(),
            },
            Op::ChannelShift { shift } => Op::ChannelShift {
                shift: shift.iter().map(|s| -s).collect(),
            },
            Op::Linear { scale, shift } if *scale != 0.0 => Op::Linear {
                scale: 1.0 / scale,
                shift: -shift / scale,
            },
            _ => return None,
        })
    }
}

/// Undoes `history` (newest first) on `sample`, e.g. a network's predicted label map made
/// on the augmented image; errors naming the first operation that has no inverse.
pub fn invert(sample: &mut Sample, history: &[Op]) -> Result<()> {
    for op in history.iter().rev() {
        op.inverse()
            .ok_or_else(|| Error::param("history", format!("{op:?} cannot be undone")))?
            .apply_unrecorded(sample)?;
    }
    Ok(())
}

/// Replays recorded operations on another sample (same shapes): the same result as the
/// random pipeline that recorded them.
pub fn replay(sample: &mut Sample, history: &[Op]) -> Result<()> {
    for op in history {
        op.apply(sample)?;
    }
    Ok(())
}

/// `(i, j, k)` with `i + j + k ≤ order`, lexicographic.
pub fn bias_terms(order: usize) -> Vec<[usize; 3]> {
    let mut t = Vec::new();
    for i in 0..=order {
        for j in 0..=order - i {
            for k in 0..=order - i - j {
                t.push([i, j, k]);
            }
        }
    }
    t
}

/// Legendre polynomial `P_n(x)` by the three-term recurrence.
fn legendre(n: usize, x: f64) -> f64 {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return 1.0;
    }
    for k in 1..n {
        let p2 = ((2 * k + 1) as f64 * x * p1 - k as f64 * p0) / (k + 1) as f64;
        p0 = p1;
        p1 = p2;
    }
    p1
}
