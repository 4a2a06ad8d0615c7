//! The one image type every reader returns: channels-first f32 voxels with their geometry.

use serde::{Deserialize, Serialize};

/// Where an image came from and what it shows: the key metadata a pipeline filters on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `"dicom"`, `"dicom-series"` or `"nifti"`.
    pub format: String,
    /// DICOM Modality (CT, MR, …), if known.
    pub modality: Option<String>,
    /// DICOM PatientID, if known.
    pub patient_id: Option<String>,
    /// DICOM StudyInstanceUID, if known.
    pub study_uid: Option<String>,
    /// DICOM SeriesInstanceUID, if known.
    pub series_uid: Option<String>,
    /// Units of the intensities (DICOM RescaleType, e.g. `HU`), if known.
    pub intensity_units: Option<String>,
    /// Spatial unit of the geometry (`mm` unless the file says otherwise).
    pub spatial_units: String,
    /// Free-text description (NIfTI descrip, DICOM SeriesDescription).
    pub description: Option<String>,
}

/// An image or volume: `data` is C-order over `shape = [channels, depth, height, width]`,
/// so `width` (the file's first spatial axis, i) varies fastest.
///
/// Geometry is in RAS+ world coordinates (NIfTI's and nibabel's convention; DICOM's LPS
/// positions are converted by negating x and y). Voxel index `(i, j, k)` = (column, row,
/// slice) sits at `origin + direction · (spacing ⊙ (i, j, k))`.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Voxel values, C order over `shape`.
    pub data: Vec<f32>,
    /// `[channels, depth, height, width]`.
    pub shape: [usize; 4],
    /// Voxel size along i, j, k (width, height, depth axes), in `meta.spatial_units`.
    pub spacing: [f64; 3],
    /// World position of voxel (0, 0, 0).
    pub origin: [f64; 3],
    /// Unit world direction of the i, j and k axes, as columns: `direction[r][c]` is
    /// component r of axis c.
    pub direction: [[f64; 3]; 3],
    /// Source metadata.
    pub meta: Metadata,
}

impl Image {
    /// The 4×4 voxel-to-world matrix (what nibabel calls `affine`).
    pub fn affine(&self) -> [[f64; 4]; 4] {
        let mut a = [[0.0; 4]; 4];
        for (r, row) in a.iter_mut().take(3).enumerate() {
            for (c, v) in row.iter_mut().take(3).enumerate() {
                *v = self.direction[r][c] * self.spacing[c];
            }
            row[3] = self.origin[r];
        }
        a[3][3] = 1.0;
        a
    }

    /// Spacing, origin and direction from a voxel-to-world matrix. A zero column (a
    /// degenerate axis) gets spacing 0 and the matching unit axis as its direction.
    pub fn geometry_from_affine(affine: &[[f64; 4]; 4]) -> ([f64; 3], [f64; 3], [[f64; 3]; 3]) {
        let mut spacing = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for c in 0..3 {
            let norm = (0..3)
                .map(|r| affine[r][c] * affine[r][c])
                .sum::<f64>()
                .sqrt();
            spacing[c] = norm;
            for r in 0..3 {
                direction[r][c] = if norm > 0.0 {
                    affine[r][c] / norm
                } else {
                    (r == c) as u8 as f64
                };
            }
        }
        let origin = [affine[0][3], affine[1][3], affine[2][3]];
        (spacing, origin, direction)
    }

    /// Number of voxels per channel.
    pub fn voxels(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }
}
