//! Encapsulated pixel data -> one byte string per frame (PS3.5 A.4): one fragment per frame,
//! the Basic Offset Table, or, for JPEG-family data with neither, frames ending at an EOI
//! marker.

/// Splits `fragments` into `frames` frames; `None` when they cannot be told apart.
pub(crate) fn split(
    fragments: &[Vec<u8>],
    offset_table: &[u32],
    frames: usize,
    jpeg: bool,
) -> Option<Vec<Vec<u8>>> {
    if frames == 0 {
        return Some(Vec::new());
    }
    if frames == 1 {
        return Some(vec![fragments.concat()]);
    }
    if fragments.len() == frames {
        return Some(fragments.to_vec());
    }
    if offset_table.len() == frames {
        // Offsets count item headers (8 bytes each) from the first fragment's item.
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); frames];
        let mut offset = 0u64;
        for fragment in fragments {
            let frame = offset_table.iter().rposition(|&o| o as u64 <= offset)?;
            out[frame].extend_from_slice(fragment);
            offset += fragment.len() as u64 + 8;
        }
        return Some(out);
    }
    if jpeg {
        let mut out = Vec::with_capacity(frames);
        let mut current = Vec::new();
        for fragment in fragments {
            current.extend_from_slice(fragment);
            let end = trim_padding(&current);
            if end.ends_with(&[0xFF, 0xD9]) {
                out.push(std::mem::take(&mut current));
            }
        }
        return (out.len() == frames && current.is_empty()).then_some(out);
    }
    None
}

/// A fragment may end with one byte of padding to an even length.
fn trim_padding(b: &[u8]) -> &[u8] {
    match b {
        [rest @ .., 0xFF, 0xD9, 0x00] => &b[..rest.len() + 2],
        _ => b,
    }
}
