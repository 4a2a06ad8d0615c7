//! DICOM files: parse, decode pixel data in every transfer syntax this build has a codec
//! for, and return samples exactly as pydicom's `pixel_array` does (same dtype, same layout:
//! frames, rows, columns, samples per pixel).

mod attrs;
mod codec;
mod frames;
mod geometry;
mod image;
#[cfg(feature = "jpeg-12bit")]
mod jpeg12;
pub mod lut;
mod native;
mod rle;
mod scan;
pub mod series;

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

pub use attrs::{ImageAttributes, PixelKind};
pub use image::ImageOptions;
pub use series::{list_series, load_series, SeriesSummary};

use crate::error::{io_err, Error, Result};
use crate::samples::Samples;

/// Implicit VR Little Endian, the syntax pydicom assumes for a file with no meta group.
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Deflated Explicit VR Little Endian.
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";
/// Explicit VR Big Endian (retired, still found in archives).
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// One parsed DICOM file.
pub struct DicomFile {
    path: PathBuf,
    obj: FileDicomObject<InMemDicomObject>,
    syntax_inferred: bool,
    input_len: u64,
}

impl std::fmt::Debug for DicomFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomFile")
            .field("path", &self.path)
            .field("transfer_syntax", &self.transfer_syntax_uid())
            .finish()
    }
}

/// Decoded pixel samples in pydicom's layout: C order over (frames, rows, columns,
/// samples per pixel), colour interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelArray {
    /// The samples, in the dtype pydicom gives.
    pub samples: Samples,
    /// Number of frames.
    pub frames: usize,
    /// Rows per frame.
    pub rows: usize,
    /// Columns per frame.
    pub columns: usize,
    /// Samples per pixel (1 grey or palette, 3 colour).
    pub channels: usize,
    /// Photometric interpretation of `samples` (after the codec's colour conversion:
    /// decoded JPEG / JPEG 2000 colour is RGB).
    pub photometric: String,
}

impl PixelArray {
    /// The shape pydicom reports: the frame axis only when there is more than one frame,
    /// the sample axis only when there is more than one sample per pixel.
    pub fn numpy_shape(&self) -> Vec<usize> {
        let mut s = Vec::with_capacity(4);
        if self.frames > 1 {
            s.push(self.frames);
        }
        s.extend([self.rows, self.columns]);
        if self.channels > 1 {
            s.push(self.channels);
        }
        s
    }
}

impl DicomFile {
    /// Reads and parses a file. Pixel data is decoded later, by [`DicomFile::pixels`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses a file already in memory; `path` is used in error messages only.
    ///
    /// A file with a preamble and meta group is read as the meta group says. A file with
    /// neither is read as Implicit VR Little Endian, as pydicom does with `force=True`;
    /// [`DicomFile::syntax_inferred`] then says so.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let input_len = bytes.len() as u64;
        let refuse = |reason: String| Error::DicomParse {
            path: path.clone(),
            reason,
        };
        // Structure first: every element length is checked against the bytes present before
        // dicom-object sizes a buffer from it (see `scan`).
        let start = if bytes.get(128..132) == Some(b"DICM") {
            132
        } else {
            0
        };
        let (meta_ts, data_start) = scan_meta_group(bytes, start)
            .ok_or_else(|| refuse("file meta group is cut short".into()))?;
        let rest = &bytes[data_start..];
        let plain = match meta_ts.as_deref() {
            Some(DEFLATED_LE) => std::borrow::Cow::Owned(scan::inflate(rest).map_err(refuse)?),
            _ => std::borrow::Cow::Borrowed(rest),
        };
        let explicit_vr = plain
            .get(4..6)
            .is_some_and(|vr| vr.iter().all(u8::is_ascii_uppercase));
        let mut candidates: Vec<&str> = meta_ts.as_deref().into_iter().collect();
        candidates.extend(if explicit_vr {
            [EXPLICIT_VR_LE, IMPLICIT_VR_LE]
        } else {
            [IMPLICIT_VR_LE, EXPLICIT_VR_LE]
        });
        let mut first_problem = None;
        let mut sound = Vec::new();
        for uid in candidates {
            match scan::check(&plain, scan::Encoding::of(uid)) {
                Ok(()) => sound.push(uid),
                Err(e) => {
                    first_problem.get_or_insert(e);
                }
            }
        }
        if sound.is_empty() {
            return Err(refuse(
                first_problem.unwrap_or_else(|| "no data set".into()),
            ));
        }
        if meta_ts.is_some() && sound.first().copied() == meta_ts.as_deref() {
            if let Ok(obj) = OpenFileOptions::new()
                .read_preamble(ReadPreamble::Auto)
                .from_reader(bytes)
            {
                return Ok(DicomFile {
                    path,
                    obj,
                    syntax_inferred: false,
                    input_len,
                });
            }
        }
        let (obj, inferred) = Self::read_lenient(&plain, meta_ts.as_deref(), &sound)
            .ok_or_else(|| refuse("no transfer syntax parses this data set".into()))?;
        Ok(DicomFile {
            path,
            obj,
            syntax_inferred: inferred,
            input_len,
        })
    }

    /// What pydicom's `force=True` reads: a meta group without preamble or group length, a
    /// data set whose VR mode contradicts the meta group's syntax (implicit VR under a JPEG
    /// syntax, say), or a bare data set with no meta group at all. `candidates` are the
    /// encodings whose structure checked out, best first. The meta group's syntax, when
    /// there is one, still says how pixel data is encoded. Returns the object and whether
    /// the syntax had to be inferred.
    fn read_lenient(
        rest: &[u8],
        meta_ts: Option<&str>,
        candidates: &[&str],
    ) -> Option<(FileDicomObject<InMemDicomObject>, bool)> {
        // A data set starts at a low group; refusing anything else keeps random bytes from
        // "parsing".
        let group = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]);
        if !(0x0004..=0x0010).contains(&group) {
            return None;
        }
        for &uid in candidates {
            // A deflated data set has been inflated already: parse it as explicit VR LE.
            let parse_uid = if uid == DEFLATED_LE {
                EXPLICIT_VR_LE
            } else {
                uid
            };
            let Some(ts) = TransferSyntaxRegistry.get(parse_uid) else {
                continue;
            };
            let Ok(obj) = InMemDicomObject::read_dataset_with_ts(rest, ts) else {
                continue;
            };
            let file_ts = meta_ts.unwrap_or(uid);
            let sop_class = attrs::opt_str(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
            let meta = FileMetaTableBuilder::new()
                .transfer_syntax(if file_ts == DEFLATED_LE {
                    EXPLICIT_VR_LE
                } else {
                    file_ts
                })
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid("");
            if let Ok(file) = obj.with_meta(meta) {
                return Some((file, meta_ts.is_none()));
            }
        }
        None
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The transfer syntax UID (from the meta group, or the inferred one).
    pub fn transfer_syntax_uid(&self) -> &str {
        self.obj
            .meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
    }

    /// The transfer syntax's name, or `"unknown"`.
    pub fn transfer_syntax_name(&self) -> String {
        TransferSyntaxRegistry
            .get(self.transfer_syntax_uid())
            .map(|ts| ts.name().to_string())
            .unwrap_or_else(|| "unknown".to_string())
    }

    /// True when the file had no meta group and its syntax was inferred.
    pub fn syntax_inferred(&self) -> bool {
        self.syntax_inferred
    }

    /// The parsed data set, for attributes this crate does not interpret.
    pub fn dataset(&self) -> &InMemDicomObject {
        &self.obj
    }

    /// The Image Pixel attributes; `None` when the file has no pixel data.
    pub fn attributes(&self) -> Result<Option<ImageAttributes>> {
        ImageAttributes::read(&self.obj, &self.path)
    }

    fn big_endian(&self) -> bool {
        self.transfer_syntax_uid() == EXPLICIT_VR_BE
    }

    /// Decodes all frames to samples as pydicom's `pixel_array` returns them: unused high
    /// bits cleared (unsigned) or sign-extended (signed), one-bit data unpacked to 0/1,
    /// planar colour interleaved, and YBR_FULL / YBR_FULL_422 converted to RGB.
    pub fn pixels(&self) -> Result<PixelArray> {
        let a = self.attributes()?.ok_or_else(|| Error::MissingAttribute {
            path: self.path.clone(),
            name: "PixelData",
            tag: "(7FE0,0010)".into(),
        })?;
        let uid = self.transfer_syntax_uid().to_string();
        let elem = self
            .obj
            .get(a.pixel_tag)
            .ok_or_else(|| Error::MissingAttribute {
                path: self.path.clone(),
                name: "PixelData",
                tag: "(7FE0,0010)".into(),
            })?;
        let mut photometric = a.photometric.clone();
        let (mut samples, planar) = match elem.value() {
            dicom_core::value::Value::Primitive(p) => {
                // 8-bit samples in an OW value are bytes in little-endian word order whatever
                // the syntax (PS3.5 8.2), so only wider samples follow the file's order.
                let big_endian = self.big_endian() && a.bits_allocated > 8;
                let bytes = file_order_bytes(p, big_endian);
                let s = native::unpack(&a, &bytes, big_endian).map_err(|e| self.native_error(e))?;
                // 4:2:2 data is interleaved by definition (PS3.3 C.7.6.3.1.3).
                (s, a.planar && !native::subsampled_422(&a))
            }
            dicom_core::value::Value::PixelSequence(_) => {
                let s = codec::decode(self, &a, &uid)?;
                if a.samples_per_pixel == 3 {
                    photometric = "RGB".into();
                }
                (s, false)
            }
            dicom_core::value::Value::Sequence(_) => {
                return Err(Error::InvalidAttribute {
                    path: self.path.clone(),
                    name: "PixelData",
                    reason: "is a sequence of items, not pixel data".into(),
                })
            }
        };
        let (frames, rows, columns, channels) = (
            a.frames as usize,
            a.rows as usize,
            a.columns as usize,
            a.samples_per_pixel as usize,
        );
        if planar {
            native::interleave_planes(&mut samples, frames, rows * columns, channels);
        }
        if a.bits_allocated > 1 {
            native::correct_unused_bits(&mut samples, a.bits_stored);
        }
        if channels == 3 && (photometric == "YBR_FULL" || photometric == "YBR_FULL_422") {
            lut::ybr_full_to_rgb(&mut samples);
            photometric = "RGB".into();
        }
        Ok(PixelArray {
            samples,
            frames,
            rows,
            columns,
            channels,
            photometric,
        })
    }

    fn native_error(&self, e: native::NativeError) -> Error {
        match e {
            native::NativeError::Short { expected, actual } => Error::Truncated {
                path: self.path.clone(),
                what: "native pixel data".into(),
                expected,
                actual,
            },
            native::NativeError::Unsupported(reason) => Error::InvalidAttribute {
                path: self.path.clone(),
                name: "BitsAllocated",
                reason,
            },
        }
    }

    /// Size of the file or buffer this was parsed from.
    pub(crate) fn input_len(&self) -> u64 {
        self.input_len
    }
}

/// The bytes of a native pixel data value in the file's byte order. dicom-object decodes
/// OW / OL / OF / OD values to numbers; writing them back in the file's order gives the
/// byte stream whatever the element's VR, which is how pydicom sees it.
fn file_order_bytes(
    p: &dicom_core::PrimitiveValue,
    big_endian: bool,
) -> std::borrow::Cow<'_, [u8]> {
    use dicom_core::PrimitiveValue as P;
    macro_rules! enc {
        ($v:expr) => {{
            let mut out = Vec::with_capacity(std::mem::size_of_val(&$v[..]));
            for x in $v.iter() {
                out.extend_from_slice(&if big_endian {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            }
            std::borrow::Cow::Owned(out)
        }};
    }
    match p {
        P::U8(v) => std::borrow::Cow::Borrowed(&v[..]),
        P::I16(v) => enc!(v),
        P::U16(v) => enc!(v),
        P::I32(v) => enc!(v),
        P::U32(v) => enc!(v),
        P::I64(v) => enc!(v),
        P::U64(v) => enc!(v),
        P::F32(v) => enc!(v),
        P::F64(v) => enc!(v),
        other => other.to_bytes(),
    }
}

/// Walks a file meta group (explicit VR little endian, group 0002) from `start` without
/// trusting its group length: returns the transfer syntax it names, if any, and where the
/// data set begins.
fn scan_meta_group(bytes: &[u8], start: usize) -> Option<(Option<String>, usize)> {
    let mut pos = start;
    let mut ts = None;
    loop {
        let Some(head) = bytes.get(pos..pos + 8) else {
            return Some((ts, pos));
        };
        if u16::from_le_bytes([head[0], head[1]]) != 0x0002 {
            return Some((ts, pos));
        }
        let element = u16::from_le_bytes([head[2], head[3]]);
        let long = !scan::short_vr(&head[4..6]);
        let (len, header) = if long {
            let l = bytes.get(pos + 8..pos + 12)?;
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, 12)
        } else {
            (u16::from_le_bytes([head[6], head[7]]) as usize, 8)
        };
        let value = bytes.get(pos + header..(pos + header).checked_add(len)?)?;
        if element == 0x0010 {
            ts = Some(
                String::from_utf8_lossy(value)
                    .trim_matches(['\0', ' '])
                    .to_string(),
            );
        }
        pos += header + len;
    }
}
