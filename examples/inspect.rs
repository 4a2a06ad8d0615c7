//! Prints one JSON object per file (DICOM, NIfTI, or a folder / DICOMDIR holding a DICOM
//! series): format, transfer syntax, shape, dtype, spacing, affine, raw and after-LUT
//! min / max / mean, and the sha256 of the raw array (C order, little-endian) — or the
//! error. Exits with status 1 if any file failed.
//!
//! `cargo run --release --example inspect -- FILE…`

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;

use scarce::io::dicom::lut::LutScope;
use scarce::io::dicom::{load_series, ImageOptions};
use scarce::io::{DicomFile, Image, Nifti, Samples};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn stats_json(s: &Samples) -> Value {
    let st = s.stats();
    json!({ "min": st.min, "max": st.max, "mean": st.mean, "nan_count": st.nan_count })
}

fn sha(s: &Samples) -> String {
    Sha256::digest(s.to_le_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn geometry(img: &Image) -> Value {
    json!({ "spacing": img.spacing, "affine": img.affine(), "image_shape": img.shape })
}

fn is_nifti(path: &Path) -> bool {
    let n = path.to_string_lossy().to_lowercase();
    [".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz"]
        .iter()
        .any(|e| n.ends_with(e))
}

fn inspect(path: &Path) -> scarce::io::Result<Value> {
    if path.is_dir() || path.file_name().is_some_and(|n| n == "DICOMDIR") {
        let img = load_series(path, None, &ImageOptions::default())?;
        let s = Samples::F32(img.data.clone());
        return Ok(json!({
            "format": "dicom-series",
            "series_uid": img.meta.series_uid,
            "shape": img.shape,
            "dtype": "float32",
            "after_lut": stats_json(&s),
            "geometry": geometry(&img),
        }));
    }
    if is_nifti(path) {
        let n = Nifti::open(path)?;
        let scaled = Samples::F64(n.scaled());
        let img = n.to_image();
        return Ok(json!({
            "format": format!("{:?}", n.header.version),
            "shape": n.header.shape,
            "dtype": n.samples.dtype().name(),
            "big_endian": n.header.big_endian,
            "raw": stats_json(&n.samples),
            "raw_sha256": sha(&n.samples),
            "scaled": stats_json(&scaled),
            "affine": n.header.affine(),
            "geometry": geometry(&img),
        }));
    }
    let f = DicomFile::open(path)?;
    let px = f.pixels()?;
    let lut = f.modality_lut(&px, LutScope::Frames)?;
    let (photometric, shape, dtype) = (
        px.photometric.clone(),
        px.numpy_shape(),
        px.samples.dtype().name(),
    );
    let (raw, raw_sha256) = (stats_json(&px.samples), sha(&px.samples));
    let img = f.image_from(px, &ImageOptions::default())?;
    Ok(json!({
        "format": "dicom",
        "transfer_syntax": f.transfer_syntax_uid(),
        "transfer_syntax_name": f.transfer_syntax_name(),
        "syntax_inferred": f.syntax_inferred(),
        "photometric": photometric,
        "shape": shape,
        "dtype": dtype,
        "raw": raw,
        "raw_sha256": raw_sha256,
        "after_lut": stats_json(&lut),
        "after_lut_dtype": lut.dtype().name(),
        "geometry": geometry(&img),
        "modality": img.meta.modality,
    }))
}

/// One JSON line per DICOM / NIfTI file or series folder: shape, dtype, geometry, modality.
#[derive(clap::Parser)]
struct Args {
    /// DICOM files, NIfTI files, or folders / DICOMDIRs holding one DICOM series.
    #[arg(required = true)]
    files: Vec<String>,
}

fn main() -> std::process::ExitCode {
    use clap::Parser;
    cli::init_logging();
    cli::exit(run(Args::parse()))
}

/// One JSON line per input (an unreadable one as `{"file", "error"}`); an error at the end
/// when any could not be read.
fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut failed = 0;
    for file in &args.files {
        let out = match inspect(Path::new(file)) {
            Ok(mut v) => {
                v["file"] = json!(file);
                v
            }
            Err(e) => {
                failed += 1;
                json!({ "file": file, "error": e.to_string() })
            }
        };
        println!("{out}");
    }
    if failed > 0 {
        return Err(format!("{failed} of {} inputs could not be read", args.files.len()).into());
    }
    Ok(())
}
