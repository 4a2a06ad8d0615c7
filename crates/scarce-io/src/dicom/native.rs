//! Native (uncompressed) pixel data: bytes as the file holds them -> typed samples, in the
//! layout pydicom returns (frames, rows, columns, samples per pixel), interleaved.

use super::attrs::{ImageAttributes, PixelKind};
use crate::samples::{each, Samples};

/// Why native bytes could not be turned into samples.
#[derive(Debug)]
pub(crate) enum NativeError {
    /// Fewer bytes than the attributes declare.
    Short { expected: u64, actual: u64 },
    /// A combination of attributes this reader does not know how to lay out.
    Unsupported(String),
}

/// Native YBR_FULL_422 (PS3.3 C.7.6.3.1.2): each horizontal pair of pixels shares one Cb
/// and one Cr sample, stored `Y1 Y2 Cb Cr`, so the data holds two samples per pixel, not
/// three. It is the only chroma-subsampled interpretation the standard allows in native
/// data (YBR_PARTIAL_422 is retired; the 4:2:0 forms exist only inside compressed streams).
pub(crate) fn subsampled_422(a: &ImageAttributes) -> bool {
    a.samples_per_pixel == 3 && a.photometric == "YBR_FULL_422"
}

/// Number of samples the file stores for all frames.
fn stored_samples(a: &ImageAttributes) -> u64 {
    if subsampled_422(a) {
        a.samples_total() / 3 * 2
    } else {
        a.samples_total()
    }
}

/// Number of bytes the attributes declare for all frames of native data.
pub(crate) fn expected_len(a: &ImageAttributes) -> u64 {
    let samples = stored_samples(a);
    if a.bits_allocated == 1 {
        samples.div_ceil(8)
    } else {
        samples * (a.bits_allocated as u64 / 8)
    }
}

/// Unpacks `bytes` (in the file's byte order) into samples, three per pixel for colour
/// (YBR_FULL_422 expanded to full-resolution YBR as pydicom does, before any conversion to
/// RGB). Extra trailing bytes (padding) are ignored; too few is an error.
pub(crate) fn unpack(
    a: &ImageAttributes,
    bytes: &[u8],
    big_endian: bool,
) -> Result<Samples, NativeError> {
    let expected = expected_len(a);
    if (bytes.len() as u64) < expected {
        return Err(NativeError::Short {
            expected,
            actual: bytes.len() as u64,
        });
    }
    if subsampled_422(a) && (a.rows as u64 * a.columns as u64) % 2 == 1 {
        return Err(NativeError::Unsupported(format!(
            "YBR_FULL_422 with an odd pixel count per frame ({} x {}): 4:2:2 pairs pixels",
            a.rows, a.columns
        )));
    }
    let n = stored_samples(a) as usize;
    let mut samples = match (a.bits_allocated, a.kind) {
        // One bit per pixel, least significant bit first, frames packed back to back.
        (1, _) => Samples::U8((0..n).map(|i| (bytes[i / 8] >> (i % 8)) & 1).collect()),
        (8, PixelKind::Unsigned) => Samples::U8(bytes[..n].to_vec()),
        (8, PixelKind::Signed) => Samples::I8(bytes[..n].iter().map(|&b| b as i8).collect()),
        (16, PixelKind::Unsigned) => Samples::U16(words(
            bytes,
            n,
            big_endian,
            u16::from_le_bytes,
            u16::from_be_bytes,
        )),
        (16, PixelKind::Signed) => Samples::I16(words(
            bytes,
            n,
            big_endian,
            i16::from_le_bytes,
            i16::from_be_bytes,
        )),
        (32, PixelKind::Unsigned) => Samples::U32(words(
            bytes,
            n,
            big_endian,
            u32::from_le_bytes,
            u32::from_be_bytes,
        )),
        (32, PixelKind::Signed) => Samples::I32(words(
            bytes,
            n,
            big_endian,
            i32::from_le_bytes,
            i32::from_be_bytes,
        )),
        (32, PixelKind::Float) => Samples::F32(words(
            bytes,
            n,
            big_endian,
            f32::from_le_bytes,
            f32::from_be_bytes,
        )),
        (64, PixelKind::Float) => Samples::F64(words(
            bytes,
            n,
            big_endian,
            f64::from_le_bytes,
            f64::from_be_bytes,
        )),
        (64, PixelKind::Unsigned) => Samples::U64(words(
            bytes,
            n,
            big_endian,
            u64::from_le_bytes,
            u64::from_be_bytes,
        )),
        (64, PixelKind::Signed) => Samples::I64(words(
            bytes,
            n,
            big_endian,
            i64::from_le_bytes,
            i64::from_be_bytes,
        )),
        (bits, kind) => {
            return Err(NativeError::Unsupported(format!(
                "BitsAllocated {bits} with {kind:?} samples"
            )))
        }
    };
    if subsampled_422(a) {
        if a.bits_allocated == 1 {
            return Err(NativeError::Unsupported(
                "YBR_FULL_422 with BitsAllocated 1".into(),
            ));
        }
        each!(&mut samples, v => *v = expand_422(v));
    }
    Ok(samples)
}

/// `Y1 Y2 Cb Cr` groups -> `Y1 Cb Cr Y2 Cb Cr` (the chroma pair repeated for both pixels).
fn expand_422<T: Copy>(v: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len() / 2 * 3);
    for g in v.chunks_exact(4) {
        out.extend_from_slice(&[g[0], g[2], g[3], g[1], g[2], g[3]]);
    }
    out
}

/// Reads `n` fixed-size words in the given byte order.
fn words<T, const W: usize>(
    bytes: &[u8],
    n: usize,
    big_endian: bool,
    le: fn([u8; W]) -> T,
    be: fn([u8; W]) -> T,
) -> Vec<T> {
    let conv = if big_endian { be } else { le };
    bytes
        .chunks_exact(W)
        .take(n)
        .map(|c| {
            let mut w = [0u8; W];
            w.copy_from_slice(c);
            conv(w)
        })
        .collect()
}

/// Planar configuration 1 (RRR…GGG…BBB per frame) -> interleaved (RGBRGB…).
pub(crate) fn interleave_planes(
    samples: &mut Samples,
    frames: usize,
    pixels: usize,
    channels: usize,
) {
    fn go<T: Copy>(v: &mut [T], frames: usize, pixels: usize, channels: usize) {
        let frame_len = pixels * channels;
        for f in 0..frames {
            let Some(frame) = v.get_mut(f * frame_len..(f + 1) * frame_len) else {
                return;
            };
            let planar = frame.to_vec();
            for p in 0..pixels {
                for c in 0..channels {
                    frame[p * channels + c] = planar[c * pixels + p];
                }
            }
        }
    }
    crate::samples::each!(samples, v => go(v, frames, pixels, channels));
}

/// Clears the bits above BitsStored (unsigned) or sign-extends from BitsStored (signed), as
/// pydicom does, so that garbage in unused high bits never reaches the values.
pub(crate) fn correct_unused_bits(samples: &mut Samples, bits_stored: u16) {
    macro_rules! fix {
        ($v:expr, $u:ty, $signed:expr) => {{
            let width = <$u>::BITS as u16;
            if bits_stored > 0 && bits_stored < width {
                let shift = width - bits_stored;
                for x in $v.iter_mut() {
                    *x = if $signed {
                        (*x << shift) >> shift
                    } else {
                        *x & ((1 << bits_stored) - 1)
                    };
                }
            }
        }};
    }
    match samples {
        Samples::U8(v) => fix!(v, u8, false),
        Samples::I8(v) => fix!(v, i8, true),
        Samples::U16(v) => fix!(v, u16, false),
        Samples::I16(v) => fix!(v, i16, true),
        Samples::U32(v) => fix!(v, u32, false),
        Samples::I32(v) => fix!(v, i32, true),
        Samples::U64(v) => fix!(v, u64, false),
        Samples::I64(v) => fix!(v, i64, true),
        Samples::F32(_) | Samples::F64(_) => {}
    }
}
