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
        .iter()
        .find(|r| r.join("dicom/manifest.csv").is_file());
    match &found {
        Some(r) => println!("data root: {}", r.display()),
        None if required() => panic!(
            "no data root with dicom/manifest.csv among {candidates:?}, and data is required \
             here (CI or SCARCE_REQUIRE_FIXTURES=1): set SCARCE_DATA"
        ),
        None => println!(
            "SKIP: no data root with dicom/manifest.csv among {candidates:?} (set SCARCE_DATA)"
        ),
    }
    found.cloned()
}

/// Whether missing data must fail instead of skipping: under CI (`CI` set to anything but
/// `false` / `0`) or with `SCARCE_REQUIRE_FIXTURES=1`, the rule of
/// `scarce_fixtures::required` (scarce-io has no dependency on scarce-core).
pub fn required() -> bool {
    let on = |k: &str| {
        std::env::var(k).is_ok_and(|v| {
            let v = v.trim();
            !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
        })
    };
    on("CI") || on("SCARCE_REQUIRE_FIXTURES")
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
