//! Shared by the integration tests: where the manifests are, and reading them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

/// `SCARCE_DATA`, else `shared/data` beside the checkout; `None` (the test skips, saying
/// so) when neither exists.
pub fn data_root() -> Option<PathBuf> {
    let root = match std::env::var_os("SCARCE_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    if root.join("dicom/manifest.csv").is_file() || root.join("nifti/manifest.csv").is_file() {
        Some(root)
    } else {
        eprintln!("skipped: no shared data at {} (set SCARCE_DATA)", root.display());
        None
    }
}

/// Rows of a CSV manifest as column -> value maps.
pub fn read_manifest(path: &std::path::Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = r.headers().expect("manifest header").clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("manifest row");
            headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()
        })
        .collect()
}

/// A float column, `None` when empty.
pub fn num(row: &HashMap<String, String>, col: &str) -> Option<f64> {
    row.get(col).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or_else(|_| panic!("{col}: {s}")))
}

/// `|got - want| <= tol * max(|want|, 1)`.
pub fn close_rel(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1.0)
}
