//! NIfTI-1, NIfTI-2 and Analyze 7.5 (SPM2 flavour) read, as nibabel reads them: `.nii`,
//! `.nii.gz`, `.hdr` + `.img` pairs (also gzipped), either byte order; data scaled by
//! `scl_slope` / `scl_inter`; the affine from sform when its code is positive, else qform,
//! else pixdim. Writing `.nii` / `.nii.gz` (NIfTI-1, float32, sform and qform set) goes
//! through a temporary file so a failed write leaves nothing behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error, Result};
use crate::image::{Image, Metadata};
use crate::samples::{Dtype, Samples};

/// Deflate cannot expand input by more than about 1032:1; a gzipped file that claims more
/// data than that is refused before anything is allocated for it.
const MAX_GZIP_RATIO: u64 = 1032;

/// Which header layout the file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NiftiVersion {
    /// Analyze 7.5 (no magic; read as SPM2 does, with its origin field).
    Analyze,
    /// NIfTI-1 (348-byte header).
    Nifti1,
    /// NIfTI-2 (540-byte header).
    Nifti2,
}

/// The header fields a reader needs, widened to f64 / usize whatever the version.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiHeader {
    /// Header layout.
    pub version: NiftiVersion,
    /// True for big-endian files.
    pub big_endian: bool,
    /// True when header and data share one file (`n+1` / `n+2`).
    pub single_file: bool,
    /// Array shape, `dim[1..=dim[0]]`.
    pub shape: Vec<usize>,
    /// NIfTI datatype code.
    pub datatype: i16,
    /// `pixdim[0..8]` (`pixdim[0]` is qfac).
    pub pixdim: [f64; 8],
    /// Byte offset of the data.
    pub vox_offset: u64,
    /// `scl_slope`.
    pub scl_slope: f64,
    /// `scl_inter`.
    pub scl_inter: f64,
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b, quatern_c, quatern_d`.
    pub quatern: [f64; 3],
    /// `qoffset_x, qoffset_y, qoffset_z`.
    pub qoffset: [f64; 3],
    /// `srow_x, srow_y, srow_z`.
    pub srow: [[f64; 4]; 3],
    /// `xyzt_units`.
    pub xyzt_units: u8,
    /// `descrip`, trimmed.
    pub descrip: String,
    /// SPM's origin (Analyze only; 1-based voxel of the world origin).
    pub spm_origin: Option<[f64; 3]>,
}

/// A NIfTI / Analyze image: header plus the raw samples in the file's dtype, in file order
/// (first axis fastest).
#[derive(Clone, Debug, PartialEq)]
pub struct Nifti {
    /// The header.
    pub header: NiftiHeader,
    /// Raw samples as stored (native byte order now).
    pub samples: Samples,
}

fn nifti_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Nifti {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Little reader over the header bytes in the file's byte order.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.be {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.arr(at)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
    fn text(&self, at: usize, len: usize) -> String {
        let s = &self.b[at..at + len];
        let end = s.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&s[..end]).trim().to_string()
    }
}

impl NiftiHeader {
    /// Parses a header from the first bytes of a file (at least 348, or 540 for NIfTI-2).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let first = bytes.get(..4).ok_or_else(|| {
            nifti_err(
                path,
                format!("{} bytes is too short for a header", bytes.len()),
            )
        })?;
        let le = i32::from_le_bytes([first[0], first[1], first[2], first[3]]);
        let be = i32::from_be_bytes([first[0], first[1], first[2], first[3]]);
        let (size, big_endian) = match (le, be) {
            (348 | 540, _) => (le as usize, false),
            (_, 348 | 540) => (be as usize, true),
            _ => {
                return Err(nifti_err(
                    path,
                    format!("sizeof_hdr is {le} (or {be} big-endian), not 348 or 540"),
                ))
            }
        };
        let b = bytes.get(..size).ok_or_else(|| {
            nifti_err(
                path,
                format!(
                    "header declares {size} bytes but the file holds {}",
                    bytes.len()
                ),
            )
        })?;
        let f = Fields { b, be: big_endian };
        if size == 540 {
            Self::parse_v2(&f, path, big_endian)
        } else {
            Self::parse_v1(&f, path, big_endian)
        }
    }

    fn parse_v1(f: &Fields, path: &Path, big_endian: bool) -> Result<Self> {
        let magic = &f.b[344..348];
        let (version, single_file) = match magic {
            b"n+1\0" => (NiftiVersion::Nifti1, true),
            b"ni1\0" => (NiftiVersion::Nifti1, false),
            _ => (NiftiVersion::Analyze, false),
        };
        let dims: Vec<i64> = (0..8).map(|i| f.i16(40 + 2 * i) as i64).collect();
        let mut pixdim = [0.0; 8];
        for (i, p) in pixdim.iter_mut().enumerate() {
            *p = f.f32(76 + 4 * i);
        }
        let analyze = version == NiftiVersion::Analyze;
        let spm_origin = analyze.then(|| [f.i16(253) as f64, f.i16(255) as f64, f.i16(257) as f64]);
        Ok(NiftiHeader {
            version,
            big_endian,
            single_file,
            shape: shape_of(&dims, path)?,
            datatype: f.i16(70),
            pixdim,
            vox_offset: offset_of(f.f32(108), path)?,
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            qform_code: if analyze { 0 } else { f.i16(252) as i32 },
            sform_code: if analyze { 0 } else { f.i16(254) as i32 },
            quatern: [f.f32(256), f.f32(260), f.f32(264)],
            qoffset: [f.f32(268), f.f32(272), f.f32(276)],
            srow: [0, 1, 2].map(|r| [0, 1, 2, 3].map(|c| f.f32(280 + 16 * r + 4 * c))),
            xyzt_units: if analyze { 0 } else { f.b[123] },
            descrip: f.text(148, 80),
            spm_origin,
        })
    }

    fn parse_v2(f: &Fields, path: &Path, big_endian: bool) -> Result<Self> {
        let single_file = match &f.b[4..8] {
            b"n+2\0" => true,
            b"ni2\0" => false,
            m => {
                return Err(nifti_err(
                    path,
                    format!("540-byte header with magic {m:?}, not n+2 or ni2"),
                ))
            }
        };
        let dims: Vec<i64> = (0..8).map(|i| f.i64(16 + 8 * i)).collect();
        let mut pixdim = [0.0; 8];
        for (i, p) in pixdim.iter_mut().enumerate() {
            *p = f.f64(104 + 8 * i);
        }
        let vox = f.i64(168);
        if vox < 0 {
            return Err(nifti_err(path, format!("vox_offset {vox} is negative")));
        }
        Ok(NiftiHeader {
            version: NiftiVersion::Nifti2,
            big_endian,
            single_file,
            shape: shape_of(&dims, path)?,
            datatype: f.i16(12),
            pixdim,
            vox_offset: vox as u64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: [f.f64(352), f.f64(360), f.f64(368)],
            qoffset: [f.f64(376), f.f64(384), f.f64(392)],
            srow: [0, 1, 2].map(|r| [0, 1, 2, 3].map(|c| f.f64(400 + 32 * r + 8 * c))),
            xyzt_units: (f.i32(500) & 0xFF) as u8,
            descrip: f.text(240, 80),
            spm_origin: None,
        })
    }

    /// The sample type the datatype code names.
    pub fn dtype(&self, path: &Path) -> Result<Dtype> {
        Ok(match self.datatype {
            2 => Dtype::U8,
            4 => Dtype::I16,
            8 => Dtype::I32,
            16 => Dtype::F32,
            64 => Dtype::F64,
            256 => Dtype::I8,
            512 => Dtype::U16,
            768 => Dtype::U32,
            1024 => Dtype::I64,
            1280 => Dtype::U64,
            d => {
                let name = match d {
                    1 => "binary",
                    32 => "complex64",
                    128 => "RGB24",
                    1536 => "float128",
                    1792 => "complex128",
                    2048 => "complex256",
                    2304 => "RGBA32",
                    _ => "unknown",
                };
                return Err(nifti_err(
                    path,
                    format!("datatype {d} ({name}) is not supported"),
                ));
            }
        })
    }

    /// Number of voxels (the header's shape is checked not to overflow when parsed).
    pub fn voxels(&self) -> u64 {
        self.shape
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }

    /// nibabel's slope and intercept: `None` when the slope is 0 or not finite, and for the
    /// identity (1, 0), which nibabel does not apply either: `x · 1 + 0` would turn −0 into +0,
    /// so a file would not read back bit for bit.
    pub fn slope_inter(&self) -> Option<(f64, f64)> {
        if self.scl_slope == 0.0 || !self.scl_slope.is_finite() {
            return None;
        }
        let inter = if self.scl_inter.is_finite() {
            self.scl_inter
        } else {
            0.0
        };
        if self.scl_slope == 1.0 && inter == 0.0 {
            return None;
        }
        Some((self.scl_slope, inter))
    }

    /// The voxel-to-world affine nibabel's `img.affine` gives: sform when `sform_code > 0`,
    /// else qform when `qform_code > 0`, else from pixdim (and SPM's origin for Analyze).
    pub fn affine(&self) -> [[f64; 4]; 4] {
        if self.sform_code > 0 {
            self.sform()
        } else if self.qform_code > 0 {
            self.qform()
        } else {
            self.base_affine()
        }
    }

    /// The sform matrix (rows `srow_x`, `srow_y`, `srow_z`).
    pub fn sform(&self) -> [[f64; 4]; 4] {
        [
            self.srow[0],
            self.srow[1],
            self.srow[2],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    /// The qform matrix from the quaternion, pixdim and qfac (nibabel's `get_qform`).
    pub fn qform(&self) -> [[f64; 4]; 4] {
        let [b, c, d] = self.quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = quat_to_mat(a, b, c, d);
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let vox = [
            self.pixdim[1].abs(),
            self.pixdim[2].abs(),
            self.pixdim[3].abs() * qfac,
        ];
        let mut out = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                out[i][j] = r[i][j] * vox[j];
            }
            out[i][3] = self.qoffset[i];
        }
        out[3][3] = 1.0;
        out
    }

    /// nibabel's base affine: x flipped, voxel sizes from pixdim, centred (or at SPM's
    /// origin for Analyze files that give one in range).
    pub fn base_affine(&self) -> [[f64; 4]; 4] {
        let dim = |i: usize| self.shape.get(i).copied().unwrap_or(1) as f64;
        let dims = [dim(0), dim(1), dim(2)];
        let zoom = |i: usize| {
            if i < self.shape.len() {
                self.pixdim[i + 1]
            } else {
                1.0
            }
        };
        let zooms = [-zoom(0), zoom(1), zoom(2)];
        let centre = [
            (dims[0] - 1.0) / 2.0,
            (dims[1] - 1.0) / 2.0,
            (dims[2] - 1.0) / 2.0,
        ];
        let origin = match self.spm_origin {
            Some(o)
                if o.iter().any(|&v| v != 0.0)
                    && (0..3).all(|i| o[i] > -dims[i] && o[i] < dims[i] * 2.0) =>
            {
                [o[0] - 1.0, o[1] - 1.0, o[2] - 1.0]
            }
            _ => centre,
        };
        let mut out = [[0.0; 4]; 4];
        for i in 0..3 {
            out[i][i] = zooms[i];
            out[i][3] = -origin[i] * zooms[i];
        }
        out[3][3] = 1.0;
        out
    }
}

/// nibabel's `quat2mat` for a unit quaternion (w, x, y, z).
fn quat_to_mat(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let n = w * w + x * x + y * y + z * z;
    if n < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / n;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

fn shape_of(dims: &[i64], path: &Path) -> Result<Vec<usize>> {
    let ndim = dims[0];
    if !(1..=7).contains(&ndim) {
        return Err(nifti_err(path, format!("dim[0] is {ndim}, not 1..7")));
    }
    let shape: Vec<usize> = dims[1..=ndim as usize]
        .iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            nifti_err(
                path,
                format!(
                    "dim {:?} has a zero or negative size",
                    &dims[..=ndim as usize]
                ),
            )
        })?;
    if shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .is_none_or(|n| n > 1 << 48)
    {
        return Err(nifti_err(
            path,
            format!("dim {shape:?} holds more voxels than any file can"),
        ));
    }
    Ok(shape)
}

fn offset_of(v: f64, path: &Path) -> Result<u64> {
    if !v.is_finite() || v < 0.0 || v > (1u64 << 40) as f64 {
        return Err(nifti_err(
            path,
            format!("vox_offset {v} is not a valid offset"),
        ));
    }
    Ok(v as u64)
}

/// At most `limit` bytes from the start of a file, gunzipped when it starts with the gzip
/// magic: a header is read without reading (or inflating) the data behind it.
fn read_head(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::{BufRead, BufReader};
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut reader = BufReader::new(file);
    let gz = reader
        .fill_buf()
        .map_err(|e| io_err(path, e))?
        .starts_with(&[0x1F, 0x8B]);
    let mut out = Vec::new();
    if gz {
        flate2::read::MultiGzDecoder::new(reader)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| nifti_err(path, format!("gzip stream: {e}")))?;
    } else {
        reader
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| io_err(path, e))?;
    }
    Ok(out)
}

/// The `.img` beside a `.hdr` (or `.img.gz`), and the `.hdr` beside an `.img`.
fn pair_paths(path: &Path) -> (PathBuf, Vec<PathBuf>) {
    let name = path.to_string_lossy();
    let strip = |s: &str| name.strip_suffix(s).map(str::to_string);
    if let Some(stem) = strip(".hdr.gz").or_else(|| strip(".hdr")) {
        return (
            path.to_path_buf(),
            vec![
                PathBuf::from(format!("{stem}.img")),
                PathBuf::from(format!("{stem}.img.gz")),
            ],
        );
    }
    if let Some(stem) = strip(".img.gz").or_else(|| strip(".img")) {
        return (
            PathBuf::from(format!("{stem}.hdr")),
            vec![path.to_path_buf()],
        );
    }
    (path.to_path_buf(), vec![path.to_path_buf()])
}

impl Nifti {
    /// Reads only the header (a `.hdr` works without its `.img`).
    pub fn read_header(path: impl AsRef<Path>) -> Result<NiftiHeader> {
        let (header_path, _) = pair_paths(path.as_ref());
        let bytes = read_head(&header_path, 540)?;
        NiftiHeader::parse(&bytes, &header_path)
    }

    /// Reads header and data. Sizes in the header are checked against the bytes present
    /// before anything is allocated for them.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let (header_path, data_paths) = pair_paths(path.as_ref());
        if header_path == data_paths[0] {
            let raw = std::fs::read(&header_path).map_err(|e| io_err(&header_path, e))?;
            return Self::from_bytes(&raw, &header_path);
        }
        let head = read_head(&header_path, 540)?;
        let header = NiftiHeader::parse(&head, &header_path)?;
        if header.single_file {
            let raw = std::fs::read(&header_path).map_err(|e| io_err(&header_path, e))?;
            return Self::from_bytes(&raw, &header_path);
        }
        let dtype = header.dtype(&header_path)?;
        let data_path = data_paths
            .iter()
            .find(|p| p.exists())
            .cloned()
            .ok_or_else(|| {
                io_err(
                    &data_paths[0],
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "image file of the pair not found",
                    ),
                )
            })?;
        let raw = std::fs::read(&data_path).map_err(|e| io_err(&data_path, e))?;
        let samples = read_data(&raw, &header, dtype, &data_path)?;
        Ok(Nifti { header, samples })
    }

    /// Reads a single-file image (`.nii`, or gzipped) already in memory; `path` names it
    /// in errors. The same size checks as [`Nifti::open`] apply.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let gz = bytes.starts_with(&[0x1F, 0x8B]);
        let head = if gz {
            inflate(bytes, 540, path)?
        } else {
            bytes.get(..bytes.len().min(540)).unwrap_or(&[]).to_vec()
        };
        let header = NiftiHeader::parse(&head, path)?;
        if !header.single_file {
            return Err(nifti_err(
                path,
                "a header / image pair cannot be read from one buffer",
            ));
        }
        let dtype = header.dtype(path)?;
        let samples = read_data(bytes, &header, dtype, path)?;
        Ok(Nifti { header, samples })
    }

    /// The data as nibabel's `get_fdata()`: float64, scaled when the header asks for it.
    #[allow(clippy::unnecessary_cast)] // `each!` covers f64 samples too
    pub fn scaled(&self) -> Vec<f64> {
        match self.header.slope_inter() {
            Some((slope, inter)) => {
                crate::samples::each!(&self.samples, v => v.iter().map(|&x| x as f64 * slope + inter).collect())
            }
            None => self.samples.to_f64(),
        }
    }

    /// The scaled data as float32 (what [`Nifti::to_image`] stores), computed in float64
    /// and rounded once.
    #[allow(clippy::unnecessary_cast)] // `each!` covers f64 samples too
    pub fn scaled_f32(&self) -> Vec<f32> {
        match self.header.slope_inter() {
            Some((slope, inter)) => {
                crate::samples::each!(&self.samples, v => v.iter().map(|&x| (x as f64 * slope + inter) as f32).collect())
            }
            None => self.samples.to_f32(),
        }
    }

    /// As one [`Image`]: the first three axes are (width, height, depth), everything after
    /// them is folded into channels (time points, CIFTI dimensions).
    pub fn to_image(&self) -> Image {
        let s = &self.header.shape;
        let dim = |i: usize| s.get(i).copied().unwrap_or(1);
        let channels = s.iter().skip(3).product::<usize>().max(1);
        let (spacing, origin, direction) = Image::geometry_from_affine(&self.header.affine());
        let spatial = match self.header.xyzt_units & 0x07 {
            1 => "m",
            3 => "um",
            _ => "mm",
        };
        Image {
            data: self.scaled_f32(),
            shape: [channels, dim(2), dim(1), dim(0)],
            spacing,
            origin,
            direction,
            meta: Metadata {
                format: "nifti".into(),
                spatial_units: spatial.into(),
                description: (!self.header.descrip.is_empty()).then(|| self.header.descrip.clone()),
                ..Metadata::default()
            },
        }
    }
}

/// Gunzips at most `limit` bytes.
fn inflate(bytes: &[u8], limit: u64, path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(1 << 30) as usize);
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| nifti_err(path, format!("gzip stream: {e}")))?;
    Ok(out)
}

/// The voxel data from a data file's bytes (gzipped or not): its declared size is checked
/// against what the bytes can hold before anything is inflated or allocated.
fn read_data(bytes: &[u8], header: &NiftiHeader, dtype: Dtype, path: &Path) -> Result<Samples> {
    let gz = bytes.starts_with(&[0x1F, 0x8B]);
    let stored = bytes.len() as u64;
    let data_len = header
        .voxels()
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| nifti_err(path, "data size overflows"))?;
    let needed = data_len
        .checked_add(header.vox_offset)
        .ok_or_else(|| nifti_err(path, "data size overflows"))?;
    if needed > stored.saturating_mul(if gz { MAX_GZIP_RATIO } else { 1 }) + 4096 {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            declared: needed,
            available: stored,
        });
    }
    let truncated = |actual: usize| Error::Truncated {
        path: path.to_path_buf(),
        what: format!("{} voxels of {}", header.voxels(), dtype.name()),
        expected: needed,
        actual: actual as u64,
    };
    if gz {
        let mut whole = inflate(bytes, needed, path)?;
        if (whole.len() as u64) < needed {
            return Err(truncated(whole.len()));
        }
        if dtype == Dtype::U8 {
            // The common case (masks, templates): hand the buffer over without a copy.
            whole.drain(..header.vox_offset as usize);
            return Ok(Samples::U8(whole));
        }
        return Ok(decode_samples(
            &whole[header.vox_offset as usize..],
            dtype,
            header.big_endian,
        ));
    }
    let data = bytes
        .get(header.vox_offset as usize..needed as usize)
        .ok_or_else(|| truncated(bytes.len()))?;
    Ok(decode_samples(data, dtype, header.big_endian))
}

fn decode_samples(data: &[u8], dtype: Dtype, big_endian: bool) -> Samples {
    macro_rules! words {
        ($t:ty, $w:expr) => {
            data.chunks_exact($w)
                .map(|c| {
                    let mut a = [0u8; $w];
                    a.copy_from_slice(c);
                    if big_endian {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }
                })
                .collect()
        };
    }
    match dtype {
        Dtype::U8 => Samples::U8(data.to_vec()),
        Dtype::I8 => Samples::I8(data.iter().map(|&b| b as i8).collect()),
        Dtype::U16 => Samples::U16(words!(u16, 2)),
        Dtype::I16 => Samples::I16(words!(i16, 2)),
        Dtype::U32 => Samples::U32(words!(u32, 4)),
        Dtype::I32 => Samples::I32(words!(i32, 4)),
        Dtype::U64 => Samples::U64(words!(u64, 8)),
        Dtype::I64 => Samples::I64(words!(i64, 8)),
        Dtype::F32 => Samples::F32(words!(f32, 4)),
        Dtype::F64 => Samples::F64(words!(f64, 8)),
    }
}

/// Writes `image` as NIfTI-1 (`.nii`, or `.nii.gz` when the name ends so) with float32
/// voxels; channels become the fourth dimension. The affine goes into the sform (code 1,
/// scanner) and, as a rotation + qfac, the qform (code 1), so any reader finds it. The file
/// is written to a temporary name beside the target and renamed, so a failure leaves no
/// partial file.
pub fn write_nifti(path: impl AsRef<Path>, image: &Image) -> Result<()> {
    let path = path.as_ref();
    let [c, d, h, w] = image.shape;
    if image.data.len() != c * d * h * w {
        return Err(Error::InvalidParam {
            name: "image",
            reason: format!("{} values for shape {:?}", image.data.len(), image.shape),
        });
    }
    if image.shape.iter().any(|&s| s == 0 || s > i16::MAX as usize) {
        return Err(Error::InvalidParam {
            name: "image",
            reason: format!(
                "shape {:?} does not fit NIfTI-1 (1..=32767 per axis)",
                image.shape
            ),
        });
    }
    let mut hdr = vec![0u8; 352];
    let put_i16 =
        |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f64| {
        h[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes())
    };
    hdr[0..4].copy_from_slice(&348i32.to_le_bytes());
    let ndim = if c > 1 { 4 } else { 3 };
    for (i, v) in [ndim, w, h, d, c, 1, 1, 1].iter().enumerate() {
        put_i16(&mut hdr, 40 + 2 * i, *v as i16);
    }
    put_i16(&mut hdr, 70, 16); // float32
    put_i16(&mut hdr, 72, 32);
    let affine = image.affine();
    let (quat, qfac) = rotation_to_quaternion(&image.direction);
    let pixdim = [
        qfac,
        image.spacing[0],
        image.spacing[1],
        image.spacing[2],
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (i, v) in pixdim.iter().enumerate() {
        put_f32(&mut hdr, 76 + 4 * i, *v);
    }
    put_f32(&mut hdr, 108, 352.0);
    put_f32(&mut hdr, 112, 1.0);
    put_f32(&mut hdr, 116, 0.0);
    hdr[123] = match image.meta.spatial_units.as_str() {
        "m" => 1,
        "um" => 3,
        _ => 2,
    };
    let descrip = image.meta.description.clone().unwrap_or_default();
    let descrip = descrip.as_bytes();
    let n = descrip.len().min(79);
    hdr[148..148 + n].copy_from_slice(&descrip[..n]);
    put_i16(&mut hdr, 252, 1);
    put_i16(&mut hdr, 254, 1);
    for (i, v) in quat
        .iter()
        .chain(&[affine[0][3], affine[1][3], affine[2][3]])
        .enumerate()
    {
        put_f32(&mut hdr, 256 + 4 * i, *v);
    }
    for (r, row) in affine.iter().take(3).enumerate() {
        for (col, v) in row.iter().enumerate() {
            put_f32(&mut hdr, 280 + 16 * r + 4 * col, *v);
        }
    }
    hdr[344..348].copy_from_slice(b"n+1\0");
    let mut bytes = hdr;
    bytes.reserve(image.data.len() * 4);
    for v in &image.data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let gz = path.to_string_lossy().ends_with(".gz");
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        if gz {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(file),
                flate2::Compression::new(6),
            );
            enc.write_all(&bytes)?;
            enc.finish()?
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
        } else {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(file);
            f.write_all(&bytes)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// Quaternion (b, c, d) and qfac of a direction matrix (NIfTI's `mat44_to_quatern` for an
/// orthonormal matrix): an improper matrix has its third column flipped and qfac -1.
fn rotation_to_quaternion(m: &[[f64; 3]; 3]) -> ([f64; 3], f64) {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    let r = |i: usize, j: usize| if j == 2 { m[i][j] * qfac } else { m[i][j] };
    let a;
    let (mut b, mut c, mut d);
    let trace = r(0, 0) + r(1, 1) + r(2, 2) + 1.0;
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r(2, 1) - r(1, 2)) / a;
        c = 0.25 * (r(0, 2) - r(2, 0)) / a;
        d = 0.25 * (r(1, 0) - r(0, 1)) / a;
    } else {
        let xd = 1.0 + r(0, 0) - (r(1, 1) + r(2, 2));
        let yd = 1.0 + r(1, 1) - (r(0, 0) + r(2, 2));
        let zd = 1.0 + r(2, 2) - (r(0, 0) + r(1, 1));
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r(0, 1) + r(1, 0)) / b;
            d = 0.25 * (r(0, 2) + r(2, 0)) / b;
            a = 0.25 * (r(2, 1) - r(1, 2)) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r(0, 1) + r(1, 0)) / c;
            d = 0.25 * (r(1, 2) + r(2, 1)) / c;
            a = 0.25 * (r(0, 2) - r(2, 0)) / c;
        } else {
            d = 0.5 * zd.max(0.0).sqrt();
            b = 0.25 * (r(0, 2) + r(2, 0)) / d;
            c = 0.25 * (r(1, 2) + r(2, 1)) / d;
            a = 0.25 * (r(1, 0) - r(0, 1)) / d;
        }
        if a < 0.0 {
            (b, c, d) = (-b, -c, -d);
        }
    }
    ([b, c, d], qfac)
}
