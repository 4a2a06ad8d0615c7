//! Elastic displacement fields: a coarse grid of random displacements made smooth by a
//! cubic B-spline (TorchIO's `RandomElasticDeformation`) or by Gaussian smoothing of the
//! grid and linear interpolation (closer to MONAI's), evaluated on the output grid one
//! slice at a time, separably, so no dense field is ever stored.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the coarse grid is interpolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Smoothness {
    /// Uniform cubic B-spline over the control points (C² smooth; needs ≥ 4 per axis).
    BSpline,
    /// Linear interpolation of an already smoothed grid.
    Linear,
}

/// A displacement field: `grid` control points per axis (3D; 1 on axis 0 of a 2D image),
/// three components (one per axis, in input voxels), component-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Control points per axis.
    pub grid: [usize; 3],
    /// `3 × prod(grid)` displacements.
    pub values: Vec<f64>,
    /// Interpolation between control points.
    pub smoothness: Smoothness,
}

/// For each output position along an axis: the first control index and four weights.
type Basis = Vec<(usize, [f64; 4])>;

fn basis(m: usize, n: usize, smoothness: Smoothness) -> Basis {
    (0..n)
        .map(|p| {
            if m == 1 {
                return (0, [1.0, 0.0, 0.0, 0.0]);
            }
            let span = match smoothness {
                Smoothness::BSpline => m - 3,
                Smoothness::Linear => m - 1,
            };
            let u = if n > 1 {
                p as f64 * span as f64 / (n - 1) as f64
            } else {
                0.0
            };
            let i = (u.floor() as usize).min(span.saturating_sub(1));
            let t = u - i as f64;
            let w = match smoothness {
                Smoothness::BSpline => {
                    let s = 1.0 - t;
                    [
                        s * s * s / 6.0,
                        (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
                        (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0,
                        t * t * t / 6.0,
                    ]
                }
                Smoothness::Linear => [1.0 - t, t, 0.0, 0.0],
            };
            (i, w)
        })
        .collect()
}

/// A field ready to be evaluated on an output grid.
#[derive(Debug, Clone)]
pub struct FieldSampler {
    grid: [usize; 3],
    /// Per component: the grid upsampled along axis 0 to the output depth, `[d, gy, gx]`.
    along_z: Vec<Vec<f64>>,
    by: Basis,
    bx: Basis,
    dims: [usize; 3],
}

impl Field {
    /// Checks the grid against the interpolation.
    pub fn check(&self) -> Result<()> {
        let need = match self.smoothness {
            Smoothness::BSpline => 4,
            Smoothness::Linear => 2,
        };
        for (k, &m) in self.grid.iter().enumerate() {
            if m != 1 && m < need {
                return Err(Error::param(
                    "control_points",
                    format!("{m} on axis {k}: at least {need} (or 1 on a 2D image's depth)"),
                ));
            }
        }
        if self.values.len() != 3 * self.grid.iter().product::<usize>() {
            return Err(Error::shape(
                "field",
                format!("3 × {:?} values", self.grid),
                &[self.values.len()],
            ));
        }
        Ok(())
    }

    /// Prepares evaluation on an output grid of `dims`.
    pub fn sampler(&self, dims: [usize; 3]) -> Result<FieldSampler> {
        self.check()?;
        let [gz, gy, gx] = self.grid;
        let bz = basis(gz, dims[0], self.smoothness);
        let plane = gy * gx;
        let along_z = self
            .values
            .chunks(gz * plane)
            .map(|comp| {
                let mut out = vec![0.0; dims[0] * plane];
                for (z, (i, w)) in bz.iter().enumerate() {
                    for (j, wj) in w.iter().enumerate() {
                        if *wj == 0.0 {
                            continue;
                        }
                        let src = &comp[(i + j).min(gz - 1) * plane..][..plane];
                        for (o, s) in out[z * plane..(z + 1) * plane].iter_mut().zip(src) {
                            *o += wj * s;
                        }
                    }
                }
                out
            })
            .collect();
        Ok(FieldSampler {
            grid: self.grid,
            along_z,
            by: basis(gy, dims[1], self.smoothness),
            bx: basis(gx, dims[2], self.smoothness),
            dims,
        })
    }
}

impl FieldSampler {
    /// The three displacement components over output slice `z`, each `[h · w]`.
    pub fn slice(&self, z: usize) -> [Vec<f32>; 3] {
        let [_, gy, gx] = self.grid;
        let (h, w) = (self.dims[1], self.dims[2]);
        let mut out: [Vec<f32>; 3] = [vec![0.0; h * w], vec![0.0; h * w], vec![0.0; h * w]];
        let mut rows = vec![0.0; h * gx];
        for (c, comp) in self.along_z.iter().enumerate() {
            let coarse = &comp[z * gy * gx..(z + 1) * gy * gx];
            rows.fill(0.0);
            for (y, (i, wy)) in self.by.iter().enumerate() {
                for (j, wj) in wy.iter().enumerate() {
                    if *wj == 0.0 {
                        continue;
                    }
                    let src = &coarse[(i + j).min(gy - 1) * gx..][..gx];
                    for (r, s) in rows[y * gx..(y + 1) * gx].iter_mut().zip(src) {
                        *r += wj * s;
                    }
                }
            }
            for y in 0..h {
                let row = &rows[y * gx..(y + 1) * gx];
                for (x, (i, wx)) in self.bx.iter().enumerate() {
                    let mut v = 0.0;
                    for (j, wj) in wx.iter().enumerate() {
                        if *wj != 0.0 {
                            v += wj * row[(i + j).min(gx - 1)];
                        }
                    }
                    out[c][y * w + x] = v as f32;
                }
            }
        }
        out
    }
}
