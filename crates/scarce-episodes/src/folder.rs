//! Datasets from files: an image folder (one subfolder per class) and a CSV manifest
//! (path, label, and optionally patient, site, mask). PNG and JPEG are decoded here, DICOM
//! and NIfTI through scarce-io (modality LUT applied: CT in HU); every file problem is an
//! error naming the file (and the manifest row).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::resize::lanczos_u8;

/// How many channels samples get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Channels {
    /// Grey if the first image is grey, RGB otherwise.
    #[default]
    Auto,
    /// One channel (colour images are converted to luma).
    Grey,
    /// Three channels.
    Rgb,
}

/// How files become samples.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Channel count.
    pub channels: Channels,
    /// Resize every image to `(height, width)` with the Lanczos filter; without it all
    /// images must have one size.
    pub size: Option<(usize, usize)>,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Decoded pixels: 8-bit from PNG / JPEG, float intensities from DICOM / NIfTI.
enum Px {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// What kind of file `path` is, by name (and, for DICOM files without an extension, by
/// the `DICM` magic at byte 128).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Picture,
    Dicom,
    Nifti,
    Unknown,
}

fn kind_of(path: &Path) -> Kind {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Kind::Picture
    } else if [".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        Kind::Nifti
    } else if ext == "dcm" || ext == "dicom" || has_dicm_magic(path) {
        Kind::Dicom
    } else {
        Kind::Unknown
    }
}

fn has_dicm_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

/// Decodes one file to channels-first pixels: `[C, H, W]`, or `[C, D, H, W]` for a volume
/// (a NIfTI with depth > 1, a multi-frame DICOM).
fn read_image(
    path: &Path,
    channels: Channels,
    size: Option<(usize, usize)>,
) -> Result<(Px, Vec<usize>)> {
    match kind_of(path) {
        Kind::Picture => read_picture(path, channels, size).map(|(p, s)| (Px::U8(p), s.to_vec())),
        kind @ (Kind::Dicom | Kind::Nifti) => read_medical(path, kind, channels, size),
        Kind::Unknown => Err(Error::format(
            path,
            "no reader for this file: PNG, JPEG, DICOM (.dcm or the DICM magic) and NIfTI \
             (.nii, .nii.gz, .hdr/.img) are read",
        )),
    }
}

/// A DICOM / NIfTI file's float intensities after the modality LUT, `[C, D, H, W]`, through
/// scarce-io.
#[cfg(feature = "medical")]
fn decode_medical(path: &Path, kind: Kind) -> Result<([usize; 4], Vec<f32>)> {
    let image = match kind {
        Kind::Nifti => scarce_io::Nifti::open(path).map(|n| n.to_image()),
        _ => scarce_io::DicomFile::open(path)
            .and_then(|f| f.to_image(&scarce_io::dicom::ImageOptions::default())),
    }
    .map_err(|e| Error::format(path, e.to_string()))?;
    Ok((image.shape, image.data))
}

/// Without the `medical` feature there is no DICOM / NIfTI reader: say which feature adds it.
#[cfg(not(feature = "medical"))]
fn decode_medical(path: &Path, _kind: Kind) -> Result<([usize; 4], Vec<f32>)> {
    Err(Error::format(
        path,
        "DICOM and NIfTI files need scarce-episodes' `medical` feature (scarce-io)",
    ))
}

/// DICOM / NIfTI as float intensities after the modality LUT.
fn read_medical(
    path: &Path,
    kind: Kind,
    channels: Channels,
    size: Option<(usize, usize)>,
) -> Result<(Px, Vec<usize>)> {
    let ([c, d, h, w], data) = decode_medical(path, kind)?;
    if let Some((oh, ow)) = size.filter(|&s| s != (h, w)) {
        return Err(Error::format(
            path,
            format!(
                "is {h}x{w}; resizing DICOM / NIfTI intensities to {oh}x{ow} is scarce-augment's \
                 job (resample with geometry), not the loader's: give same-size files"
            ),
        ));
    }
    let plane = d * h * w;
    let data = match (channels, c) {
        (Channels::Grey, 3) => {
            // ITU-R 601 luma, as the PNG path converts colour to grey.
            (0..plane)
                .map(|i| 0.299 * data[i] + 0.587 * data[plane + i] + 0.114 * data[2 * plane + i])
                .collect()
        }
        (Channels::Rgb, 1) => data.repeat(3),
        _ => data,
    };
    let c = data.len() / plane.max(1);
    let shape = if d == 1 {
        vec![c, h, w]
    } else {
        vec![c, d, h, w]
    };
    Ok((Px::F32(data), shape))
}

/// Decodes one PNG / JPEG to channels-first 8-bit pixels.
fn read_picture(
    path: &Path,
    channels: Channels,
    size: Option<(usize, usize)>,
) -> Result<(Vec<u8>, [usize; 3])> {
    let img = image::open(path).map_err(|e| Error::format(path, format!("cannot decode: {e}")))?;
    let grey = match channels {
        Channels::Grey => true,
        Channels::Rgb => false,
        Channels::Auto => !img.color().has_color(),
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (c, planes) = if grey {
        (1, vec![img.to_luma8().into_raw()])
    } else {
        let rgb = img.to_rgb8().into_raw();
        (
            3,
            (0..3)
                .map(|k| rgb.iter().skip(k).step_by(3).copied().collect())
                .collect(),
        )
    };
    let (oh, ow) = size.unwrap_or((h, w));
    let mut out = Vec::with_capacity(c * oh * ow);
    for p in planes {
        if (oh, ow) == (h, w) {
            out.extend(p);
        } else {
            out.extend(
                lanczos_u8(&p, h, w, oh, ow).map_err(|e| Error::format(path, e.to_string()))?,
            );
        }
    }
    Ok((out, [c, oh, ow]))
}

/// Stacked samples: 8-bit when every file was a picture, float otherwise.
enum Stacked {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// Decodes many files in parallel and stacks them; all must end up one shape.
fn stack(
    files: &[PathBuf],
    opts: ReadOptions,
    row_error: impl Fn(usize, Error) -> Error + Sync,
) -> Result<(Stacked, Vec<usize>)> {
    let channels = match (opts.channels, files.first()) {
        (Channels::Auto, Some(first)) => {
            let probe = if kind_of(first) == Kind::Picture {
                Some((1, 1))
            } else {
                None
            };
            let (_, shape) =
                read_image(first, Channels::Auto, probe).map_err(|e| row_error(0, e))?;
            if shape[0] == 1 {
                Channels::Grey
            } else {
                Channels::Rgb
            }
        }
        (c, _) => c,
    };
    let decoded: Vec<(Px, Vec<usize>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| read_image(f, channels, opts.size).map_err(|e| row_error(i, e)))
        .collect::<Result<_>>()?;
    let shape = decoded
        .first()
        .map(|d| d.1.clone())
        .unwrap_or(vec![1, 1, 1]);
    let all_u8 = decoded.iter().all(|(p, _)| matches!(p, Px::U8(_)));
    let mut bytes = Vec::new();
    let mut floats = Vec::new();
    for (i, (p, s)) in decoded.into_iter().enumerate() {
        if s != shape {
            return Err(row_error(
                i,
                Error::format(
                    &files[i],
                    format!("image is {s:?} but the first is {shape:?}; samples must share one shape (pictures can be resized with `size`)"),
                ),
            ));
        }
        match (p, all_u8) {
            (Px::U8(v), true) => bytes.extend(v),
            (Px::U8(v), false) => floats.extend(v.into_iter().map(f32::from)),
            (Px::F32(v), _) => floats.extend(v),
        }
    }
    let stacked = if all_u8 {
        Stacked::U8(bytes)
    } else {
        Stacked::F32(floats)
    };
    Ok((stacked, shape))
}

/// A dataset from stacked samples.
fn dataset(name: &str, shape: &[usize], stacked: Stacked, labels: Vec<usize>) -> Result<Dataset> {
    match stacked {
        Stacked::U8(p) => Dataset::from_u8(name, shape, p, labels),
        Stacked::F32(p) => Dataset::from_f32(name, shape, p, labels),
    }
}

/// Label-map masks as 8-bit labels: pictures as they are, DICOM / NIfTI masks when every
/// value is an integer in 0..=255.
fn mask_bytes(stacked: Stacked, manifest: &Path) -> Result<Vec<u8>> {
    match stacked {
        Stacked::U8(m) => Ok(m),
        Stacked::F32(m) => m
            .into_iter()
            .map(|v| {
                (v.fract() == 0.0 && (0.0..=255.0).contains(&v))
                    .then_some(v as u8)
                    .ok_or_else(|| {
                        Error::format(
                            manifest,
                            format!("mask value {v} is not a label in 0..=255"),
                        )
                    })
            })
            .collect(),
    }
}

/// Loads an image folder: each subfolder of `root` is a class (sorted by name), each
/// PNG / JPEG / DICOM / NIfTI file in it a sample (sorted by name). Hidden files are
/// skipped. Pictures give 8-bit samples; any DICOM or NIfTI makes the dataset float.
pub fn load_image_folder(root: &Path, opts: ReadOptions) -> Result<Dataset> {
    let listing = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        entries.sort();
        Ok(entries)
    };
    let mut class_names = Vec::new();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for dir in listing(root)?.into_iter().filter(|p| p.is_dir()) {
        let c = class_names.len();
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        class_names.push(name.unwrap_or_default());
        for f in listing(&dir)?.into_iter().filter(|p| p.is_file()) {
            files.push(f);
            labels.push(c);
        }
    }
    if files.is_empty() {
        return Err(Error::Empty(root.display().to_string()));
    }
    let (pixels, shape) = stack(&files, opts, |_, e| e)?;
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dataset(&name, &shape, pixels, labels)?.with_class_names(class_names)
}

/// Loads a CSV manifest with a header row naming at least `path` and `label`, and
/// optionally `patient`, `site` and `mask` (a label-map image of the same size). Paths are
/// relative to the manifest's folder. Classes are the distinct labels, sorted
/// (numerically when all are integers).
pub fn load_manifest(manifest: &Path, opts: ReadOptions) -> Result<Dataset> {
    let row_err = |row: usize, reason: String| Error::ManifestRow {
        manifest: manifest.to_path_buf(),
        row,
        reason,
    };
    let mut reader = csv::Reader::from_path(manifest)
        .map_err(|e| Error::format(manifest, format!("cannot read CSV: {e}")))?;
    let header = reader
        .headers()
        .map_err(|e| Error::format(manifest, format!("no header row: {e}")))?
        .clone();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(path_col), Some(label_col)) = (col("path"), col("label")) else {
        return Err(Error::format(
            manifest,
            "the header must name `path` and `label` columns",
        ));
    };
    let (patient_col, site_col, mask_col) = (col("patient"), col("site"), col("mask"));
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let mut masks = Vec::new();
    let mut label_text = Vec::new();
    let mut patients = Vec::new();
    let mut sites = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let row = i + 1;
        let rec = rec.map_err(|e| row_err(row, e.to_string()))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(|v| v.trim().to_string());
        let file = base.join(get(Some(path_col)).unwrap_or_default());
        if !file.is_file() {
            return Err(row_err(
                row,
                format!("file {} does not exist", file.display()),
            ));
        }
        let label = get(Some(label_col)).unwrap_or_default();
        if label.is_empty() {
            return Err(row_err(row, "empty label".into()));
        }
        if let Some(m) = get(mask_col).filter(|m| !m.is_empty()) {
            let m = base.join(m);
            if !m.is_file() {
                return Err(row_err(row, format!("mask {} does not exist", m.display())));
            }
            masks.push(m);
        }
        files.push(file);
        label_text.push(label);
        patients.push(get(patient_col).unwrap_or_default());
        sites.push(get(site_col).unwrap_or_default());
    }
    if files.is_empty() {
        return Err(Error::Empty(manifest.display().to_string()));
    }
    if !masks.is_empty() && masks.len() != files.len() {
        return Err(Error::format(
            manifest,
            "either every row has a mask or none has",
        ));
    }
    let distinct: BTreeSet<&String> = label_text.iter().collect();
    let mut class_names: Vec<String> = distinct.into_iter().cloned().collect();
    let numeric: Option<Vec<i64>> = class_names.iter().map(|l| l.parse().ok()).collect();
    if let Some(values) = numeric {
        let mut paired: Vec<(i64, String)> = values.into_iter().zip(class_names).collect();
        paired.sort();
        class_names = paired.into_iter().map(|(_, name)| name).collect();
    }
    let class_of: std::collections::HashMap<&str, usize> = class_names
        .iter()
        .enumerate()
        .map(|(c, name)| (name.as_str(), c))
        .collect();
    let labels = label_text.iter().map(|l| class_of[l.as_str()]).collect();
    let row_error = |i: usize, e: Error| row_err(i + 1, e.to_string());
    let (pixels, shape) = stack(&files, opts, row_error)?;
    let mut ds = dataset(
        manifest
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("manifest"),
        &shape,
        pixels,
        labels,
    )?
    .with_class_names(class_names)?;
    if !masks.is_empty() {
        let mask_opts = ReadOptions {
            channels: Channels::Grey,
            size: None,
        };
        let (m, mshape) = stack(&masks, mask_opts, row_error)?;
        if mshape[1..] != shape[1..] {
            return Err(Error::format(
                manifest,
                format!("masks are {mshape:?}, images {shape:?}"),
            ));
        }
        ds = ds.with_masks(mask_bytes(m, manifest)?)?;
    }
    if patient_col.is_some() {
        ds = ds.with_groups(patients)?;
    }
    if site_col.is_some() {
        ds = ds.with_sites(sites)?;
    }
    Ok(ds)
}
