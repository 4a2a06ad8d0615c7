//! Bad input never panics, aborts or allocates more than the file justifies. Every vendored
//! data file (and, when present, every shared one up to a size budget) is cut at many
//! offsets and has random bytes flipped; each variant must give `Err` or a read that is
//! correct: a cut file that still reads must give the original array, a flipped one an
//! array of the shape its header declares. Plus hand-made headers that claim huge sizes.

mod common;

use std::path::{Path, PathBuf};

use scarce_io::{DicomFile, Error, Nifti, NiftiHeader};

/// xorshift64*: deterministic flips without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if p.extension().is_some_and(|e| e == "dcm") {
            out.push(p);
        }
    }
}

/// Decoded samples as f64, or the error's kind.
fn decode_dicom(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f64>), Error> {
    let f = DicomFile::from_bytes(bytes, "variant.dcm")?;
    let px = f.pixels()?;
    Ok((px.numpy_shape(), px.samples.to_f64()))
}

fn decode_nifti(bytes: &[u8], dir: &Path, gz: bool) -> Result<(Vec<usize>, Vec<f64>), Error> {
    let path = dir.join(if gz { "variant.nii.gz" } else { "variant.nii" });
    std::fs::write(&path, bytes).expect("temp write");
    let n = Nifti::open(&path)?;
    Ok((n.header.shape.clone(), n.scaled()))
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

#[test]
fn cut_and_flipped_dicom_files_fail_cleanly() {
    let mut files = Vec::new();
    files_under(&common::vendored().join("dicom"), &mut files);
    let (mut variants, mut errors) = (0usize, 0usize);
    let mut rng = Rng(0x5CA2CE);
    for path in &files {
        let t0 = std::time::Instant::now();
        let bytes = std::fs::read(path).expect("read");
        let original = decode_dicom(&bytes).ok();
        // Cuts: every 1/64 of the file, and the last 16 bytes one by one.
        let mut cuts: Vec<usize> = (0..64).map(|i| bytes.len() * i / 64).collect();
        cuts.extend(bytes.len().saturating_sub(16)..bytes.len());
        for cut in cuts {
            variants += 1;
            match decode_dicom(&bytes[..cut]) {
                Err(_) => errors += 1,
                Ok((shape, values)) => {
                    let (oshape, ovalues) = original.as_ref().unwrap_or_else(|| {
                        panic!(
                            "{}: cut at {cut} decodes, the whole file does not",
                            path.display()
                        )
                    });
                    assert!(
                        shape == *oshape && same(&values, ovalues),
                        "{}: cut at {cut} gives a different array",
                        path.display()
                    );
                }
            }
        }
        // Flips: 200 variants with 1-8 random bytes replaced.
        for _ in 0..200 {
            let mut v = bytes.clone();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() % v.len() as u64) as usize;
                v[at] = rng.next() as u8;
            }
            variants += 1;
            match DicomFile::from_bytes(&v, "variant.dcm")
                .and_then(|f| Ok((f.attributes()?, f.pixels()?)))
            {
                Err(_) => errors += 1,
                Ok((Some(a), px)) => assert_eq!(
                    px.samples.len() as u64,
                    a.samples_total(),
                    "{}: a flipped file decoded to a wrong-sized array",
                    path.display()
                ),
                Ok((None, _)) => {}
            }
        }
        println!("{}: {:.1} s", path.display(), t0.elapsed().as_secs_f64());
    }
    println!(
        "DICOM hostile input: {} files, {variants} variants, {errors} errors, no panic",
        files.len()
    );
    assert!(!files.is_empty());
}

#[test]
fn cut_and_flipped_nifti_files_fail_cleanly() {
    let dir = std::env::temp_dir().join(format!("scarce-io-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = common::vendored().join("nifti/nibabel");
    let mut rng = Rng(0x1F71);
    let (mut variants, mut errors) = (0usize, 0usize);
    for name in ["anatomical.nii", "standard.nii.gz", "example_nifti2.nii.gz"] {
        let bytes = std::fs::read(src.join(name)).expect("read");
        let gz = name.ends_with(".gz");
        let original = decode_nifti(&bytes, &dir, gz).expect("original reads");
        let mut cuts: Vec<usize> = (0..64).map(|i| bytes.len() * i / 64).collect();
        cuts.extend(bytes.len().saturating_sub(16)..bytes.len());
        for cut in cuts {
            variants += 1;
            match decode_nifti(&bytes[..cut], &dir, gz) {
                Err(_) => errors += 1,
                Ok((shape, values)) => assert!(
                    shape == original.0 && same(&values, &original.1),
                    "{name}: cut at {cut} reads differently"
                ),
            }
        }
        for _ in 0..200 {
            let mut v = bytes.clone();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() % v.len().min(600) as u64) as usize;
                v[at] = rng.next() as u8;
            }
            variants += 1;
            match decode_nifti(&v, &dir, gz) {
                Err(_) => errors += 1,
                Ok((shape, values)) => assert_eq!(
                    values.len(),
                    shape.iter().product::<usize>(),
                    "{name}: flipped header read inconsistently"
                ),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("NIfTI hostile input: {variants} variants, {errors} errors, no panic");
}

#[test]
fn huge_declared_sizes_are_refused_before_allocating() {
    let dir = std::env::temp_dir().join(format!("scarce-io-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // A NIfTI-1 header declaring 32767^3 float64 voxels in a 352-byte file.
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (i, d) in [3i16, 32767, 32767, 32767, 1, 1, 1, 1].iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&64i16.to_le_bytes());
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    let p = dir.join("huge.nii");
    std::fs::write(&p, &h).unwrap();
    assert!(
        NiftiHeader::parse(&h, &p).is_ok(),
        "the header itself is valid"
    );
    assert!(
        matches!(Nifti::open(&p), Err(Error::TooLarge { .. })),
        "{:?}",
        Nifti::open(&p).err()
    );
    // The same header gzipped: the inflated size is bounded by deflate's ratio.
    let gz = dir.join("huge.nii.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &h).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    assert!(matches!(Nifti::open(&gz), Err(Error::TooLarge { .. })));
    let _ = std::fs::remove_dir_all(&dir);

    // A DICOM slice whose Rows / Columns / NumberOfFrames claim far more than its pixel data.
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let src = common::vendored().join("dicom/pydicom_test_files/MR_small.dcm");
    let mut obj = dicom_object::open_file(&src).unwrap();
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(65535u16),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(65535u16),
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("1000000"),
    ));
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    let f = DicomFile::from_bytes(&bytes, "huge.dcm").unwrap();
    assert!(matches!(f.pixels(), Err(Error::Truncated { .. })));
}

/// Inputs the fuzzer found (mutations of the vendored `SC_rgb_rle.dcm`) that made
/// dicom-parser allocate gigabytes: a value length that is not a whole number of its VR's
/// unit (it loses its place in the stream), and an OB element of undefined length. Both must
/// now be refused by the structural pre-scan, quickly.
#[test]
fn fuzz_regressions_fail_fast() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regression folder") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let t = std::time::Instant::now();
        let result = DicomFile::from_bytes(&bytes, &path);
        assert!(
            matches!(result, Err(Error::DicomParse { .. })),
            "{}: {:?}",
            path.display(),
            result.map(|_| ())
        );
        assert!(
            t.elapsed().as_secs_f64() < 1.0,
            "{} took {:?}",
            path.display(),
            t.elapsed()
        );
        n += 1;
    }
    assert!(n >= 2);
}
