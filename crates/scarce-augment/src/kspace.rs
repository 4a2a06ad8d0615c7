//! MR artefacts made where they arise, in k-space (the image's Fourier transform): Gibbs
//! ringing (high frequencies truncated), spikes (bright k-space points, giving stripes),
//! ghosting (every n-th line along the phase-encoding axis attenuated) and motion (k-space
//! lines acquired while the patient was in different rigid positions). The result is the
//! magnitude of the inverse transform, as a magnitude MR image is.

use rustfft::num_complex::Complex64;
use rustfft::FftPlanner;
use serde::{Deserialize, Serialize};

use crate::interp::{Mode, Order};
use crate::warp::{warp, Affine3};
use crate::{Error, Result};

/// A k-space artefact with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Artefact {
    /// Keep only the central `keep` fraction of frequencies along each axis (0 < keep ≤ 1).
    Gibbs {
        /// Fraction kept per axis.
        keep: f64,
    },
    /// Add `intensity · max|K|` at each position (k-space indices, centred: 0 is DC).
    Spikes {
        /// Positions, one index per spatial axis, relative to the centre.
        positions: Vec<Vec<i64>>,
        /// Relative intensity.
        intensity: f64,
    },
    /// Multiply the k-space planes along `axis` whose index is not a multiple of `ghosts` by
    /// `1 − intensity` (the central plane is kept).
    Ghosting {
        /// Phase-encoding axis.
        axis: usize,
        /// Ghost spacing.
        ghosts: usize,
        /// Attenuation (0–1).
        intensity: f64,
    },
    /// Split k-space along `axis` at the fractions `boundaries` (ascending, in (0, 1));
    /// segment i comes from the image moved by `moves[i]` (index-space pull maps).
    Motion {
        /// Phase-encoding axis.
        axis: usize,
        /// Segment boundaries.
        boundaries: Vec<f64>,
        /// One rigid move per segment (`boundaries.len() + 1`).
        moves: Vec<Affine3>,
    },
}

/// In-place n-D FFT over `dims` (3D, C order), one axis at a time.
fn fft3(data: &mut [Complex64], dims: [usize; 3], inverse: bool) {
    let mut planner = FftPlanner::<f64>::new();
    for axis in 0..3 {
        let n = dims[axis];
        if n == 1 {
            continue;
        }
        let fft = if inverse {
            planner.plan_fft_inverse(n)
        } else {
            planner.plan_fft_forward(n)
        };
        let stride: usize = dims[axis + 1..].iter().product();
        let outer: usize = dims[..axis].iter().product();
        let mut line = vec![Complex64::new(0.0, 0.0); n];
        for o in 0..outer {
            for s in 0..stride {
                let base = o * n * stride + s;
                for (i, v) in line.iter_mut().enumerate() {
                    *v = data[base + i * stride];
                }
                fft.process(&mut line);
                for (i, v) in line.iter().enumerate() {
                    data[base + i * stride] = *v;
                }
            }
        }
    }
    if inverse {
        let scale = 1.0 / dims.iter().product::<usize>() as f64;
        for v in data.iter_mut() {
            *v *= scale;
        }
    }
}

/// The signed frequency of FFT index `i` along an axis of length `n` (0 is DC).
fn freq(i: usize, n: usize) -> i64 {
    if i <= (n - 1) / 2 {
        i as i64
    } else {
        i as i64 - n as i64
    }
}

fn spectrum(channel: &[f32], dims: [usize; 3]) -> Vec<Complex64> {
    let mut k: Vec<Complex64> = channel
        .iter()
        .map(|&v| Complex64::new(v as f64, 0.0))
        .collect();
    fft3(&mut k, dims, false);
    k
}

/// Applies `artefact` to one channel of shape `dims` (`lead` axes of length 1 in front for a
/// 2D image); returns the magnitude image.
pub fn apply(
    artefact: &Artefact,
    channel: &[f32],
    dims: [usize; 3],
    lead: usize,
) -> Result<Vec<f32>> {
    let n: usize = dims.iter().product();
    let index = |i: usize| [i / (dims[1] * dims[2]), i / dims[2] % dims[1], i % dims[2]];
    let check_axis = |axis: usize| {
        if lead + axis >= 3 {
            Err(Error::param(
                "axis",
                format!("{axis} is not a spatial axis"),
            ))
        } else {
            Ok(lead + axis)
        }
    };
    let mut k = match artefact {
        Artefact::Motion {
            axis,
            boundaries,
            moves,
        } => {
            let a = check_axis(*axis)?;
            if moves.len() != boundaries.len() + 1
                || boundaries.windows(2).any(|w| w[0] >= w[1])
                || boundaries.iter().any(|b| !(*b > 0.0 && *b < 1.0))
            {
                return Err(Error::param(
                    "boundaries",
                    "ascending fractions in (0, 1), one fewer than the moves",
                ));
            }
            let mut k = vec![Complex64::new(0.0, 0.0); n];
            for (seg, m) in moves.iter().enumerate() {
                let (moved, _) = warp(
                    channel,
                    1,
                    None,
                    dims,
                    dims,
                    m,
                    None,
                    Mode::Nearest,
                    Order::Linear,
                );
                let km = spectrum(&moved, dims);
                // Segment `seg` owns the lines whose centred position falls in its range.
                let lo = if seg == 0 { 0.0 } else { boundaries[seg - 1] };
                let hi = boundaries.get(seg).copied().unwrap_or(1.0);
                for (i, v) in k.iter_mut().enumerate() {
                    let line = index(i)[a];
                    let pos = (freq(line, dims[a]) + dims[a] as i64 / 2) as f64 / dims[a] as f64;
                    if pos >= lo && (pos < hi || (seg == moves.len() - 1)) {
                        *v = km[i];
                    }
                }
            }
            k
        }
        _ => spectrum(channel, dims),
    };
    match artefact {
        Artefact::Gibbs { keep } => {
            if !(*keep > 0.0 && *keep <= 1.0) {
                return Err(Error::param("keep", format!("{keep}: must be in (0, 1]")));
            }
            for (i, v) in k.iter_mut().enumerate() {
                let idx = index(i);
                let cut = (0..3).any(|a| {
                    dims[a] > 1
                        && (freq(idx[a], dims[a]).abs() as f64) > keep * dims[a] as f64 / 2.0
                });
                if cut {
                    *v = Complex64::new(0.0, 0.0);
                }
            }
        }
        Artefact::Spikes {
            positions,
            intensity,
        } => {
            let peak = k.iter().map(|v| v.norm()).fold(0.0, f64::max);
            for p in positions {
                if p.len() != 3 - lead {
                    return Err(Error::param("positions", "one index per spatial axis"));
                }
                let mut at = 0usize;
                for a in 0..3 {
                    let f = if a < lead { 0 } else { p[a - lead] };
                    at = at * dims[a] + f.rem_euclid(dims[a] as i64) as usize;
                }
                k[at] += Complex64::new(intensity * peak, 0.0);
            }
        }
        Artefact::Ghosting {
            axis,
            ghosts,
            intensity,
        } => {
            let a = check_axis(*axis)?;
            if *ghosts == 0 || !(0.0..=1.0).contains(intensity) {
                return Err(Error::param(
                    "ghosting",
                    format!("ghosts {ghosts} ≥ 1 and intensity {intensity} in [0, 1]"),
                ));
            }
            for (i, v) in k.iter_mut().enumerate() {
                let f = freq(index(i)[a], dims[a]);
                if f != 0 && f.rem_euclid(*ghosts as i64) != 0 {
                    *v *= 1.0 - intensity;
                }
            }
        }
        Artefact::Motion { .. } => {}
    }
    fft3(&mut k, dims, true);
    Ok(k.iter().map(|v| v.norm() as f32).collect())
}
