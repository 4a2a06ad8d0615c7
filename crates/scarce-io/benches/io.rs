//! Decode and load times for the files a user reads most: a 512×512 CT slice stored native
//! and as JPEG 2000, multi-frame files (native and RLE), and the 197×233×189 MNI template
//! `.nii.gz` (from its file, as nibabel's `load` + `get_fdata`). Reads the shared data set (`SCARCE_DATA` or `../shared/data`); skips a file
//! that is absent. `benches/pydicom_nibabel.py` times the same work in Python.
//!
//! `cargo bench -p scarce-io --bench io`

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use scarce_io::dicom::lut::LutScope;
use scarce_io::{DicomFile, Nifti};

fn root() -> PathBuf {
    match std::env::var_os("SCARCE_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// File bytes are read once; each iteration parses and decodes from memory, as pydicom's
/// `dcmread(BytesIO)` + `pixel_array` does in the Python script.
fn dicom(c: &mut Criterion) {
    let cases = [
        ("ct_512_native", "dicom/pydicom_data/693_UNCR.dcm"),
        ("ct_512_jpeg2000", "dicom/pydicom_data/693_J2KR.dcm"),
        (
            "multiframe_native_10x64x64",
            "dicom/pydicom_data/emri_small.dcm",
        ),
        (
            "multiframe_rle_2x600x800",
            "dicom/pydicom_data/OBXXXX1A_rle_2frame.dcm",
        ),
    ];
    let mut g = c.benchmark_group("dicom_decode");
    for (name, rel) in cases {
        let path = root().join(rel);
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipped {name}: {} not found", path.display());
            continue;
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let f = DicomFile::from_bytes(&bytes, &path).expect("parses");
                let px = f.pixels().expect("decodes");
                f.modality_lut(&px, LutScope::Frames).expect("LUT")
            })
        });
    }
    g.finish();
}

fn nifti(c: &mut Criterion) {
    let path = root().join("nifti/nilearn/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz");
    if !path.is_file() {
        eprintln!("skipped MNI template: {} not found", path.display());
        return;
    }
    let mut g = c.benchmark_group("nifti_load");
    g.sample_size(20);
    // float64, as nibabel's `get_fdata()`; float32, as `get_fdata(dtype=np.float32)` and
    // as our `Image` holds it.
    g.bench_function("mni_197x233x189_nii_gz_f64", |b| {
        b.iter(|| Nifti::open(&path).expect("loads").scaled())
    });
    g.bench_function("mni_197x233x189_nii_gz_f32", |b| {
        b.iter(|| Nifti::open(&path).expect("loads").to_image())
    });
    g.finish();
}

criterion_group!(benches, dicom, nifti);
criterion_main!(benches);
