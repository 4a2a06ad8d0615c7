//! Where a DICOM image sits in the patient: Image Plane module attributes (top level or in
//! the functional groups of enhanced objects), converted from DICOM's LPS to RAS.

use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::attrs::opt_floats;
use crate::error::Result;

/// Plane geometry of one frame, in LPS as DICOM stores it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plane {
    /// Unit vector along a row (increasing column index) and along a column (increasing
    /// row index).
    pub row_dir: [f64; 3],
    pub col_dir: [f64; 3],
    /// Centre of the first voxel.
    pub position: [f64; 3],
    /// Spacing between columns (along `row_dir`) and between rows (along `col_dir`).
    pub col_spacing: f64,
    pub row_spacing: f64,
    /// SpacingBetweenSlices, else SliceThickness, if given.
    pub slice_spacing: Option<f64>,
}

fn item(obj: &InMemDicomObject, tag: Tag, i: usize) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.get(i)
}

/// An attribute from the top level, else from the frame's functional group `macro_seq`.
fn find(
    obj: &InMemDicomObject,
    path: &Path,
    frame: usize,
    macro_seq: Tag,
    tag: Tag,
    name: &'static str,
) -> Result<Option<Vec<f64>>> {
    if let Some(v) = opt_floats(obj, path, tag, name)? {
        return Ok(Some(v));
    }
    for (group, i) in [
        (tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame),
        (tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0),
    ] {
        if let Some(m) = item(obj, group, i).and_then(|g| item(g, macro_seq, 0)) {
            if let Some(v) = opt_floats(m, path, tag, name)? {
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The plane of frame `frame`; `None` when the file gives no orientation or position
/// (secondary captures, say).
pub(crate) fn plane(obj: &InMemDicomObject, path: &Path, frame: usize) -> Result<Option<Plane>> {
    let orient = find(
        obj,
        path,
        frame,
        tags::PLANE_ORIENTATION_SEQUENCE,
        tags::IMAGE_ORIENTATION_PATIENT,
        "ImageOrientationPatient",
    )?;
    let pos = find(
        obj,
        path,
        frame,
        tags::PLANE_POSITION_SEQUENCE,
        tags::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
    )?;
    let (Some(o), Some(p)) = (orient, pos) else {
        return Ok(None);
    };
    let (&[r0, r1, r2, c0, c1, c2], &[p0, p1, p2]) = (o.as_slice(), p.as_slice()) else {
        return Ok(None);
    };
    let spacing = find(
        obj,
        path,
        frame,
        tags::PIXEL_MEASURES_SEQUENCE,
        tags::PIXEL_SPACING,
        "PixelSpacing",
    )?;
    let (row_spacing, col_spacing) = match spacing.as_deref() {
        Some(&[r, c]) if r > 0.0 && c > 0.0 => (r, c),
        _ => (1.0, 1.0),
    };
    let between = find(
        obj,
        path,
        frame,
        tags::PIXEL_MEASURES_SEQUENCE,
        tags::SPACING_BETWEEN_SLICES,
        "SpacingBetweenSlices",
    )?;
    let thickness = find(
        obj,
        path,
        frame,
        tags::PIXEL_MEASURES_SEQUENCE,
        tags::SLICE_THICKNESS,
        "SliceThickness",
    )?;
    let slice_spacing = between
        .or(thickness)
        .and_then(|v| v.first().copied())
        .filter(|s| *s > 0.0);
    let unit = |v: [f64; 3]| {
        let n = dot(v, v).sqrt();
        if n > 0.0 {
            [v[0] / n, v[1] / n, v[2] / n]
        } else {
            v
        }
    };
    Ok(Some(Plane {
        row_dir: unit([r0, r1, r2]),
        col_dir: unit([c0, c1, c2]),
        position: [p0, p1, p2],
        col_spacing,
        row_spacing,
        slice_spacing,
    }))
}

/// LPS -> RAS: negate x and y (adding 0.0 turns -0.0 into 0.0).
pub(crate) fn lps_to_ras(v: [f64; 3]) -> [f64; 3] {
    [-v[0] + 0.0, -v[1] + 0.0, v[2] + 0.0]
}

/// Spacing, origin and direction (RAS) for a stack of planes with the given first plane,
/// slice step (signed distance along the normal) and slice count.
pub(crate) fn volume_geometry(
    first: &Plane,
    slice_step: f64,
) -> ([f64; 3], [f64; 3], [[f64; 3]; 3]) {
    let normal = cross(first.row_dir, first.col_dir);
    let k_dir = if slice_step < 0.0 {
        normal.map(|x| -x)
    } else {
        normal
    };
    let cols = [
        lps_to_ras(first.row_dir),
        lps_to_ras(first.col_dir),
        lps_to_ras(k_dir),
    ];
    let mut direction = [[0.0; 3]; 3];
    for (c, v) in cols.iter().enumerate() {
        for r in 0..3 {
            direction[r][c] = v[r];
        }
    }
    (
        [first.col_spacing, first.row_spacing, slice_step.abs()],
        lps_to_ras(first.position),
        direction,
    )
}
