//! Every row of `shared/data/dicom/manifest.csv` (pydicom's decode of each file) and every
//! group of `identical_pixel_groups.csv`. Prints how many files were checked and decoded.

mod common;

use std::collections::HashMap;

use common::{close_rel, data_root, num, read_manifest};
use scarce_io::dicom::lut::LutScope;
use scarce_io::DicomFile;
use sha2::{Digest, Sha256};

/// Transfer syntaxes whose decode must reproduce pydicom's array bit for bit.
fn lossless(uid: &str) -> bool {
    !matches!(
        uid,
        "1.2.840.10008.1.2.4.50"
            | "1.2.840.10008.1.2.4.51"
            | "1.2.840.10008.1.2.4.81"
            | "1.2.840.10008.1.2.4.91"
            | "1.2.840.10008.1.2.4.203"
    )
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn dicom_matches_pydicom() {
    let Some(root) = data_root() else { return };
    let dir = root.join("dicom");
    let rows = read_manifest(&dir.join("manifest.csv"));
    let (mut with_pixels, mut decoded, mut failures) = (0, 0, Vec::new());
    let mut hashes = HashMap::new();
    for row in &rows {
        let file = &row["file"];
        let status = &row["decode_status"];
        let result = DicomFile::open(dir.join(file)).and_then(|f| {
            let px = f.pixels()?;
            Ok((f, px))
        });
        if !status.starts_with("ok") {
            // pydicom could not decode it (or there is no pixel data): we must give an error,
            // or a decode that another row shows correct (an identical-pixel group).
            if status != "no_pixel_data" {
                match &result {
                    Err(e) => println!("{file}: pydicom {status}; ours: {e}"),
                    Ok((_, px)) => {
                        hashes.insert(file.clone(), sha_hex(&px.samples.to_le_bytes()));
                        println!("{file}: pydicom {status}; ours decoded {:?}", px.numpy_shape())
                    }
                }
            } else if let Ok((_, px)) = &result {
                failures.push(format!("{file}: no pixel data per pydicom, but we decoded {:?}", px.numpy_shape()));
            }
            continue;
        }
        with_pixels += 1;
        let (f, px) = match result {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let shape: Vec<String> = px.numpy_shape().iter().map(|d| d.to_string()).collect();
        if shape.join("x") != row["raw_shape"] {
            failures.push(format!("{file}: shape {} vs {}", shape.join("x"), row["raw_shape"]));
            continue;
        }
        let want_dtype = row["raw_dtype"].trim_start_matches(['>', '<', '=']);
        let want_dtype = match want_dtype {
            "u2" => "uint16",
            "i2" => "int16",
            "u4" => "uint32",
            "i4" => "int32",
            d => d,
        };
        if px.samples.dtype().name() != want_dtype {
            failures.push(format!("{file}: dtype {} vs {}", px.samples.dtype().name(), row["raw_dtype"]));
            continue;
        }
        let sha = sha_hex(&px.samples.to_le_bytes());
        hashes.insert(file.clone(), sha.clone());
        let stats = px.samples.stats();
        let uid = f.transfer_syntax_uid();
        if lossless(uid) {
            if sha != row["raw_sha256"] {
                failures.push(format!("{file} ({}): raw sha256 differs; min/max/mean {:?} vs {}/{}/{}", row["transfer_syntax_name"], stats, row["raw_min"], row["raw_max"], row["raw_mean"]));
                continue;
            }
        } else {
            let tol = num(row, "plugins_max_abs_diff").unwrap_or(0.0) + 1.0;
            let ok = [(stats.min, "raw_min"), (stats.max, "raw_max"), (stats.mean, "raw_mean")]
                .iter()
                .all(|(got, col)| (got - num(row, col).unwrap_or(f64::NAN)).abs() <= tol);
            if !ok {
                failures.push(format!("{file} (lossy): stats {stats:?} vs {}/{}/{} beyond {tol}", row["raw_min"], row["raw_max"], row["raw_mean"]));
                continue;
            }
        }
        // Modality LUT: the data-set transform against pydicom's apply_modality_lut, the
        // functional-group transform against the manifest's fg_rescale columns.
        let checks = [(LutScope::DataSet, "lut"), (LutScope::Frames, "fg_rescale")];
        let mut lut_ok = true;
        for (scope, prefix) in checks {
            let Some(want_min) = num(row, &format!("{prefix}_min")) else { continue };
            let out = match f.modality_lut(&px, scope) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{file}: modality LUT: {e}"));
                    lut_ok = false;
                    break;
                }
            };
            let s = out.stats();
            let tol = if lossless(uid) { 1e-6 } else { 1e-6 + (num(row, "plugins_max_abs_diff").unwrap_or(0.0) + 1.0) * 4096.0 };
            let want = [want_min, num(row, &format!("{prefix}_max")).unwrap_or(f64::NAN), num(row, &format!("{prefix}_mean")).unwrap_or(f64::NAN)];
            if !(close_rel(s.min, want[0], tol) && close_rel(s.max, want[1], tol) && close_rel(s.mean, want[2], tol)) {
                failures.push(format!("{file}: {prefix} stats {s:?} vs {want:?}"));
                lut_ok = false;
            }
        }
        if lut_ok {
            decoded += 1;
        }
    }
    // Identical-pixel groups: every member decodes to the group's hash.
    let groups = read_manifest(&dir.join("identical_pixel_groups.csv"));
    let mut group_members = 0;
    for g in &groups {
        if let Some(h) = hashes.get(&g["file"]) {
            group_members += 1;
            if *h != g["raw_sha256"] {
                failures.push(format!("{}: not identical to group {}", g["file"], g["group"]));
            }
        }
    }
    println!(
        "DICOM: {} rows, {with_pixels} decoded by pydicom, {decoded} of them reproduced; {group_members}/{} identical-group members checked",
        rows.len(),
        groups.len()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
