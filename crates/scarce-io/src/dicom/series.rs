//! A DICOM series -> one volume. Files come from a folder (walked recursively) or a DICOMDIR;
//! slices are grouped by SeriesInstanceUID, ordered by ImagePositionPatient projected on the
//! slice normal, and must share orientation, size and an even spacing: a gap, a duplicate
//! position or a tilted slice is an error naming the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;

use super::attrs::opt_str;
use super::geometry::{cross, dot, plane, volume_geometry};
use super::image::ImageOptions;
use super::DicomFile;
use crate::error::{Error, Result};
use crate::image::{Image, Metadata};

/// One series found in a folder or DICOMDIR.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSummary {
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// Modality, if given.
    pub modality: Option<String>,
    /// SeriesDescription, if given.
    pub description: Option<String>,
    /// The files with pixel data, in the order found.
    pub files: Vec<PathBuf>,
}

fn series_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Series {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The files a folder (recursively, sorted) or a DICOMDIR (its IMAGE records) names.
fn candidate_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        let dir = DicomFile::open(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let records = dir
            .dataset()
            .get(tags::DIRECTORY_RECORD_SEQUENCE)
            .and_then(|e| e.items())
            .ok_or_else(|| series_err(path, "not a DICOMDIR (no DirectoryRecordSequence)"))?;
        let mut files = Vec::new();
        for rec in records {
            let Some(id) = rec
                .get(tags::REFERENCED_FILE_ID)
                .and_then(|e| e.to_multi_str().ok())
            else {
                continue;
            };
            let mut p = base.to_path_buf();
            for part in id.iter() {
                let part = part.trim();
                if part.is_empty() || part == ".." || part.contains(['/', '\\']) {
                    return Err(series_err(
                        path,
                        format!("ReferencedFileID {id:?} leaves the DICOMDIR's folder"),
                    ));
                }
                p.push(part);
            }
            files.push(p);
        }
        return Ok(files);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| crate::error::io_err(&dir, e))?;
        let mut here: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        here.sort();
        for p in here {
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "DICOMDIR") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Opens every candidate that parses as DICOM and has pixel data, grouped by series.
/// Files that are not DICOM at all are skipped (folders hold README files); a file that is
/// DICOM but broken is an error.
fn open_series(path: &Path) -> Result<BTreeMap<String, Vec<DicomFile>>> {
    let mut groups: BTreeMap<String, Vec<DicomFile>> = BTreeMap::new();
    for f in candidate_files(path)? {
        let file = match DicomFile::open(&f) {
            Ok(file) => file,
            Err(Error::DicomParse { .. }) => continue,
            Err(e) => return Err(e),
        };
        if file.attributes()?.is_none() {
            continue;
        }
        let uid = opt_str(file.dataset(), tags::SERIES_INSTANCE_UID).unwrap_or_default();
        groups.entry(uid).or_default().push(file);
    }
    Ok(groups)
}

/// The series in a folder or DICOMDIR.
pub fn list_series(path: impl AsRef<Path>) -> Result<Vec<SeriesSummary>> {
    let groups = open_series(path.as_ref())?;
    Ok(groups
        .into_iter()
        .map(|(uid, files)| {
            let meta = files.first().map(|f| f.metadata()).unwrap_or_default();
            SeriesSummary {
                series_uid: uid,
                modality: meta.modality,
                description: meta.description,
                files: files.iter().map(|f| f.path().to_path_buf()).collect(),
            }
        })
        .collect())
}

/// Loads one series as a volume `[1, slices, rows, columns]`. With `series_uid = None` the
/// folder must hold exactly one series.
pub fn load_series(
    path: impl AsRef<Path>,
    series_uid: Option<&str>,
    opts: &ImageOptions,
) -> Result<Image> {
    let path = path.as_ref();
    let mut groups = open_series(path)?;
    let files = match series_uid {
        Some(uid) => groups
            .remove(uid)
            .ok_or_else(|| series_err(path, format!("no series {uid}")))?,
        None if groups.len() == 1 => groups.into_values().next().unwrap_or_default(),
        None if groups.is_empty() => return Err(series_err(path, "no DICOM images found")),
        None => {
            let uids: Vec<&String> = groups.keys().collect();
            return Err(series_err(
                path,
                format!("{} series found, name one: {uids:?}", uids.len()),
            ));
        }
    };
    assemble(path, files, opts)
}

/// Orders, checks and stacks the slices of one series.
pub fn assemble(path: &Path, files: Vec<DicomFile>, opts: &ImageOptions) -> Result<Image> {
    let mut slices = Vec::with_capacity(files.len());
    for f in files {
        let a = f
            .attributes()?
            .ok_or_else(|| series_err(f.path(), "has no pixel data"))?;
        if a.frames != 1 || a.samples_per_pixel != 1 {
            return Err(series_err(
                f.path(),
                format!("{} frames x {} samples: a series takes single-frame grey slices; open the file alone", a.frames, a.samples_per_pixel),
            ));
        }
        let p = plane(f.dataset(), f.path(), 0)?.ok_or_else(|| {
            series_err(
                f.path(),
                "no ImagePositionPatient / ImageOrientationPatient",
            )
        })?;
        slices.push((f, a, p));
    }
    let Some((first_file, first_attr, first)) = slices.first() else {
        return Err(series_err(path, "no slices"));
    };
    let (first_path, first_attr, first) = (
        first_file.path().to_path_buf(),
        first_attr.clone(),
        first.clone(),
    );
    let normal = cross(first.row_dir, first.col_dir);
    for (f, a, p) in &slices {
        if (a.rows, a.columns) != (first_attr.rows, first_attr.columns) {
            return Err(series_err(
                f.path(),
                format!(
                    "{}x{} slice in a {}x{} series",
                    a.columns, a.rows, first_attr.columns, first_attr.rows
                ),
            ));
        }
        let same = (0..3).all(|k| {
            (p.row_dir[k] - first.row_dir[k]).abs() < 1e-4
                && (p.col_dir[k] - first.col_dir[k]).abs() < 1e-4
        });
        if !same {
            return Err(series_err(
                f.path(),
                format!(
                    "orientation {:?}/{:?} differs from {}'s",
                    p.row_dir,
                    p.col_dir,
                    first_path.display()
                ),
            ));
        }
    }
    slices.sort_by(|a, b| dot(a.2.position, normal).total_cmp(&dot(b.2.position, normal)));
    let along: Vec<f64> = slices.iter().map(|s| dot(s.2.position, normal)).collect();
    let steps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
    let step = if steps.is_empty() {
        slices[0].2.slice_spacing.unwrap_or(1.0)
    } else {
        let mut sorted = steps.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let tol = (0.01 * step.abs()).max(1e-3);
    for (i, s) in steps.iter().enumerate() {
        if *s < tol {
            return Err(series_err(
                slices[i + 1].0.path(),
                format!(
                    "same position as {} (duplicate slice)",
                    slices[i].0.path().display()
                ),
            ));
        }
        if (s - step).abs() > tol {
            return Err(series_err(
                slices[i + 1].0.path(),
                format!("{s:.4} mm from {}, the series' spacing is {step:.4} mm (a gap or uneven slices)", slices[i].0.path().display()),
            ));
        }
    }
    let (rows, cols) = (first_attr.rows as usize, first_attr.columns as usize);
    let mut data = Vec::with_capacity(slices.len() * rows * cols);
    for (f, _, _) in &slices {
        let (_, values) = f.values(f.pixels()?, opts)?;
        data.extend_from_slice(&values);
    }
    let (spacing, origin, direction) = volume_geometry(&slices[0].2, step);
    let meta = Metadata {
        format: "dicom-series".into(),
        ..slices[0].0.metadata()
    };
    Ok(Image {
        data,
        shape: [1, slices.len(), rows, cols],
        spacing,
        origin,
        direction,
        meta,
    })
}
