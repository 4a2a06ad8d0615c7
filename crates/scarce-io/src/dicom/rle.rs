//! DICOM RLE Lossless (PS3.5 Annex G) for 8, 16, 32 and 64-bit samples: each frame holds one
//! PackBits segment per byte plane, most significant byte first, colour planes in order.

/// Decodes one frame to little-endian interleaved samples, appended to `out`.
pub(crate) fn decode_frame(
    data: &[u8],
    pixels: usize,
    channels: usize,
    bytes_per_sample: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let header = data
        .get(..64)
        .ok_or("RLE frame shorter than its 64-byte header")?;
    let word = |i: usize| {
        u32::from_le_bytes([
            header[4 * i],
            header[4 * i + 1],
            header[4 * i + 2],
            header[4 * i + 3],
        ])
    };
    let segments = word(0) as usize;
    let expected = channels * bytes_per_sample;
    if segments != expected {
        return Err(format!(
            "RLE header declares {segments} segments, the attributes imply {expected}"
        ));
    }
    let base = out.len();
    out.resize(base + pixels * expected, 0);
    for seg in 0..segments {
        let start = word(seg + 1) as usize;
        let end = if seg + 1 < segments {
            word(seg + 2) as usize
        } else {
            data.len()
        };
        let src = data
            .get(start..end.max(start))
            .ok_or_else(|| format!("RLE segment {seg} offset {start} is outside the frame"))?;
        let (channel, byte_msb) = (seg / bytes_per_sample, seg % bytes_per_sample);
        let byte_le = bytes_per_sample - 1 - byte_msb;
        let mut plane = Vec::with_capacity(pixels);
        packbits(src, pixels, &mut plane);
        if plane.len() < pixels {
            return Err(format!(
                "RLE segment {seg} decodes to {} bytes, {pixels} needed",
                plane.len()
            ));
        }
        for (p, &b) in plane.iter().take(pixels).enumerate() {
            out[base + (p * channels + channel) * bytes_per_sample + byte_le] = b;
        }
    }
    Ok(())
}

/// PackBits: n < 128 copies n + 1 bytes; n > 128 repeats the next byte 257 - n times;
/// 128 is a no-op. Stops once `limit` bytes are produced.
fn packbits(src: &[u8], limit: usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() && out.len() < limit {
        let n = src[i] as usize;
        i += 1;
        if n < 128 {
            let end = (i + n + 1).min(src.len());
            out.extend_from_slice(&src[i..end]);
            i = end;
        } else if n > 128 {
            let Some(&b) = src.get(i) else { break };
            out.extend(std::iter::repeat_n(b, 257 - n));
            i += 1;
        }
    }
    out.truncate(limit);
}
