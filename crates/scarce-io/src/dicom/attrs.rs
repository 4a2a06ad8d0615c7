//! Reading attributes from a data set with errors that name the attribute and the file.

use std::path::Path;

use dicom_core::dictionary::DataDictionary;
use dicom_core::header::HasLength;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;

use crate::error::{Error, Result};

/// Whether samples are unsigned or signed integers, or IEEE floats (Float / Double Float
/// Pixel Data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelKind {
    /// PixelRepresentation 0.
    Unsigned,
    /// PixelRepresentation 1.
    Signed,
    /// Float Pixel Data (7FE0,0008) or Double Float Pixel Data (7FE0,0009).
    Float,
}

/// The Image Pixel module attributes that decide how pixel data is laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageAttributes {
    /// Rows (0028,0010).
    pub rows: u32,
    /// Columns (0028,0011).
    pub columns: u32,
    /// Number of Frames (0028,0008), 1 when absent.
    pub frames: u32,
    /// Samples per Pixel (0028,0002).
    pub samples_per_pixel: u16,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: u16,
    /// Bits Stored (0028,0101); equals BitsAllocated for float data.
    pub bits_stored: u16,
    /// Unsigned, signed or float samples.
    pub kind: PixelKind,
    /// Planar Configuration (0028,0006): 1 when colour planes are stored one after another.
    pub planar: bool,
    /// Photometric Interpretation (0028,0004), trimmed.
    pub photometric: String,
    /// The tag that holds the pixel data.
    pub pixel_tag: Tag,
}

impl ImageAttributes {
    /// Total number of samples over all frames.
    pub fn samples_total(&self) -> u64 {
        self.frames as u64 * self.rows as u64 * self.columns as u64 * self.samples_per_pixel as u64
    }
}

fn tag_text(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.group(), tag.element())
}

/// The value of an attribute, re-read through the standard dictionary when it was stored
/// with VR UN (as explicit-VR files converted from implicit VR often do): the bytes are
/// then little-endian binary numbers or text by the dictionary's VR.
pub(crate) fn value_of(obj: &InMemDicomObject, tag: Tag) -> Option<PrimitiveValue> {
    let e = obj.get(tag)?;
    let p = e.value().primitive()?;
    if e.vr() != VR::UN {
        return Some(p.clone());
    }
    let bytes = p.to_bytes();
    let vr = StandardDataDictionary.by_tag(tag)?.vr.relaxed();
    let le16 = |c: &[u8]| [c[0], c[1]];
    let le32 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    Some(match vr {
        VR::US => PrimitiveValue::U16(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes(le16(c)))
                .collect(),
        ),
        VR::SS => PrimitiveValue::I16(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(le16(c)))
                .collect(),
        ),
        VR::UL => PrimitiveValue::U32(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(le32(c)))
                .collect(),
        ),
        VR::SL => PrimitiveValue::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(le32(c)))
                .collect(),
        ),
        VR::FL => PrimitiveValue::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(le32(c)))
                .collect(),
        ),
        VR::FD => PrimitiveValue::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        VR::OB | VR::OW | VR::UN | VR::SQ => p.clone(),
        _ => {
            let text = String::from_utf8_lossy(&bytes);
            PrimitiveValue::Strs(
                text.split('\\')
                    .map(|s| s.trim_matches(['\0', ' ']).to_string())
                    .collect(),
            )
        }
    })
}

/// An optional integer attribute; present but unreadable is an error.
pub(crate) fn opt_int(
    obj: &InMemDicomObject,
    path: &Path,
    tag: Tag,
    name: &'static str,
) -> Result<Option<i64>> {
    let Some(v) = value_of(obj, tag) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    v.to_int::<i64>()
        .map(Some)
        .map_err(|err| Error::InvalidAttribute {
            path: path.to_path_buf(),
            name,
            reason: err.to_string(),
        })
}

/// A required integer attribute.
pub(crate) fn req_int(
    obj: &InMemDicomObject,
    path: &Path,
    tag: Tag,
    name: &'static str,
) -> Result<i64> {
    opt_int(obj, path, tag, name)?.ok_or_else(|| Error::MissingAttribute {
        path: path.to_path_buf(),
        name,
        tag: tag_text(tag),
    })
}

/// An optional multi-valued decimal attribute.
pub(crate) fn opt_floats(
    obj: &InMemDicomObject,
    path: &Path,
    tag: Tag,
    name: &'static str,
) -> Result<Option<Vec<f64>>> {
    let Some(v) = value_of(obj, tag) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    v.to_multi_float64()
        .map(Some)
        .map_err(|err| Error::InvalidAttribute {
            path: path.to_path_buf(),
            name,
            reason: err.to_string(),
        })
}

/// An optional text attribute, trimmed; `None` when absent or empty.
pub(crate) fn opt_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = value_of(obj, tag)?;
    let s = v.to_str();
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn in_range(path: &Path, name: &'static str, v: i64, lo: i64, hi: i64) -> Result<i64> {
    if v < lo || v > hi {
        return Err(Error::InvalidAttribute {
            path: path.to_path_buf(),
            name,
            reason: format!("{v} is outside {lo}..={hi}"),
        });
    }
    Ok(v)
}

impl ImageAttributes {
    /// Reads and validates the attributes; `None` when the data set has no pixel data.
    pub fn read(obj: &InMemDicomObject, path: &Path) -> Result<Option<Self>> {
        let pixel_tag = [
            tags::PIXEL_DATA,
            tags::FLOAT_PIXEL_DATA,
            tags::DOUBLE_FLOAT_PIXEL_DATA,
        ]
        .into_iter()
        .find(|t| obj.get(*t).is_some());
        let Some(pixel_tag) = pixel_tag else {
            return Ok(None);
        };
        let rows = in_range(
            path,
            "Rows",
            req_int(obj, path, tags::ROWS, "Rows")?,
            1,
            65535,
        )? as u32;
        let columns = in_range(
            path,
            "Columns",
            req_int(obj, path, tags::COLUMNS, "Columns")?,
            1,
            65535,
        )? as u32;
        let frames = match opt_int(obj, path, tags::NUMBER_OF_FRAMES, "NumberOfFrames")? {
            Some(f) => in_range(path, "NumberOfFrames", f, 1, 1 << 24)? as u32,
            None => 1,
        };
        let samples_per_pixel =
            match opt_int(obj, path, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")? {
                Some(s) => in_range(path, "SamplesPerPixel", s, 1, 4)? as u16,
                None => 1,
            };
        let float = pixel_tag != tags::PIXEL_DATA;
        let bits_allocated = match req_int(obj, path, tags::BITS_ALLOCATED, "BitsAllocated")? {
            b @ (1 | 8 | 16 | 32 | 64) => b as u16,
            b => {
                return Err(Error::InvalidAttribute {
                    path: path.to_path_buf(),
                    name: "BitsAllocated",
                    reason: format!("{b} is not 1, 8, 16, 32 or 64"),
                })
            }
        };
        let bits_stored = if float {
            bits_allocated
        } else {
            let b = opt_int(obj, path, tags::BITS_STORED, "BitsStored")?
                .unwrap_or(bits_allocated as i64);
            in_range(path, "BitsStored", b, 1, bits_allocated as i64)? as u16
        };
        let kind = if float {
            PixelKind::Float
        } else {
            match opt_int(obj, path, tags::PIXEL_REPRESENTATION, "PixelRepresentation")?
                .unwrap_or(0)
            {
                0 => PixelKind::Unsigned,
                1 => PixelKind::Signed,
                p => {
                    return Err(Error::InvalidAttribute {
                        path: path.to_path_buf(),
                        name: "PixelRepresentation",
                        reason: format!("{p} is not 0 or 1"),
                    })
                }
            }
        };
        let planar = samples_per_pixel > 1
            && opt_int(obj, path, tags::PLANAR_CONFIGURATION, "PlanarConfiguration")?.unwrap_or(0)
                == 1;
        let photometric = opt_str(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| {
            if samples_per_pixel == 3 {
                "RGB"
            } else {
                "MONOCHROME2"
            }
            .to_string()
        });
        Ok(Some(ImageAttributes {
            rows,
            columns,
            frames,
            samples_per_pixel,
            bits_allocated,
            bits_stored,
            kind,
            planar,
            photometric,
            pixel_tag,
        }))
    }
}
