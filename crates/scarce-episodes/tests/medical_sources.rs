//! DICOM and NIfTI samples through image folders and CSV manifests (read by scarce-io),
//! on the vendored files in `data/`. The oracle: the `MR_small*` files hold one image in
//! several encodings (native little / big endian, RLE), which pydicom decodes to the same
//! array; and nibabel's statistics for `anatomical.nii` from the manifest. (The JPEG-LS copy
//! needs scarce-io's optional `jpeg-ls` feature and is checked by scarce-io's own tests.)
//! Needs the `medical` feature (the umbrella's `full` turns it on).
#![cfg(feature = "medical")]

use std::path::PathBuf;

use scarce_episodes::folder::{load_image_folder, load_manifest, ReadOptions};
use scarce_episodes::{EpisodeConfig, EpisodeSampler};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scarce-episodes-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn manifest_of_dicom_files_with_patients() {
    let dir = temp("dcm");
    let src = data().join("dicom/pydicom_test_files");
    let rows = [
        ("MR_small.dcm", "a", "p1"),
        ("MR_small_bigendian.dcm", "a", "p2"),
        ("MR_small_RLE.dcm", "b", "p3"),
        ("MR_small_RLE.dcm", "b", "p4"),
    ];
    let mut csv = String::from("path,label,patient\n");
    for (k, (f, label, patient)) in rows.into_iter().enumerate() {
        // Each row its own file (a copy), as a folder of studies would hold them.
        let copy = dir.join(format!("{k}_{f}"));
        std::fs::copy(src.join(f), &copy).unwrap();
        csv.push_str(&format!("{},{label},{patient}\n", copy.display()));
    }
    let manifest = dir.join("manifest.csv");
    std::fs::write(&manifest, csv).unwrap();
    let ds = load_manifest(&manifest, ReadOptions::default()).expect("DICOM manifest loads");
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.sample_shape(), &[1, 64, 64]);
    let n = ds.sample_len();
    let mut first = vec![0f32; n];
    ds.read(0, &mut first).unwrap();
    // Signed 16-bit MR intensities, not 8-bit pixels scaled to [0, 1].
    assert!(first.iter().any(|&v| v > 255.0));
    let direct = scarce_io::DicomFile::open(src.join("MR_small.dcm"))
        .unwrap()
        .to_image(&scarce_io::dicom::ImageOptions::default())
        .unwrap();
    assert_eq!(first, direct.data);
    for i in 1..4 {
        let mut other = vec![0f32; n];
        ds.read(i, &mut other).unwrap();
        assert_eq!(
            other, first,
            "sample {i}: the same image in another encoding"
        );
    }
    // Patients are groups: a 2-way 1-shot 1-query episode draws support and query from
    // different patients of each class.
    let sampler = EpisodeSampler::new(&ds, EpisodeConfig::new(2, 1, 1), 7).unwrap();
    let ep = sampler.episode(0).unwrap();
    for c in 0..2 {
        let (s, q) = (ep.support[c], ep.query[c]);
        assert_ne!(ds.group(s), ds.group(q));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn folder_of_nifti_volumes() {
    let dir = temp("nii");
    for class in ["control", "case"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        std::fs::copy(
            data().join("nifti/nibabel/anatomical.nii"),
            dir.join(class).join("vol.nii"),
        )
        .unwrap();
    }
    let ds = load_image_folder(&dir, ReadOptions::default()).expect("NIfTI folder loads");
    assert_eq!(ds.sample_shape(), &[1, 25, 41, 33], "[C, D, H, W]");
    let mut v = vec![0f32; ds.sample_len()];
    ds.read(0, &mut v).unwrap();
    let (min, max) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    // nibabel's get_fdata() of anatomical.nii (data/nifti/manifest.csv): min -610, max 30393.
    assert_eq!((min, max), (-610.0, 30393.0));
    // Volumes of another size in the same folder are an error naming the file.
    std::fs::copy(
        data().join("nifti/nibabel/standard.nii.gz"),
        dir.join("case").join("zz_small.nii.gz"),
    )
    .unwrap();
    let e = load_image_folder(&dir, ReadOptions::default()).expect_err("mixed sizes refused");
    assert!(e.to_string().contains("zz_small.nii.gz"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
