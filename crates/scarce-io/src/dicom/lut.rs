//! Look-up tables: YBR to RGB, the Modality LUT (rescale or LUT sequence, per frame for
//! enhanced objects), VOI windowing and palette colour, each as pydicom / the standard
//! (PS3.3 C.7.6.3, C.11.1, C.11.2, C.7.9) defines it.

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::attrs::opt_floats;
use super::{DicomFile, PixelArray};
use crate::error::{Error, Result};
use crate::samples::Samples;

/// YBR_FULL -> RGB in place (8-bit), with pydicom's float32 matrix and rounding so that
/// the result matches `pixel_array` exactly.
pub(crate) fn ybr_full_to_rgb(samples: &mut Samples) {
    let Samples::U8(v) = samples else { return };
    let m1 = -0.114f32 * 1.772 / 0.587;
    let m2 = -0.299f32 * 1.402 / 0.587;
    for px in v.chunks_exact_mut(3) {
        let y = px[0] as f32;
        let cb = px[1] as f32 - 128.0;
        let cr = px[2] as f32 - 128.0;
        let r = y + cb * 0.0 + cr * 1.402;
        let g = y + cb * m1 + cr * m2;
        let b = y + cb * 1.772 + cr * 0.0;
        for (o, x) in px.iter_mut().zip([r, g, b]) {
            *o = (x + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Errors unless `px` holds exactly frames × rows × columns × channels samples, so no LUT
/// silently skips samples past the last frame.
fn check_sample_count(px: &PixelArray) -> Result<()> {
    let want = px.frames * px.rows * px.columns * px.channels;
    if px.samples.len() != want {
        return Err(Error::InvalidParam {
            name: "px",
            reason: format!(
                "{} samples for {} frames of {} x {} x {} channels ({want})",
                px.samples.len(),
                px.frames,
                px.rows,
                px.columns,
                px.channels
            ),
        });
    }
    Ok(())
}

/// Where the Modality LUT comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LutScope {
    /// The top-level Modality LUT Sequence or Rescale Slope / Intercept only
    /// (pydicom's `apply_modality_lut`).
    DataSet,
    /// Per-frame and shared functional groups (Pixel Value Transformation Sequence) of
    /// enhanced multi-frame objects first, the top level where they say nothing.
    Frames,
}

/// One frame's (or the whole object's) modality transform.
#[derive(Clone, Debug, PartialEq)]
enum ModalityTransform {
    Identity,
    Rescale {
        slope: f64,
        intercept: f64,
    },
    Table {
        first: i64,
        bits: u16,
        data: Vec<u16>,
    },
}

fn sequence_item(obj: &InMemDicomObject, tag: Tag, index: usize) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.get(index)
}

fn transform_in(obj: &InMemDicomObject, path: &Path) -> Result<Option<ModalityTransform>> {
    if let Some(item) = sequence_item(obj, tags::MODALITY_LUT_SEQUENCE, 0) {
        return lut_table(item, path).map(Some);
    }
    let slope = opt_floats(obj, path, tags::RESCALE_SLOPE, "RescaleSlope")?;
    let intercept = opt_floats(obj, path, tags::RESCALE_INTERCEPT, "RescaleIntercept")?;
    if slope.is_none() && intercept.is_none() {
        return Ok(None);
    }
    let first = |v: Option<Vec<f64>>, d: f64| v.and_then(|v| v.first().copied()).unwrap_or(d);
    Ok(Some(ModalityTransform::Rescale {
        slope: first(slope, 1.0),
        intercept: first(intercept, 0.0),
    }))
}

fn lut_table(item: &InMemDicomObject, path: &Path) -> Result<ModalityTransform> {
    let bad = |reason: String| Error::InvalidAttribute {
        path: path.to_path_buf(),
        name: "LUTDescriptor",
        reason,
    };
    let desc = item
        .get(tags::LUT_DESCRIPTOR)
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .ok_or_else(|| bad("missing or unreadable".into()))?;
    let [n, first, bits] = desc[..] else {
        return Err(bad(format!("has {} values, not 3", desc.len())));
    };
    // A first-mapped value stored as US may mean a negative one for signed data; an entry
    // count of 0 means 65536 (PS3.3 C.11.1.1.1).
    let n = if n == 0 { 65536 } else { n as usize };
    let data = lut_data(item, tags::LUT_DATA, path, "LUTData")?;
    if data.len() < n {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            what: "LUTData".into(),
            expected: 2 * n as u64,
            actual: 2 * data.len() as u64,
        });
    }
    Ok(ModalityTransform::Table {
        first,
        bits: bits.clamp(1, 16) as u16,
        data: data[..n].to_vec(),
    })
}

/// LUT data as 16-bit entries (US, OW or an 8-bit OB packing is read as its numbers).
fn lut_data(obj: &InMemDicomObject, tag: Tag, path: &Path, name: &'static str) -> Result<Vec<u16>> {
    let e = obj.get(tag).ok_or_else(|| Error::MissingAttribute {
        path: path.to_path_buf(),
        name,
        tag: format!("({:04X},{:04X})", tag.group(), tag.element()),
    })?;
    match e.value().primitive() {
        Some(dicom_core::PrimitiveValue::U16(v)) => Ok(v.to_vec()),
        Some(dicom_core::PrimitiveValue::U8(v)) => Ok(v.iter().map(|&b| b as u16).collect()),
        Some(p) => p
            .to_multi_int::<u16>()
            .map_err(|err| Error::InvalidAttribute {
                path: path.to_path_buf(),
                name,
                reason: err.to_string(),
            }),
        None => Err(Error::InvalidAttribute {
            path: path.to_path_buf(),
            name,
            reason: "is not a value".into(),
        }),
    }
}

/// The transform of frame `f` from the functional groups, if they hold one.
fn frame_transform(
    obj: &InMemDicomObject,
    path: &Path,
    f: usize,
) -> Result<Option<ModalityTransform>> {
    for (group, index) in [
        (tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, f),
        (tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0),
    ] {
        if let Some(item) = sequence_item(obj, group, index) {
            if let Some(pvt) = sequence_item(item, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, 0) {
                if let Some(t) = transform_in(pvt, path)? {
                    return Ok(Some(t));
                }
            }
        }
    }
    Ok(None)
}

impl DicomFile {
    /// Applies the Modality LUT to decoded pixels. As pydicom: a LUT table gives uint8 or
    /// uint16 (by the descriptor's bit depth), a rescale gives float64, and no transform
    /// returns the samples unchanged. Colour images are returned unchanged.
    pub fn modality_lut(&self, px: &PixelArray, scope: LutScope) -> Result<Samples> {
        check_sample_count(px)?;
        if px.channels != 1 || px.photometric == "PALETTE COLOR" {
            return Ok(px.samples.clone());
        }
        let top = transform_in(&self.obj, &self.path)?;
        let mut per_frame = Vec::with_capacity(px.frames);
        for f in 0..px.frames {
            let t = match scope {
                LutScope::Frames => {
                    frame_transform(&self.obj, &self.path, f)?.or_else(|| top.clone())
                }
                LutScope::DataSet => top.clone(),
            };
            per_frame.push(t.unwrap_or(ModalityTransform::Identity));
        }
        if per_frame.iter().all(|t| *t == ModalityTransform::Identity) {
            return Ok(px.samples.clone());
        }
        let frame_len = px.rows * px.columns;
        let tables = per_frame
            .iter()
            .all(|t| matches!(t, ModalityTransform::Table { .. }));
        if tables {
            let wide = per_frame
                .iter()
                .any(|t| matches!(t, ModalityTransform::Table { bits, .. } if *bits > 8));
            let mut out = Vec::with_capacity(px.samples.len());
            for i in 0..px.samples.len() {
                let x = px.samples.get_f64(i).unwrap_or(0.0);
                if let Some(ModalityTransform::Table { first, data, .. }) =
                    per_frame.get(i / frame_len)
                {
                    let idx = (x - *first as f64).clamp(0.0, (data.len() - 1) as f64) as usize;
                    out.push(data[idx]);
                }
            }
            return Ok(if wide {
                Samples::U16(out)
            } else {
                Samples::U8(out.iter().map(|&v| v as u8).collect())
            });
        }
        let mut out = px.samples.to_f64();
        for (f, chunk) in out.chunks_mut(frame_len).enumerate() {
            match per_frame.get(f) {
                Some(ModalityTransform::Rescale { slope, intercept }) => {
                    chunk.iter_mut().for_each(|x| *x = *x * slope + intercept)
                }
                Some(ModalityTransform::Table { first, data, .. }) => {
                    chunk.iter_mut().for_each(|x| {
                        *x = data[(*x - *first as f64).clamp(0.0, (data.len() - 1) as f64) as usize]
                            as f64
                    })
                }
                _ => {}
            }
        }
        Ok(Samples::F64(out))
    }

    /// The windows (center, width) the file recommends, in order.
    pub fn windows(&self) -> Result<Vec<Window>> {
        let c = opt_floats(&self.obj, &self.path, tags::WINDOW_CENTER, "WindowCenter")?
            .unwrap_or_default();
        let w = opt_floats(&self.obj, &self.path, tags::WINDOW_WIDTH, "WindowWidth")?
            .unwrap_or_default();
        let function = match super::attrs::opt_str(&self.obj, tags::VOILUT_FUNCTION).as_deref() {
            Some("LINEAR_EXACT") => WindowFunction::LinearExact,
            Some("SIGMOID") => WindowFunction::Sigmoid,
            _ => WindowFunction::Linear,
        };
        if c.len() != w.len() {
            return Err(Error::InvalidAttribute {
                path: self.path.clone(),
                name: "WindowWidth",
                reason: format!(
                    "{} widths for {} WindowCenter values: each window needs both",
                    w.len(),
                    c.len()
                ),
            });
        }
        Ok(c.iter()
            .zip(&w)
            .map(|(&center, &width)| Window {
                center,
                width,
                function,
            })
            .collect())
    }

    /// Palette colour -> RGB through the Red / Green / Blue Palette Color LUTs (PS3.3
    /// C.7.6.3.1.5): uint8 when the LUTs hold 8-bit entries, else uint16. Segmented LUTs are
    /// refused with an error.
    pub fn palette_to_rgb(&self, px: &PixelArray) -> Result<PixelArray> {
        let path = &self.path;
        check_sample_count(px)?;
        if px.channels != 1 {
            return Err(Error::InvalidParam {
                name: "px",
                reason: format!(
                    "{} samples per pixel: palette colour indexes one sample per pixel",
                    px.channels
                ),
            });
        }
        let mut luts = Vec::new();
        for (desc_tag, data_tag, name) in [
            (
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                "RedPaletteColorLookupTableData",
            ),
            (
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                "GreenPaletteColorLookupTableData",
            ),
            (
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
                "BluePaletteColorLookupTableData",
            ),
        ] {
            let desc = self
                .obj
                .get(desc_tag)
                .and_then(|e| e.to_multi_int::<i64>().ok())
                .filter(|d| d.len() == 3)
                .ok_or_else(|| Error::InvalidAttribute {
                    path: path.to_path_buf(),
                    name: "PaletteColorLookupTableDescriptor",
                    reason: "missing or not three values".into(),
                })?;
            if self.obj.get(data_tag).is_none() {
                return Err(Error::UnsupportedTransferSyntax {
                    path: path.to_path_buf(),
                    uid: self.transfer_syntax_uid().into(),
                    name: "segmented palette colour LUTs are not supported".into(),
                });
            }
            let n = if desc[0] == 0 {
                65536
            } else {
                desc[0] as usize
            };
            let bits = desc[2];
            let mut data = lut_data(&self.obj, data_tag, path, name)?;
            if bits == 8 && data.len() * 2 >= n && data.len() < n {
                // 8-bit entries packed two per 16-bit word (OW).
                data = data.iter().flat_map(|w| [w & 0xFF, w >> 8]).collect();
            }
            if data.len() < n {
                return Err(Error::Truncated {
                    path: path.to_path_buf(),
                    what: name.into(),
                    expected: n as u64 * 2,
                    actual: data.len() as u64 * 2,
                });
            }
            data.truncate(n);
            luts.push((desc[1], bits, data));
        }
        let eight = luts.iter().all(|(_, bits, _)| *bits == 8);
        let mut out = Vec::with_capacity(px.samples.len() * 3);
        for i in 0..px.samples.len() {
            let x = px.samples.get_f64(i).unwrap_or(0.0);
            for (first, _, data) in &luts {
                let idx = (x - *first as f64).clamp(0.0, (data.len() - 1) as f64) as usize;
                out.push(data[idx]);
            }
        }
        let samples = if eight {
            Samples::U8(out.iter().map(|&v| v as u8).collect())
        } else {
            Samples::U16(out)
        };
        Ok(PixelArray {
            samples,
            channels: 3,
            photometric: "RGB".into(),
            ..px.clone()
        })
    }
}

/// How a VOI window maps values (PS3.3 C.11.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowFunction {
    /// The standard's LINEAR (the default).
    Linear,
    /// LINEAR_EXACT.
    LinearExact,
    /// SIGMOID.
    Sigmoid,
}

/// A VOI window: values mapped to `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Window Center.
    pub center: f64,
    /// Window Width.
    pub width: f64,
    /// The mapping.
    pub function: WindowFunction,
}

impl Window {
    /// Maps one value to `[0, 1]` with the standard's formulas for an output range of
    /// 0..1 (y_min = 0, y_max = 1).
    pub fn apply(&self, x: f64) -> f64 {
        let (c, w) = (self.center, self.width);
        match self.function {
            WindowFunction::Linear => {
                let w1 = (w - 1.0).max(0.0);
                if x <= c - 0.5 - w1 / 2.0 {
                    0.0
                } else if x > c - 0.5 + w1 / 2.0 || w1 == 0.0 {
                    1.0
                } else {
                    ((x - (c - 0.5)) / w1 + 0.5).clamp(0.0, 1.0)
                }
            }
            WindowFunction::LinearExact => {
                if x <= c - w / 2.0 {
                    0.0
                } else if x > c + w / 2.0 {
                    1.0
                } else {
                    ((x - c) / w + 0.5).clamp(0.0, 1.0)
                }
            }
            WindowFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        }
    }

    /// Checks the window is usable: LINEAR needs width >= 1, the others width > 0.
    pub fn validate(&self) -> Result<()> {
        let ok = match self.function {
            WindowFunction::Linear => self.width >= 1.0,
            _ => self.width > 0.0,
        };
        if !ok || !self.center.is_finite() || !self.width.is_finite() {
            return Err(Error::InvalidParam {
                name: "window",
                reason: format!(
                    "center {} width {} is not a valid {:?} window",
                    self.center, self.width, self.function
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(center: f64, width: f64, function: WindowFunction) -> Window {
        Window {
            center,
            width,
            function,
        }
    }

    /// PS3.3 C.11.2.1.2.1: LINEAR maps x <= c - 0.5 - (w-1)/2 to the bottom,
    /// x > c - 0.5 + (w-1)/2 to the top, and linearly between.
    #[test]
    fn linear_window_matches_the_standard() {
        let win = w(40.0, 400.0, WindowFunction::Linear);
        let (lo, hi) = (40.0 - 0.5 - 399.0 / 2.0, 40.0 - 0.5 + 399.0 / 2.0);
        assert_eq!(win.apply(lo), 0.0);
        assert_eq!(win.apply(lo - 1000.0), 0.0);
        assert_eq!(win.apply(hi + 1e-9), 1.0);
        for x in [-100.0, 0.0, 39.5, 100.0, 200.0] {
            let want = (x - 39.5) / 399.0 + 0.5;
            assert!((win.apply(x) - want).abs() < 1e-15, "x = {x}");
        }
        // Width 1 is a threshold at c - 0.5.
        let t = w(10.0, 1.0, WindowFunction::Linear);
        assert_eq!((t.apply(9.5), t.apply(9.6)), (0.0, 1.0));
    }

    /// C.11.2.1.3.2 LINEAR_EXACT and C.11.2.1.3.1 SIGMOID.
    #[test]
    fn exact_and_sigmoid_windows_match_the_standard() {
        let e = w(0.0, 10.0, WindowFunction::LinearExact);
        assert_eq!((e.apply(-5.0), e.apply(5.0 + 1e-9)), (0.0, 1.0));
        assert!((e.apply(2.5) - 0.75).abs() < 1e-15);
        let s = w(100.0, 50.0, WindowFunction::Sigmoid);
        assert!((s.apply(100.0) - 0.5).abs() < 1e-15);
        let x = 120.0;
        assert!((s.apply(x) - 1.0 / (1.0 + (-4.0 * (x - 100.0) / 50.0f64).exp())).abs() < 1e-15);
    }

    #[test]
    fn unusable_windows_are_refused() {
        assert!(w(0.0, 0.5, WindowFunction::Linear).validate().is_err());
        assert!(w(0.0, 0.0, WindowFunction::Sigmoid).validate().is_err());
        assert!(w(f64::NAN, 10.0, WindowFunction::LinearExact)
            .validate()
            .is_err());
        assert!(w(40.0, 400.0, WindowFunction::Linear).validate().is_ok());
    }
}
