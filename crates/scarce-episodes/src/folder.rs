//! Datasets from files: an image folder (one subfolder per class) and a CSV manifest
//! (path, label, and optionally patient, site, mask). PNG and JPEG are decoded here; every
//! file problem is an error naming the file (and the manifest row).

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

/// Decodes one image to channels-first 8-bit pixels.
fn read_image(
    path: &Path,
    channels: Channels,
    size: Option<(usize, usize)>,
) -> Result<(Vec<u8>, [usize; 3])> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        return Err(Error::format(
            path,
            format!(
                "no reader for `.{ext}` files: this version reads PNG and JPEG (DICOM and NIfTI \
                 arrive with scarce-io)"
            ),
        ));
    }
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
            out.extend(lanczos_u8(&p, h, w, oh, ow));
        }
    }
    Ok((out, [c, oh, ow]))
}

/// Decodes many files in parallel and stacks them; all must end up one shape.
fn stack(
    files: &[PathBuf],
    opts: ReadOptions,
    row_error: impl Fn(usize, Error) -> Error + Sync,
) -> Result<(Vec<u8>, [usize; 3])> {
    let channels = match (opts.channels, files.first()) {
        (Channels::Auto, Some(first)) => {
            let (_, [c, _, _]) =
                read_image(first, Channels::Auto, Some((1, 1))).map_err(|e| row_error(0, e))?;
            if c == 1 {
                Channels::Grey
            } else {
                Channels::Rgb
            }
        }
        (c, _) => c,
    };
    let decoded: Vec<(Vec<u8>, [usize; 3])> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| read_image(f, channels, opts.size).map_err(|e| row_error(i, e)))
        .collect::<Result<_>>()?;
    let shape = decoded.first().map(|d| d.1).unwrap_or([1, 1, 1]);
    let mut pixels = Vec::with_capacity(decoded.len() * shape.iter().product::<usize>());
    for (i, (p, s)) in decoded.into_iter().enumerate() {
        if s != shape {
            return Err(row_error(
                i,
                Error::format(
                    &files[i],
                    format!("image is {s:?} but the first is {shape:?}; pass a size to resize"),
                ),
            ));
        }
        pixels.extend(p);
    }
    Ok((pixels, shape))
}

/// Loads an image folder: each subfolder of `root` is a class (sorted by name), each
/// PNG/JPEG file in it a sample (sorted by name). Hidden files are skipped.
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
    Dataset::from_u8(&name, &shape, pixels, labels)?.with_class_names(class_names)
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
    let mut ds = Dataset::from_u8(
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
        ds = ds.with_masks(m)?;
    }
    if patient_col.is_some() {
        ds = ds.with_groups(patients)?;
    }
    if site_col.is_some() {
        ds = ds.with_sites(sites)?;
    }
    Ok(ds)
}
