//! One DICOM file -> [`Image`]: decoded, through the modality LUT (and optionally a VOI
//! window or the palette), with the plane geometry.

use dicom_dictionary_std::tags;

use super::attrs::opt_str;
use super::geometry::{dot, plane, volume_geometry};
use super::lut::{LutScope, Window};
use super::{DicomFile, PixelArray};
use crate::error::Result;
use crate::image::{Image, Metadata};

/// What [`DicomFile::to_image`] applies to the stored values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageOptions {
    /// Apply the Modality LUT (rescale to HU etc., per frame for enhanced objects).
    pub modality_lut: bool,
    /// Turn palette colour into RGB through its LUTs.
    pub palette_to_rgb: bool,
    /// Map values through this VOI window to `[0, 1]` after the modality LUT.
    pub window: Option<Window>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            modality_lut: true,
            palette_to_rgb: true,
            window: None,
        }
    }
}

impl DicomFile {
    /// Key metadata: modality, patient, study and series, rescale type, description.
    pub fn metadata(&self) -> Metadata {
        let o = &self.obj;
        Metadata {
            format: "dicom".into(),
            modality: opt_str(o, tags::MODALITY),
            patient_id: opt_str(o, tags::PATIENT_ID),
            study_uid: opt_str(o, tags::STUDY_INSTANCE_UID),
            series_uid: opt_str(o, tags::SERIES_INSTANCE_UID),
            intensity_units: opt_str(o, tags::RESCALE_TYPE),
            spatial_units: "mm".into(),
            description: opt_str(o, tags::SERIES_DESCRIPTION),
        }
    }

    /// The values [`DicomFile::to_image`] stores for decoded pixels `px`, still in
    /// pydicom's layout (frames, rows, columns, samples), with the array they came from
    /// (palette colour expanded to RGB when asked).
    pub(crate) fn values(
        &self,
        mut px: PixelArray,
        opts: &ImageOptions,
    ) -> Result<(PixelArray, Vec<f32>)> {
        if opts.palette_to_rgb && px.photometric == "PALETTE COLOR" {
            px = self.palette_to_rgb(&px)?;
        }
        let transformed;
        let samples = if opts.modality_lut {
            transformed = self.modality_lut(&px, LutScope::Frames)?;
            &transformed
        } else {
            &px.samples
        };
        let values: Vec<f32> = match opts.window {
            Some(w) => {
                w.validate()?;
                samples
                    .to_f64()
                    .into_iter()
                    .map(|x| w.apply(x) as f32)
                    .collect()
            }
            None => samples.to_f32(),
        };
        Ok((px, values))
    }

    /// Decodes to an [`Image`] of shape `[samples per pixel, frames, rows, columns]`, with
    /// spacing, origin and direction from the Image Plane module (RAS); files without plane
    /// information get unit spacing and identity direction.
    pub fn to_image(&self, opts: &ImageOptions) -> Result<Image> {
        self.image_from(self.pixels()?, opts)
    }

    /// [`DicomFile::to_image`] for pixels already decoded by [`DicomFile::pixels`], so a
    /// caller that also needs the raw array decodes once.
    pub fn image_from(&self, px: PixelArray, opts: &ImageOptions) -> Result<Image> {
        let (px, values) = self.values(px, opts)?;
        let (f, r, c, ch) = (px.frames, px.rows, px.columns, px.channels);
        // (frames, rows, columns, channels) -> (channels, frames, rows, columns)
        let mut data = vec![0f32; values.len()];
        let plane_len = f * r * c;
        for (i, v) in values.iter().enumerate() {
            data[(i % ch) * plane_len + i / ch] = *v;
        }
        let (spacing, origin, direction) = match plane(&self.obj, &self.path, 0)? {
            Some(first) => {
                let step = match plane(&self.obj, &self.path, 1)? {
                    Some(second) if f > 1 => {
                        let normal = super::geometry::cross(first.row_dir, first.col_dir);
                        let d = [0, 1, 2].map(|k| second.position[k] - first.position[k]);
                        dot(d, normal)
                    }
                    _ => first.slice_spacing.unwrap_or(1.0),
                };
                volume_geometry(&first, if step == 0.0 { 1.0 } else { step })
            }
            None => (
                [1.0, 1.0, 1.0],
                [0.0; 3],
                [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            ),
        };
        Ok(Image {
            data,
            shape: [ch, f, r, c],
            spacing,
            origin,
            direction,
            meta: self.metadata(),
        })
    }
}
