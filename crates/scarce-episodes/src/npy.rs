//! NumPy `.npy` arrays and `.npz` archives (zip files of `.npy` members), read without
//! Python. Only C-order arrays of plain numeric and boolean types are accepted; anything
//! else is an error naming the file and member.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The element type of an array as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyType {
    /// `|b1`, one byte, 0 or 1.
    Bool,
    /// `|u1`.
    U8,
    /// `|i1`.
    I8,
    /// `u2`.
    U16,
    /// `i2`.
    I16,
    /// `u4`.
    U32,
    /// `i4`.
    I32,
    /// `u8`.
    U64,
    /// `i8`.
    I64,
    /// `f4`.
    F32,
    /// `f8`.
    F64,
}

impl NpyType {
    fn size(self) -> usize {
        match self {
            NpyType::Bool | NpyType::U8 | NpyType::I8 => 1,
            NpyType::U16 | NpyType::I16 => 2,
            NpyType::U32 | NpyType::I32 | NpyType::F32 => 4,
            NpyType::U64 | NpyType::I64 | NpyType::F64 => 8,
        }
    }
}

/// One array: its shape, element type and raw little-endian bytes (big-endian files are
/// swapped on reading).
#[derive(Clone, Debug)]
pub struct NpyArray {
    /// The shape, outermost first.
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: NpyType,
    bytes: Vec<u8>,
}

impl NpyArray {
    /// An array from little-endian bytes (e.g. a safetensors view).
    ///
    /// # Errors
    /// When `bytes` does not hold exactly the elements `shape` and `dtype` declare.
    pub fn from_le_bytes(shape: Vec<usize>, dtype: NpyType, bytes: Vec<u8>) -> Result<Self> {
        let want = shape
            .iter()
            .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
            .ok_or_else(|| Error::param("shape", format!("{shape:?} overflows")))?;
        if bytes.len() != want {
            return Err(Error::param(
                "bytes",
                format!(
                    "{} bytes for shape {shape:?} of {dtype:?} ({want} expected)",
                    bytes.len()
                ),
            ));
        }
        Ok(NpyArray {
            shape,
            dtype,
            bytes,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes of a one-byte type (`Bool`, `U8`, `I8`), `None` otherwise.
    pub fn bytes(&self) -> Option<&[u8]> {
        (self.dtype.size() == 1).then_some(&self.bytes[..])
    }

    /// Every element as `f64` (exact for all types but 64-bit integers beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        let b = &self.bytes;
        macro_rules! conv {
            ($t:ty, $n:expr) => {
                b.chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(std::array::from_fn(|i| c[i])) as f64)
                    .collect()
            };
        }
        match self.dtype {
            NpyType::Bool | NpyType::U8 => b.iter().map(|&v| v as f64).collect(),
            NpyType::I8 => b.iter().map(|&v| v as i8 as f64).collect(),
            NpyType::U16 => conv!(u16, 2),
            NpyType::I16 => conv!(i16, 2),
            NpyType::U32 => conv!(u32, 4),
            NpyType::I32 => conv!(i32, 4),
            NpyType::U64 => conv!(u64, 8),
            NpyType::I64 => conv!(i64, 8),
            NpyType::F32 => conv!(f32, 4),
            NpyType::F64 => conv!(f64, 8),
        }
    }

    /// Every element as a class label: must be a non-negative integer.
    pub fn to_labels(&self, what: &Path) -> Result<Vec<usize>> {
        if matches!(self.dtype, NpyType::F32 | NpyType::F64) {
            return Err(Error::format(what, "labels must be integers, found floats"));
        }
        self.to_f64()
            .into_iter()
            .map(|v| {
                if v < 0.0 {
                    Err(Error::format(what, format!("negative label {v}")))
                } else {
                    Ok(v as usize)
                }
            })
            .collect()
    }
}

/// Parses one `.npy` stream; `name` is used in errors.
pub fn read_npy(mut r: impl Read, name: &Path) -> Result<NpyArray> {
    let bad = |why: &str| Error::format(name, format!("not a valid .npy array: {why}"));
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| Error::io(name, e))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let header_len = if magic[6] == 1 {
        let mut l = [0u8; 2];
        r.read_exact(&mut l).map_err(|e| Error::io(name, e))?;
        u16::from_le_bytes(l) as usize
    } else {
        let mut l = [0u8; 4];
        r.read_exact(&mut l).map_err(|e| Error::io(name, e))?;
        u32::from_le_bytes(l) as usize
    };
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).map_err(|e| Error::io(name, e))?;
    let header = String::from_utf8_lossy(&header);
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| bad("no descr"))?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| bad("descr is not a string"))?;
    let big_endian = descr.starts_with('>');
    let dtype = match descr.trim_start_matches(['<', '>', '|', '=']) {
        "b1" | "?" => NpyType::Bool,
        "u1" => NpyType::U8,
        "i1" => NpyType::I8,
        "u2" => NpyType::U16,
        "i2" => NpyType::I16,
        "u4" => NpyType::U32,
        "i4" => NpyType::I32,
        "u8" => NpyType::U64,
        "i8" => NpyType::I64,
        "f4" => NpyType::F32,
        "f8" => NpyType::F64,
        other => return Err(bad(&format!("element type `{other}` is not supported"))),
    };
    let fortran = field("fortran_order").ok_or_else(|| bad("no fortran_order"))?;
    if fortran.starts_with("True") {
        return Err(bad(
            "Fortran-order arrays are not supported; save with C order",
        ));
    }
    let shape_text = field("shape").ok_or_else(|| bad("no shape"))?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("shape is not a tuple"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad("shape entry is not a number"))
        })
        .collect::<Result<Vec<_>>>()?;
    let n: usize = shape.iter().product();
    let mut bytes = vec![0u8; n * dtype.size()];
    r.read_exact(&mut bytes)
        .map_err(|e| Error::format(name, format!("array data truncated: {e}")))?;
    if big_endian && dtype.size() > 1 {
        for c in bytes.chunks_exact_mut(dtype.size()) {
            c.reverse();
        }
    }
    Ok(NpyArray {
        shape,
        dtype,
        bytes,
    })
}

/// Reads the member `member` (without the `.npy` suffix) of an `.npz` archive.
pub fn read_npz_member(path: &Path, member: &str) -> Result<NpyArray> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("not a zip (npz) archive: {e}")))?;
    let name = format!("{member}.npy");
    let entry = zip
        .by_name(&name)
        .map_err(|_| Error::format(path, format!("the archive has no member `{name}`")))?;
    read_npy(std::io::BufReader::new(entry), &path.join(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_both_endiannesses_and_scalars() {
        let le = npy("<i4", "(2,)", &[1, 0, 0, 0, 255, 255, 255, 255]);
        let a = read_npy(&le[..], Path::new("a.npy")).unwrap();
        assert_eq!(a.shape, vec![2]);
        assert_eq!(a.to_f64(), vec![1.0, -1.0]);
        let be = npy(">u2", "(1, 1)", &[1, 2]);
        let b = read_npy(&be[..], Path::new("b.npy")).unwrap();
        assert_eq!(b.to_f64(), vec![258.0]);
        let s = npy("<f8", "()", &2.5f64.to_le_bytes());
        assert_eq!(
            read_npy(&s[..], Path::new("s.npy")).unwrap().to_f64(),
            vec![2.5]
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let t = npy("<c16", "(1,)", &[0; 16]);
        let e = read_npy(&t[..], Path::new("c.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.npy") && e.contains("c16"), "{e}");
        let short = npy("<f4", "(4,)", &[0; 8]);
        let e = read_npy(&short[..], Path::new("d.npy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
