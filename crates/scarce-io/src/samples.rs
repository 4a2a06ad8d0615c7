//! Typed sample buffers: pixel values in the dtype the file stores, so that a decode can be
//! compared bit for bit with pydicom / nibabel, and converted to f32 / f64 for use.

/// The element type of a [`Samples`] buffer, named as numpy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `uint8`
    U8,
    /// `int8`
    I8,
    /// `uint16`
    U16,
    /// `int16`
    I16,
    /// `uint32`
    U32,
    /// `int32`
    I32,
    /// `uint64`
    U64,
    /// `int64`
    I64,
    /// `float32`
    F32,
    /// `float64`
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// numpy's name for it (`"uint16"`, `"float64"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::U16 => "uint16",
            Dtype::I16 => "int16",
            Dtype::U32 => "uint32",
            Dtype::I32 => "int32",
            Dtype::U64 => "uint64",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }
}

/// A flat buffer of samples of one [`Dtype`].
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Samples {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Applies `$body` to the inner vector whatever its type (by reference or by mutable
/// reference, following the expression given).
macro_rules! each {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            Samples::U8($v) => $body,
            Samples::I8($v) => $body,
            Samples::U16($v) => $body,
            Samples::I16($v) => $body,
            Samples::U32($v) => $body,
            Samples::I32($v) => $body,
            Samples::U64($v) => $body,
            Samples::I64($v) => $body,
            Samples::F32($v) => $body,
            Samples::F64($v) => $body,
        }
    };
}

pub(crate) use each;

/// Minimum, maximum and mean of a buffer, NaNs skipped (as numpy's nan-functions do).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean, accumulated in f64.
    pub mean: f64,
    /// How many values were NaN.
    pub nan_count: usize,
}

// `each!` expands the same conversion for every sample type, the float ones included, where
// `x as f64` is the identity.
#[allow(clippy::unnecessary_cast)]
impl Samples {
    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Samples::U8(_) => Dtype::U8,
            Samples::I8(_) => Dtype::I8,
            Samples::U16(_) => Dtype::U16,
            Samples::I16(_) => Dtype::I16,
            Samples::U32(_) => Dtype::U32,
            Samples::I32(_) => Dtype::I32,
            Samples::U64(_) => Dtype::U64,
            Samples::I64(_) => Dtype::I64,
            Samples::F32(_) => Dtype::F32,
            Samples::F64(_) => Dtype::F64,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i` as f64 (exact for every integer type up to 32 bits and both floats).
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        each!(self, v => v.get(i).map(|&x| x as f64))
    }

    /// All samples as f64.
    pub fn to_f64(&self) -> Vec<f64> {
        each!(self, v => v.iter().map(|&x| x as f64).collect())
    }

    /// All samples as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        each!(self, v => v.iter().map(|&x| x as f32).collect())
    }

    /// The C-order little-endian bytes (what `arr.astype(arr.dtype.newbyteorder('<')).tobytes()`
    /// gives in numpy): the form the manifests hash.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        each!(self, v => v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// Min, max and mean, NaNs skipped.
    pub fn stats(&self) -> Stats {
        each!(self, v => stats_of(v.iter().map(|&x| x as f64)))
    }
}

/// Min, max, mean of an iterator of f64, NaNs skipped and counted.
pub fn stats_of(values: impl Iterator<Item = f64>) -> Stats {
    let (mut min, mut max, mut sum, mut n, mut nan) =
        (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize, 0usize);
    for x in values {
        if x.is_nan() {
            nan += 1;
            continue;
        }
        min = min.min(x);
        max = max.max(x);
        sum += x;
        n += 1;
    }
    let mean = if n == 0 { f64::NAN } else { sum / n as f64 };
    Stats {
        min,
        max,
        mean,
        nan_count: nan,
    }
}
