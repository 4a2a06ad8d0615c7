//! Shared by the integration tests: where the manifests are, and reading them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

/// `SCARCE_DATA`, else `shared/data` beside the checkout (the full sets), else the
/// repository's `data/` (the vendored subset, same layout and manifest columns).
pub fn data_root() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = match std::env::var_os("SCARCE_DATA") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![here.join("../../../shared/data"), here.join("../../data")],
    };
    let found = candidates
        .into_iter()
        .find(|r| r.join("dicom/manifest.csv").is_file());
    match &found {
        Some(r) => println!("data root: {}", r.display()),
        None => eprintln!("skipped: no data root with dicom/manifest.csv (set SCARCE_DATA)"),
    }
    found
}

/// The vendored data (`data/` in the repository), always present.
pub fn vendored() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// Rows of a CSV manifest as column -> value maps.
pub fn read_manifest(path: &std::path::Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = r.headers().expect("manifest header").clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("manifest row");
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A float column, `None` when empty.
pub fn num(row: &HashMap<String, String>, col: &str) -> Option<f64> {
    row.get(col)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{col}: {s}")))
}

/// `|got - want| <= tol * max(|want|, 1)`.
pub fn close_rel(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1.0)
}
