//! Encapsulated pixel data through the dicom-rs codecs (JPEG, JPEG-LS via CharLS, JPEG 2000
//! and HTJ2K via openjp2, RLE), with the guards a hostile file needs: the codestream's own
//! dimensions are checked against the data set before a codec allocates for them, the output
//! size against the bytes present, and a codec panic becomes an error.

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

pub(crate) fn decode(file: &DicomFile, a: &ImageAttributes, uid: &str) -> Result<Samples> {
    let path = file.path().to_path_buf();
    let name = file.transfer_syntax_name();
    let fail = |reason: String| Error::Decode { path: path.clone(), uid: uid.to_string(), name: name.clone(), reason };
    let ts = TransferSyntaxRegistry.get(uid).ok_or_else(|| Error::UnsupportedTransferSyntax {
        path: path.clone(),
        uid: uid.to_string(),
        name: "unknown".into(),
    })?;
    let Codec::EncapsulatedPixelData(Some(reader), _) = ts.codec() else {
        return Err(Error::UnsupportedTransferSyntax { path: path.clone(), uid: uid.to_string(), name: name.clone() });
    };
    let bytes_per_sample = (a.bits_allocated as u64).div_ceil(8);
    let declared = a.samples_total() * bytes_per_sample;
    let encoded: u64 = (0..)
        .map_while(|i| file.obj.fragment(i).map(|f| f.len() as u64))
        .sum();
    let available = encoded * MAX_EXPANSION + (1 << 20);
    if declared > available || declared > file.input_len() * MAX_EXPANSION + (1 << 20) {
        return Err(Error::TooLarge { path: path.clone(), declared, available });
    }
    for i in 0..a.frames.min(64) as usize {
        let Some(fragment) = file.obj.fragment(i) else { break };
        if let Some((w, h)) = codestream_size(&fragment) {
            if w > a.columns || h > a.rows {
                return Err(fail(format!(
                    "codestream declares {w}x{h} but the data set says {}x{}",
                    a.columns, a.rows
                )));
            }
        }
    }
    let mut out = Vec::new();
    let decoded = catch_unwind(AssertUnwindSafe(|| reader.decode(&file.obj, &mut out)));
    match decoded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail("the codec panicked on this data".into())),
    }
    let n = a.samples_total() as usize;
    // One-bit data comes back from codecs as one byte per sample.
    let width = if a.bits_allocated == 1 { 1 } else { bytes_per_sample as usize };
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
        (2, PixelKind::Signed) => Samples::I16(out.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()),
        (2, _) => Samples::U16(out.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()),
        (4, PixelKind::Signed) => {
            Samples::I32(out.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        (4, _) => Samples::U32(out.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        (w, _) => return Err(fail(format!("{w}-byte samples are not supported in encapsulated data"))),
    };
    Ok(s)
}

/// Width and height a JPEG-family or JPEG 2000 codestream declares in its first frame
/// header, if one is found in the first bytes.
fn codestream_size(data: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| -> Option<u32> { Some(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]) as u32) };
    let be32 = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes([*data.get(i)?, *data.get(i + 1)?, *data.get(i + 2)?, *data.get(i + 3)?]))
    };
    // JPEG 2000 codestream: SOC (FF4F) then SIZ (FF51): Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz.
    if let Some(pos) = data.windows(4).take(4096).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) {
        let (x, y, xo, yo) = (be32(pos + 8)?, be32(pos + 12)?, be32(pos + 16)?, be32(pos + 20)?);
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
        let is_sof = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC)) || marker == 0xF7;
        if is_sof {
            return Some((be16(i + 7)?, be16(i + 5)?));
        }
        i += 2 + be16(i + 2)? as usize;
    }
    None
}
