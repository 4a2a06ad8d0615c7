//! Every row of `shared/data/nifti/manifest.csv` (nibabel's reading of each file): shape,
//! affine to 1e-5, scaled min / max / mean to 1e-6 relative and the sha256 of the scaled
//! float64 array; files nibabel could not load must give errors. Also a write / read round
//! trip for each loadable file.

mod common;

use common::{close_rel, data_root, num, read_manifest};
use scarce_io::{write_nifti, Nifti};
use sha2::{Digest, Sha256};

fn parse_matrix(s: &str) -> Vec<f64> {
    s.chars()
        .filter(|c| !matches!(c, '[' | ']'))
        .collect::<String>()
        .split(',')
        .map(|v| v.trim().parse().expect("affine number"))
        .collect()
}

#[test]
fn nifti_matches_nibabel() {
    let Some(root) = data_root() else { return };
    let dir = root.join("nifti");
    let rows = read_manifest(&dir.join("manifest.csv"));
    let (mut headers, mut loaded, mut refused) = (0, 0, 0);
    let mut failures = Vec::new();
    let tmp = std::env::temp_dir().join(format!("scarce-io-nifti-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    for row in &rows {
        let file = &row["file"];
        let path = dir.join(file);
        if !row["format"].is_empty() {
            match Nifti::read_header(&path) {
                Ok(h) => {
                    headers += 1;
                    let shape: Vec<String> = h.shape.iter().map(|d| d.to_string()).collect();
                    if shape.join("x") != row["shape"] {
                        failures.push(format!(
                            "{file}: shape {} vs {}",
                            shape.join("x"),
                            row["shape"]
                        ));
                    }
                    let want = parse_matrix(&row["affine_4x4"]);
                    let got: Vec<f64> = h.affine().iter().flatten().copied().collect();
                    if got.iter().zip(&want).any(|(g, w)| (g - w).abs() > 1e-5) {
                        failures.push(format!("{file}: affine {got:?} vs {want:?}"));
                    }
                }
                Err(e) => failures.push(format!("{file}: header: {e}")),
            }
        }
        let result = Nifti::open(&path);
        if !row["error"].is_empty() || row["raw_dtype"].is_empty() {
            match result {
                Err(e) => {
                    refused += 1;
                    println!("{file}: nibabel: {}; ours: {e}", row["error"]);
                }
                Ok(_) => failures.push(format!(
                    "{file}: nibabel failed ({}) but we loaded it",
                    row["error"]
                )),
            }
            continue;
        }
        let img = match result {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let scaled = img.scaled();
        let stats = scarce_io::samples::stats_of(scaled.iter().copied());
        let want = [
            num(row, "fdata_min"),
            num(row, "fdata_max"),
            num(row, "fdata_mean"),
        ]
        .map(|v| v.unwrap_or(f64::NAN));
        if !(close_rel(stats.min, want[0], 1e-6)
            && close_rel(stats.max, want[1], 1e-6)
            && close_rel(stats.mean, want[2], 1e-6))
        {
            failures.push(format!("{file}: scaled stats {stats:?} vs {want:?}"));
        }
        if stats.nan_count as f64 != num(row, "fdata_nan_count").unwrap_or(0.0) {
            failures.push(format!(
                "{file}: {} NaNs vs {}",
                stats.nan_count, row["fdata_nan_count"]
            ));
        }
        // nibabel's array is Fortran-ordered; `tobytes()` hashes it in C order (last axis
        // fastest), so transpose our first-axis-fastest data before hashing.
        let shape = &img.header.shape;
        let mut bytes = Vec::with_capacity(scaled.len() * 8);
        let n = scaled.len();
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let mut offset = 0;
            let mut stride = 1;
            for (k, &d) in shape.iter().enumerate() {
                offset += idx[k] * stride;
                stride *= d;
            }
            bytes.extend_from_slice(&scaled[offset].to_le_bytes());
            for k in (0..shape.len()).rev() {
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if sha != row["fdata_sha256_f64le"] {
            failures.push(format!("{file}: fdata sha256 differs"));
        }
        loaded += 1;
        // Round trip through our writer: same values (as float32) and the same affine (as
        // float32), read back by our reader.
        let image = img.to_image();
        // With SCARCE_KEEP_WRITTEN=DIR the written files stay in DIR, named after their
        // source, for `scripts/nibabel_reads_written.py` to read back with nibabel.
        let out = match std::env::var_os("SCARCE_KEEP_WRITTEN") {
            Some(d) => std::path::PathBuf::from(d).join(file.replace('/', "__")),
            None => tmp.join(format!("{loaded}.nii.gz")),
        };
        let out = if out.to_string_lossy().ends_with(".gz") {
            out
        } else {
            out.with_extension("nii.gz")
        };
        match write_nifti(&out, &image).and_then(|_| Nifti::open(&out)) {
            Ok(back) => {
                let again = back.to_image();
                // Bit for bit: NaN voxels compare unequal to themselves as floats.
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                if again.shape != image.shape {
                    failures.push(format!(
                        "{file}: round trip changed the shape {:?} -> {:?}",
                        image.shape, again.shape
                    ));
                } else if bits(&again.data) != bits(&image.data) {
                    let at = (0..image.data.len())
                        .find(|&i| again.data[i].to_bits() != image.data[i].to_bits())
                        .unwrap_or(0);
                    failures.push(format!(
                        "{file}: round trip changed the data (first at voxel {at}: {} -> {})",
                        image.data[at], again.data[at]
                    ));
                }
                let (a, b) = (image.affine(), back.header.affine());
                let qa = back.header.qform();
                for r in 0..3 {
                    for c in 0..4 {
                        if (a[r][c] - b[r][c]).abs() > 1e-4 * a[r][c].abs().max(1.0) {
                            failures.push(format!("{file}: round-trip sform {b:?} vs {a:?}"));
                        }
                        // The qform is a float32 quaternion whose real part is recovered by a
                        // square root: near a half-turn that loses ~1e-4, for nibabel too.
                        if (a[r][c] - qa[r][c]).abs() > 5e-4 * a[r][c].abs().max(1.0) {
                            failures.push(format!("{file}: round-trip qform {qa:?} vs {a:?}"));
                        }
                    }
                }
            }
            Err(e) => failures.push(format!("{file}: round trip: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!("NIfTI: {} rows, {headers} headers checked, {loaded} volumes reproduced, {refused} refused as nibabel refused them", rows.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
