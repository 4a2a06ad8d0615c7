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
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the optional decoder behind `feature` is compiled into this build.
fn compiled(feature: &str) -> bool {
    let optional = [
        ("jpeg-ls", cfg!(feature = "jpeg-ls")),
        ("jpeg-12bit", cfg!(feature = "jpeg-12bit")),
    ];
    optional
        .iter()
        .find(|(name, _)| *name == feature)
        .is_none_or(|(_, on)| *on)
}

#[test]
fn dicom_matches_pydicom() {
    let Some(root) = data_root() else { return };
    let dir = root.join("dicom");
    let rows = read_manifest(&dir.join("manifest.csv"));
    let (mut with_pixels, mut decoded, mut failures) = (0, 0, Vec::new());
    let mut hashes = HashMap::new();
    // Arrays pydicom decoded: a file pydicom could not decode is still shown correct when we
    // decode it to one of these.
    let known: HashMap<&str, &str> = rows
        .iter()
        .filter(|r| r["decode_status"].starts_with("ok"))
        .map(|r| (r["raw_sha256"].as_str(), r["file"].as_str()))
        .collect();
    let mut shown_another_way = 0;
    let mut undecoded = Vec::new();
    let mut not_compiled = Vec::new();
    // Lossy decodes, kept to compare pixel by pixel with a losslessly stored member of their
    // identical-pixel group.
    let mut lossy_arrays: HashMap<String, (Vec<f64>, f64)> = HashMap::new();
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
            match &result {
                Err(e) if status != "no_pixel_data" => {
                    println!("{file}: pydicom {status}; ours: {e}")
                }
                Err(_) => {}
                Ok((_, px)) => check_unverified(
                    file,
                    status,
                    px,
                    &known,
                    &mut shown_another_way,
                    &mut failures,
                ),
            }
            continue;
        }
        with_pixels += 1;
        let (f, px) = match result {
            Ok(r) => r,
            // A decoder this build left out (a cargo feature that is off) must say so, naming
            // the feature; the file is counted apart. CI runs this test with every codec.
            Err(e @ scarce_io::Error::CodecNotCompiled { feature, .. }) if !compiled(feature) => {
                println!("{file}: not compiled in: {e}");
                not_compiled.push(file.clone());
                continue;
            }
            // pydicom decoded this file, so it must decode here: a codec this build lacks
            // without saying so, or one that broke, fails the test naming the file.
            Err(
                e @ (scarce_io::Error::Decode { .. }
                | scarce_io::Error::UnsupportedTransferSyntax { .. }),
            ) => {
                println!("{file}: NOT DECODED: {e}");
                failures.push(format!(
                    "{file}: pydicom decoded it ({}), ours: {e}",
                    row["transfer_syntax_name"]
                ));
                undecoded.push(file.clone());
                continue;
            }
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        let shape: Vec<String> = px.numpy_shape().iter().map(|d| d.to_string()).collect();
        if shape.join("x") != row["raw_shape"] {
            failures.push(format!(
                "{file}: shape {} vs {}",
                shape.join("x"),
                row["raw_shape"]
            ));
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
            failures.push(format!(
                "{file}: dtype {} vs {}",
                px.samples.dtype().name(),
                row["raw_dtype"]
            ));
            continue;
        }
        let sha = sha_hex(&px.samples.to_le_bytes());
        hashes.insert(file.clone(), sha.clone());
        if !lossless(f.transfer_syntax_uid()) {
            lossy_arrays.insert(
                file.clone(),
                (
                    px.samples.to_f64(),
                    num(row, "plugins_max_abs_diff").unwrap_or(0.0) + 1.0,
                ),
            );
        }
        let stats = px.samples.stats();
        let uid = f.transfer_syntax_uid();
        if lossless(uid) {
            if sha != row["raw_sha256"] {
                failures.push(format!(
                    "{file} ({}): raw sha256 differs; min/max/mean {:?} vs {}/{}/{}",
                    row["transfer_syntax_name"],
                    stats,
                    row["raw_min"],
                    row["raw_max"],
                    row["raw_mean"]
                ));
                continue;
            }
        } else {
            let tol = num(row, "plugins_max_abs_diff").unwrap_or(0.0) + 1.0;
            let ok = [
                (stats.min, "raw_min"),
                (stats.max, "raw_max"),
                (stats.mean, "raw_mean"),
            ]
            .iter()
            .all(|(got, col)| (got - num(row, col).unwrap_or(f64::NAN)).abs() <= tol);
            if !ok {
                failures.push(format!(
                    "{file} (lossy): stats {stats:?} vs {}/{}/{} beyond {tol}",
                    row["raw_min"], row["raw_max"], row["raw_mean"]
                ));
                continue;
            }
        }
        // Modality LUT: the data-set transform against pydicom's apply_modality_lut, the
        // functional-group transform against the manifest's fg_rescale columns.
        let checks = [(LutScope::DataSet, "lut"), (LutScope::Frames, "fg_rescale")];
        let mut lut_ok = true;
        for (scope, prefix) in checks {
            let Some(want_min) = num(row, &format!("{prefix}_min")) else {
                continue;
            };
            let out = match f.modality_lut(&px, scope) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{file}: modality LUT: {e}"));
                    lut_ok = false;
                    break;
                }
            };
            let s = out.stats();
            let tol = if lossless(uid) {
                1e-6
            } else {
                1e-6 + (num(row, "plugins_max_abs_diff").unwrap_or(0.0) + 1.0) * 4096.0
            };
            let want = [
                want_min,
                num(row, &format!("{prefix}_max")).unwrap_or(f64::NAN),
                num(row, &format!("{prefix}_mean")).unwrap_or(f64::NAN),
            ];
            if !(close_rel(s.min, want[0], tol)
                && close_rel(s.max, want[1], tol)
                && close_rel(s.mean, want[2], tol))
            {
                failures.push(format!("{file}: {prefix} stats {s:?} vs {want:?}"));
                lut_ok = false;
            }
        }
        if lut_ok {
            decoded += 1;
        }
    }
    // Identical-pixel groups: every member decodes to the group's hash.
    // A lossy member decoded by another JPEG implementation than the group's (libjpeg) may
    // differ by the decoder's rounding: it must then stay within pydicom's own plugin spread
    // + 1 of a lossless member, pixel by pixel; it is reported apart from the identical ones.
    let groups = read_manifest(&dir.join("identical_pixel_groups.csv"));
    let (mut identical, mut within) = (0, 0);
    for g in &groups {
        let Some(h) = hashes.get(&g["file"]) else {
            continue;
        };
        if *h == g["raw_sha256"] {
            identical += 1;
            continue;
        }
        let reference = groups
            .iter()
            .filter(|o| o["group"] == g["group"] && !lossy_arrays.contains_key(&o["file"]))
            .find(|o| hashes.get(&o["file"]) == Some(&o["raw_sha256"]));
        match (lossy_arrays.get(&g["file"]), reference) {
            (Some((ours, tol)), Some(r)) => {
                let reference = DicomFile::open(dir.join(&r["file"]))
                    .and_then(|f| f.pixels())
                    .expect("reference decodes");
                let worst = ours
                    .iter()
                    .zip(reference.samples.to_f64())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                if worst <= *tol {
                    within += 1;
                    println!(
                        "{}: lossy, within {worst} of {} (allowed {tol})",
                        g["file"], r["file"]
                    );
                } else {
                    failures.push(format!(
                        "{}: differs from {} by up to {worst} (allowed {tol})",
                        g["file"], r["file"]
                    ));
                }
            }
            (Some(_), None) => println!(
                "{}: lossy, no losslessly stored member of group {} present to compare with",
                g["file"], g["group"]
            ),
            _ => failures.push(format!(
                "{}: not identical to group {}",
                g["file"], g["group"]
            )),
        }
    }
    let group_members = identical + within;
    println!(
        "DICOM: {} rows, {with_pixels} decoded by pydicom, {decoded} of them reproduced, {} typed errors ({undecoded:?}); {shown_another_way} that pydicom could not decode decoded to an array pydicom gave for another file; {group_members}/{} identical-group members checked: {identical} identical, {within} lossy within tolerance",
        rows.len(),
        undecoded.len(),
        groups.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{} files need a decoder this build left out (features off): {not_compiled:?}",
        not_compiled.len()
    );
    assert_eq!(
        decoded + not_compiled.len(),
        with_pixels,
        "every file pydicom decoded must be reproduced"
    );
    assert!(with_pixels > 0, "the manifest lists no decodable file");
}

/// A file pydicom did not decode but we did: correct only if the array is one pydicom gave
/// for another file (the same image in another encoding).
fn check_unverified(
    file: &str,
    status: &str,
    px: &scarce_io::PixelArray,
    known: &HashMap<&str, &str>,
    shown: &mut usize,
    failures: &mut Vec<String>,
) {
    let sha = sha_hex(&px.samples.to_le_bytes());
    match known.get(sha.as_str()) {
        Some(other) => {
            *shown += 1;
            println!(
                "{file}: pydicom {status}; ours decodes to the array pydicom gave for {other}"
            );
        }
        None => failures.push(format!(
            "{file}: pydicom {status}, we decoded {:?} that no pydicom array confirms",
            px.numpy_shape()
        )),
    }
}
