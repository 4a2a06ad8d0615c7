//! Encapsulated pixel data: RLE (ours), JPEG (jpeg-decoder; libjpeg-turbo for 12-bit DCT
//! frames), JPEG 2000 and HTJ2K (OpenJPEG
//! through jpeg2k), JPEG-LS and deflated frames (dicom-rs's adapters, CharLS for JPEG-LS).
//! With the guards a hostile file needs: the codestream's own dimensions are checked against
//! the data set before a codec allocates for them, the output size against the bytes
//! present, every frame must end with its end marker, and a codec panic becomes an error.

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_encoding::adapters::PixelDataObject;
use dicom_encoding::transfer_syntax::Codec;
use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::attrs::{ImageAttributes, PixelKind};
use super::DicomFile;
use crate::error::{Error, Result};
use crate::samples::Samples;

/// The most decoded bytes one encoded byte may justify. Lossless codecs on flat images reach
/// a few hundred to one; RLE of a constant frame at most 64:1 per segment run.
const MAX_EXPANSION: u64 = 4096;

const RLE: &str = "1.2.840.10008.1.2.5";
const DEFLATED_FRAMES: &str = "1.2.840.10008.1.2.8.1";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.57";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";

const J2K_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
const J2K: &str = "1.2.840.10008.1.2.4.91";
const J2K_PART2_LOSSLESS: &str = "1.2.840.10008.1.2.4.92";
const J2K_PART2: &str = "1.2.840.10008.1.2.4.93";
const HTJ2K_LOSSLESS: &str = "1.2.840.10008.1.2.4.201";
const HTJ2K_RPCL: &str = "1.2.840.10008.1.2.4.202";
const HTJ2K: &str = "1.2.840.10008.1.2.4.203";
const JPEG_LS_PREFIX: &str = "1.2.840.10008.1.2.4.8";

/// One JPEG 2000 / HTJ2K frame through OpenJPEG (via jpeg2k, multithreaded): every component must match the
/// data set's rows and columns; samples are written little-endian at BitsAllocated width
/// (one byte for one-bit data), components interleaved.
fn decode_j2k(
    data: &[u8],
    a: &ImageAttributes,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let image = jpeg2k::Image::from_bytes(data).map_err(|e| e.to_string())?;
    let components = image.components();
    let channels = a.samples_per_pixel as usize;
    if components.len() < channels {
        return Err(format!(
            "codestream has {} components, the data set says {channels}",
            components.len()
        ));
    }
    let pixels = a.rows as usize * a.columns as usize;
    let width = (a.bits_allocated as usize).div_ceil(8);
    let base = out.len();
    out.resize(base + pixels * channels * width, 0);
    for (c, comp) in components.iter().take(channels).enumerate() {
        if comp.width() != a.columns || comp.height() != a.rows || comp.data().len() != pixels {
            return Err(format!(
                "component {c} is {}x{}, the data set says {}x{}",
                comp.width(),
                comp.height(),
                a.columns,
                a.rows
            ));
        }
        for (p, v) in comp.data().iter().enumerate() {
            let at = base + (p * channels + c) * width;
            out[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        }
    }
    Ok(())
}

/// True when the first scan of a JPEG-LS stream codes one component only, i.e. the
/// components are in separate scans (ILV 0).
fn jpegls_separate_planes(data: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            return false;
        }
        let marker = data[i + 1];
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if marker == 0xDA {
            return data.get(i + 4) == Some(&1);
        }
        i += 2 + len;
    }
    false
}

/// Planar frames (all of channel 0, then 1, ...) -> interleaved, in place.
fn planes_to_interleaved(out: &mut [u8], a: &ImageAttributes) {
    let channels = a.samples_per_pixel as usize;
    let width = (a.bits_allocated as usize).div_ceil(8);
    let pixels = a.rows as usize * a.columns as usize;
    let frame_len = pixels * channels * width;
    for frame in out.chunks_exact_mut(frame_len) {
        let planar = frame.to_vec();
        for c in 0..channels {
            for p in 0..pixels {
                let src = (c * pixels + p) * width;
                let dst = (p * channels + c) * width;
                frame[dst..dst + width].copy_from_slice(&planar[src..src + width]);
            }
        }
    }
}

fn fragments_of(file: &DicomFile) -> (Vec<Vec<u8>>, Vec<u32>) {
    match file.obj.raw_pixel_data() {
        Some(raw) => (raw.fragments.into_vec(), raw.offset_table.into_vec()),
        None => (Vec::new(), Vec::new()),
    }
}

/// True when `data` is a JPEG stream whose frame header (SOF1 extended or SOF2 progressive
/// DCT) declares 12-bit samples: the streams libjpeg-turbo decodes
/// (feature `jpeg-12bit`).
pub(crate) fn is_12bit_dct(data: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            return false;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if matches!(marker, 0xC1 | 0xC2) {
            return data[i + 4] == 12;
        }
        if marker == 0xDA
            || (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
        {
            return false; // another frame type, or a scan before any frame header
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        i += 2 + len;
    }
    false
}

/// One JPEG frame through jpeg-decoder, or libjpeg-turbo for a 12-bit DCT frame (feature
/// `jpeg-12bit`). Whether three components are converted from YCbCr follows the data
/// set's Photometric Interpretation, not the JPEG markers (as GDCM does): RGB is kept as
/// stored, YBR_* is converted.
fn decode_jpeg(
    data: &[u8],
    a: &ImageAttributes,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    if is_12bit_dct(data) {
        if a.bits_allocated != 16 {
            return Err(format!(
                "12-bit JPEG frame, but BitsAllocated is {}",
                a.bits_allocated
            ));
        }
        #[cfg(feature = "jpeg-12bit")]
        return super::jpeg12::decode(data, a.rows, a.columns, out);
        // `decode` refuses such files before any frame is decoded; this is the backstop.
        #[cfg(not(feature = "jpeg-12bit"))]
        return Err("12-bit JPEG needs scarce-io's `jpeg-12bit` feature".into());
    }
    let mut decoder = jpeg_decoder::Decoder::new(data);
    // jpeg-decoder's `RGB` is the identity that interleaves; its `None` leaves lines planar.
    let transform = match (a.samples_per_pixel, a.photometric.as_str()) {
        (1, _) => jpeg_decoder::ColorTransform::Grayscale,
        (_, "RGB") => jpeg_decoder::ColorTransform::RGB,
        _ => jpeg_decoder::ColorTransform::YCbCr,
    };
    decoder.set_color_transform(transform);
    let frame_bytes = a.rows as usize
        * a.columns as usize
        * a.samples_per_pixel as usize
        * (a.bits_allocated as usize).div_ceil(8);
    decoder.set_max_decoding_buffer_size(frame_bytes.max(1));
    decoder.read_info().map_err(|e| e.to_string())?;
    if let Some(info) = decoder.info() {
        if info.width as u32 != a.columns || info.height as u32 != a.rows {
            return Err(format!(
                "JPEG frame is {}x{}, the data set says {}x{}",
                info.width, info.height, a.columns, a.rows
            ));
        }
    }
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    out.extend_from_slice(&pixels);
    Ok(())
}

pub(crate) fn decode(file: &DicomFile, a: &ImageAttributes, uid: &str) -> Result<Samples> {
    let path = file.path().to_path_buf();
    let name = file.transfer_syntax_name();
    let fail = |reason: String| Error::Decode {
        path: path.clone(),
        uid: uid.to_string(),
        name: name.clone(),
        reason,
    };
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| Error::UnsupportedTransferSyntax {
            path: path.clone(),
            uid: uid.to_string(),
            name: "unknown".into(),
        })?;
    // Our own decoders cover RLE, the JPEG processes and JPEG 2000 / HTJ2K; the registry's
    // adapters the rest (JPEG-LS through CharLS, deflated frames).
    let own = matches!(
        uid,
        RLE | JPEG_BASELINE
            | JPEG_EXTENDED
            | JPEG_LOSSLESS
            | JPEG_LOSSLESS_SV1
            | J2K_LOSSLESS
            | J2K
            | J2K_PART2_LOSSLESS
            | J2K_PART2
            | HTJ2K_LOSSLESS
            | HTJ2K_RPCL
            | HTJ2K
    );
    let not_compiled = |feature: &'static str| Error::CodecNotCompiled {
        path: path.clone(),
        uid: uid.to_string(),
        name: name.clone(),
        feature,
    };
    if uid.starts_with(JPEG_LS_PREFIX) && !cfg!(feature = "jpeg-ls") {
        return Err(not_compiled("jpeg-ls"));
    }
    let reader = match ts.codec() {
        Codec::EncapsulatedPixelData(Some(reader), _) => Some(reader),
        _ if own => None,
        _ => {
            return Err(Error::UnsupportedTransferSyntax {
                path: path.clone(),
                uid: uid.to_string(),
                name: name.clone(),
            })
        }
    };
    let bytes_per_sample = (a.bits_allocated as u64).div_ceil(8);
    let declared = a.samples_total() * bytes_per_sample;
    // The fragments are copied out of the data set once and split into frames once; every
    // check and our own decoders work on these frames.
    let (fragments, table) = fragments_of(file);
    let encoded: u64 = fragments.iter().map(|f| f.len() as u64).sum();
    let available = encoded * MAX_EXPANSION + (1 << 20);
    if declared > available || declared > file.input_len() * MAX_EXPANSION + (1 << 20) {
        return Err(Error::TooLarge {
            path: path.clone(),
            declared,
            available,
        });
    }
    let codestreams = uid != RLE && uid != DEFLATED_FRAMES;
    let frames = if uid == DEFLATED_FRAMES {
        Vec::new()
    } else {
        super::frames::split(&fragments, &table, a.frames as usize, codestreams)
            .ok_or_else(|| fail("cannot tell the frames apart".into()))?
    };
    if codestreams {
        for (i, f) in frames.iter().enumerate() {
            if let Some((w, h)) = codestream_size(f) {
                if w > a.columns || h > a.rows {
                    return Err(fail(format!(
                        "frame {i}'s codestream declares {w}x{h} but the data set says {}x{}",
                        a.columns, a.rows
                    )));
                }
            }
            // A codestream must end with its end marker (JPEG EOI / JPEG 2000 EOC, both
            // FFD9, maybe followed by padding): a cut stream would otherwise come back
            // partly decoded from some codecs, and CharLS loops on it.
            let end = f.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            let t = &f[..end];
            let padded = t.len() >= 3 && t[t.len() - 3..t.len() - 1] == [0xFF, 0xD9];
            if !(t.ends_with(&[0xFF, 0xD9]) || padded) {
                return Err(fail(format!(
                    "frame {i}'s codestream does not end with an end-of-image marker (truncated)"
                )));
            }
        }
    }
    let jpeg = matches!(
        uid,
        JPEG_BASELINE | JPEG_EXTENDED | JPEG_LOSSLESS | JPEG_LOSSLESS_SV1
    );
    if jpeg && !cfg!(feature = "jpeg-12bit") && frames.iter().any(|f| is_12bit_dct(f)) {
        return Err(not_compiled("jpeg-12bit"));
    }
    let mut out = Vec::new();
    let decoded = catch_unwind(AssertUnwindSafe(|| -> std::result::Result<(), String> {
        match uid {
            RLE => {
                let pixels = a.rows as usize * a.columns as usize;
                for frame in &frames {
                    if a.bits_allocated == 1 {
                        // One segment of packed bits per frame, each frame byte-aligned.
                        let mut packed = Vec::new();
                        super::rle::decode_frame(frame, pixels.div_ceil(8), 1, 1, &mut packed)?;
                        out.extend((0..pixels).map(|i| (packed[i / 8] >> (i % 8)) & 1));
                    } else {
                        super::rle::decode_frame(
                            frame,
                            pixels,
                            a.samples_per_pixel as usize,
                            bytes_per_sample as usize,
                            &mut out,
                        )?;
                    }
                }
                Ok(())
            }
            JPEG_BASELINE | JPEG_EXTENDED | JPEG_LOSSLESS | JPEG_LOSSLESS_SV1 => frames
                .iter()
                .try_for_each(|frame| decode_jpeg(frame, a, &mut out)),
            J2K_LOSSLESS | J2K | J2K_PART2_LOSSLESS | J2K_PART2 | HTJ2K_LOSSLESS | HTJ2K_RPCL
            | HTJ2K => frames
                .iter()
                .try_for_each(|frame| decode_j2k(frame, a, &mut out)),
            _ => {
                let reader = reader.ok_or("no decoder")?;
                reader
                    .decode(&file.obj, &mut out)
                    .map_err(|e| e.to_string())?;
                if uid.starts_with(JPEG_LS_PREFIX) && a.samples_per_pixel > 1 {
                    // CharLS returns the planes of a non-interleaved (ILV 0) scan one after
                    // another; the data set's layout is interleaved.
                    if frames.first().is_some_and(|f| jpegls_separate_planes(f)) {
                        planes_to_interleaved(&mut out, a);
                    }
                }
                Ok(())
            }
        }
    }));
    match decoded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(e)),
        Err(_) => return Err(fail("the codec panicked on this data".into())),
    }
    let n = a.samples_total() as usize;
    if a.bits_allocated == 1 && out.len() < n {
        // Still packed (deflated frames), each frame compressed on its own and so starting
        // on a byte boundary: unpack, least significant bit first.
        let per_frame = n / a.frames.max(1) as usize;
        let packed = per_frame.div_ceil(8);
        if out.len() >= packed * a.frames as usize {
            out = out
                .chunks(packed)
                .take(a.frames as usize)
                .flat_map(|f| (0..per_frame).map(move |i| (f[i / 8] >> (i % 8)) & 1))
                .collect();
        }
    }
    // One-bit data comes back from codecs as one byte per sample.
    let width = if a.bits_allocated == 1 {
        1
    } else {
        bytes_per_sample as usize
    };
    if out.len() < n * width {
        return Err(Error::Truncated {
            path,
            what: format!("decoded {name} pixel data"),
            expected: (n * width) as u64,
            actual: out.len() as u64,
        });
    }
    let out = &out[..n * width];
    let s = match (width, a.kind) {
        (1, PixelKind::Signed) => Samples::I8(out.iter().map(|&b| b as i8).collect()),
        (1, _) => Samples::U8(out.to_vec()),
        (2, PixelKind::Signed) => Samples::I16(
            out.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        (2, _) => Samples::U16(
            out.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        (4, PixelKind::Signed) => Samples::I32(
            out.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        (4, _) => Samples::U32(
            out.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        (w, _) => {
            return Err(fail(format!(
                "{w}-byte samples are not supported in encapsulated data"
            )))
        }
    };
    Ok(s)
}

/// Width and height a JPEG-family or JPEG 2000 codestream declares in its first frame
/// header, if one is found in the first bytes.
fn codestream_size(data: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| -> Option<u32> {
        Some(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]) as u32)
    };
    let be32 = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes([
            *data.get(i)?,
            *data.get(i + 1)?,
            *data.get(i + 2)?,
            *data.get(i + 3)?,
        ]))
    };
    // JPEG 2000 codestream: SOC (FF4F) then SIZ (FF51): Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz.
    if let Some(pos) = data
        .windows(4)
        .take(4096)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
    {
        let (x, y, xo, yo) = (
            be32(pos + 8)?,
            be32(pos + 12)?,
            be32(pos + 16)?,
            be32(pos + 20)?,
        );
        return Some((x.saturating_sub(xo), y.saturating_sub(yo)));
    }
    // JPEG / JPEG-LS: walk markers to the first SOFn (C0-CF except C4, C8, CC) or SOF55 (F7).
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    while i + 4 <= data.len() && i < 1 << 16 {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let is_sof = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC))
            || marker == 0xF7;
        if is_sof {
            return Some((be16(i + 7)?, be16(i + 5)?));
        }
        i += 2 + be16(i + 2)? as usize;
    }
    None
}
