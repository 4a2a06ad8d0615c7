//! A structural pre-scan of a data set's element lengths, run before dicom-object parses it.
//! dicom-parser sizes its buffer from an element's declared length before reading it, so a
//! corrupt length makes it allocate (and zero) gigabytes; nested sequences recurse without
//! a bound. This walk checks every defined length against the bytes that remain and caps
//! the nesting depth, so the parser only ever sees lengths the file can back.

use std::io::Read;

use dicom_core::dictionary::DataDictionary;
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;

/// Deepest sequence nesting accepted (real objects stay far below it).
const MAX_DEPTH: usize = 64;
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// The VRs whose explicit-VR header has a 16-bit length (PS3.5 7.1.2); every other VR,
/// unknown ones included, has a 32-bit length (as dicom-parser reads them).
pub(crate) fn short_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Bytes per value of a binary VR (1 for text and bytes).
fn value_unit(vr: &[u8; 2]) -> usize {
    match vr {
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        b"FL" | b"OF" | b"UL" | b"SL" | b"OL" | b"AT" => 4,
        b"US" | b"SS" | b"OW" => 2,
        _ => 1,
    }
}

/// How the data set is encoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

impl Encoding {
    /// The encoding of a transfer syntax UID (compressed syntaxes are explicit VR little
    /// endian for the data set itself).
    pub fn of(uid: &str) -> Encoding {
        match uid {
            "1.2.840.10008.1.2" => Encoding {
                explicit_vr: false,
                big_endian: false,
            },
            "1.2.840.10008.1.2.2" => Encoding {
                explicit_vr: true,
                big_endian: true,
            },
            _ => Encoding {
                explicit_vr: true,
                big_endian: false,
            },
        }
    }
}

struct Walker<'a> {
    b: &'a [u8],
    enc: Encoding,
}

impl Walker<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let s = [*self.b.get(at)?, *self.b.get(at + 1)?];
        Some(if self.enc.big_endian {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let s = self.b.get(at..at + 4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Some(if self.enc.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    /// Walks what lies between `pos` and `end`. With `items`, the content is a sequence's
    /// items (data sets when `datasets`, codestream fragments otherwise); without, it is
    /// elements. With `until_delim` the walk ends at a delimiter, which must come. Returns
    /// the position after what was walked.
    fn walk(
        &self,
        mut pos: usize,
        end: usize,
        depth: usize,
        items: bool,
        datasets: bool,
        until_delim: bool,
    ) -> Result<usize, String> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH}"));
        }
        while pos < end {
            let (Some(group), Some(element)) = (self.u16(pos), self.u16(pos + 2)) else {
                return Err(format!("element header cut at byte {pos}"));
            };
            if group == 0xFFFE {
                // Item, item delimiter or sequence delimiter: tag + 4-byte length.
                let len = self
                    .u32(pos + 4)
                    .ok_or_else(|| format!("item header cut at byte {pos}"))?;
                pos += 8;
                match element {
                    0xE0DD | 0xE00D if until_delim => return Ok(pos),
                    0xE0DD | 0xE00D => continue,
                    _ if len == UNDEFINED && datasets => {
                        pos = self.walk(pos, end, depth + 1, false, false, true)?
                    }
                    _ if len == UNDEFINED => {
                        return Err(format!(
                            "pixel data fragment of undefined length at byte {pos}"
                        ))
                    }
                    _ => {
                        let stop = self.bounded(pos, end, len, "item")?;
                        if datasets {
                            self.walk(pos, stop, depth + 1, false, false, false)?;
                        }
                        pos = stop;
                    }
                }
                continue;
            }
            if items {
                return Err(format!(
                    "({group:04X},{element:04X}) where a sequence item should be, at byte {pos}"
                ));
            }
            let tag = format!("({group:04X},{element:04X})");
            let (len, header, vr) = if self.enc.explicit_vr {
                let vr = self
                    .b
                    .get(pos + 4..pos + 6)
                    .ok_or_else(|| format!("VR of {tag} cut"))?;
                let long = !super::scan::short_vr(vr);
                let len = if long {
                    self.u32(pos + 8)
                } else {
                    self.u16(pos + 6).map(u32::from)
                };
                (
                    len.ok_or_else(|| format!("length of {tag} cut"))?,
                    if long { 12 } else { 8 },
                    [vr[0], vr[1]],
                )
            } else {
                // Implicit VR: the dictionary gives the VR dicom-parser will use.
                let vr: [u8; 2] = StandardDataDictionary
                    .by_tag(Tag(group, element))
                    .and_then(|e| e.vr.relaxed().to_string().as_bytes().try_into().ok())
                    .unwrap_or(*b"UN");
                (
                    self.u32(pos + 4)
                        .ok_or_else(|| format!("length of {tag} cut"))?,
                    8,
                    vr,
                )
            };
            // Binary values must be whole numbers of their unit: dicom-parser reads
            // `len / unit` values and would lose its place in the stream otherwise.
            let unit = value_unit(&vr);
            if len != UNDEFINED && !(len as usize).is_multiple_of(unit) {
                return Err(format!(
                    "element {tag} ({}) has length {len}, not a multiple of {unit}",
                    String::from_utf8_lossy(&vr)
                ));
            }
            pos += header;
            let pixel = (group, element) == (0x7FE0, 0x0010);
            // Undefined length belongs to sequences, UN (an implicit-VR sequence) and
            // encapsulated pixel data; dicom-parser would try to allocate 4 GiB for any
            // other element that claims it.
            let may_be_undefined = !self.enc.explicit_vr || &vr == b"SQ" || &vr == b"UN" || pixel;
            if len == UNDEFINED && !may_be_undefined {
                return Err(format!(
                    "element {tag} ({}) has undefined length",
                    String::from_utf8_lossy(&vr)
                ));
            }
            if len == UNDEFINED {
                // A sequence (in implicit VR, and UN of undefined length, whose content is
                // implicit VR little endian), or encapsulated pixel data.
                if &vr == b"UN" && self.enc.explicit_vr {
                    let inner = Walker {
                        b: self.b,
                        enc: Encoding {
                            explicit_vr: false,
                            big_endian: false,
                        },
                    };
                    pos = inner.walk(pos, end, depth + 1, true, true, true)?;
                } else {
                    pos = self.walk(pos, end, depth + 1, true, !pixel, true)?;
                }
            } else {
                let stop = self.bounded(pos, end, len, &tag)?;
                if &vr == b"SQ" {
                    self.walk(pos, stop, depth + 1, true, true, false)?;
                }
                pos = stop;
            }
        }
        if until_delim {
            return Err("sequence or pixel data without its delimiter (truncated)".into());
        }
        Ok(pos)
    }

    /// `pos + len`, if it does not run past `end`.
    fn bounded(&self, pos: usize, end: usize, len: u32, what: &str) -> Result<usize, String> {
        pos.checked_add(len as usize)
            .filter(|&s| s <= end)
            .ok_or_else(|| {
                format!(
                    "{what} declares {len} bytes but only {} remain",
                    end.saturating_sub(pos)
                )
            })
    }
}

/// Checks the data set in `bytes` (everything after the meta group).
pub(crate) fn check(bytes: &[u8], enc: Encoding) -> Result<(), String> {
    Walker { b: bytes, enc }
        .walk(0, bytes.len(), 0, false, false, false)
        .map(|_| ())
}

/// Inflates a deflated data set with a bound on its size (deflate's ratio), for checking.
pub(crate) fn inflate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .take((bytes.len() as u64).saturating_mul(1032) + 1024)
        .read_to_end(&mut out)
        .map_err(|e| format!("deflated data set: {e}"))?;
    Ok(out)
}
