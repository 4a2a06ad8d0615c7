//! NIfTI-1 files written by hand in both byte orders and both qform handednesses (qfac ±1),
//! with NaN, infinities, −0 and subnormals among the voxels: reading gives exactly the stored
//! values and the affine NIfTI defines, and our writer's file reads back bit for bit with the
//! same affine.

use scarce_io::{write_nifti, Nifti};

/// A single-file NIfTI-1 volume of float32 voxels, shape (x, y, z) = (4, 3, 2), spacing
/// (1.5, 2, 2.5), identity quaternion, qform code 1, no sform, in the given byte order.
fn nifti1(big_endian: bool, qfac: f32, slope: f32, inter: f32, voxels: &[f32]) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let i16b = |v: i16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let i32b = |v: i32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let f32b = |v: f32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    h[0..4].copy_from_slice(&i32b(348));
    for (i, d) in [3i16, 4, 3, 2, 1, 1, 1, 1].into_iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&i16b(d));
    }
    h[70..72].copy_from_slice(&i16b(16)); // float32
    h[72..74].copy_from_slice(&i16b(32));
    for (i, p) in [qfac, 1.5, 2.0, 2.5, 1.0, 0.0, 0.0, 0.0]
        .into_iter()
        .enumerate()
    {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&f32b(p));
    }
    h[108..112].copy_from_slice(&f32b(352.0));
    h[112..116].copy_from_slice(&f32b(slope));
    h[116..120].copy_from_slice(&f32b(inter));
    h[123] = 2; // mm
    h[252..254].copy_from_slice(&i16b(1)); // qform: scanner
    for (i, v) in [0.0f32, 0.0, 0.0, -10.0, 20.0, 30.0]
        .into_iter()
        .enumerate()
    {
        h[256 + 4 * i..260 + 4 * i].copy_from_slice(&f32b(v));
    }
    h[344..348].copy_from_slice(b"n+1\0");
    for v in voxels {
        h.extend_from_slice(&f32b(*v));
    }
    h
}

fn voxels() -> Vec<f32> {
    let mut v: Vec<f32> = (0..24).map(|i| i as f32 * 0.37 - 3.0).collect();
    v[1] = f32::NAN;
    v[5] = f32::INFINITY;
    v[6] = f32::NEG_INFINITY;
    v[7] = -0.0;
    v[8] = f32::MIN_POSITIVE / 8.0; // subnormal
    v[9] = f32::MAX;
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn both_byte_orders_and_handednesses_round_trip_exactly() {
    let dir = std::env::temp_dir().join(format!("scarce-nifti-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for big_endian in [false, true] {
        for qfac in [1.0f32, -1.0] {
            for (slope, inter) in [(0.0f32, 0.0f32), (2.0, -1.0)] {
                let what = format!("big-endian {big_endian}, qfac {qfac}, scl {slope}/{inter}");
                let v = voxels();
                let bytes = nifti1(big_endian, qfac, slope, inter, &v);
                let img = Nifti::from_bytes(&bytes, "hand.nii").unwrap();
                assert_eq!(img.header.big_endian, big_endian, "{what}");
                // The stored values, scaled in float64 and rounded once (nibabel's
                // get_fdata scales in float64; the image keeps float32).
                let want: Vec<f32> = if slope == 0.0 {
                    v.clone()
                } else {
                    v.iter()
                        .map(|&x| (x as f64 * slope as f64 + inter as f64) as f32)
                        .collect()
                };
                let image = img.to_image();
                assert_eq!(bits(&image.data), bits(&want), "{what}: read");
                // Identity rotation: qfac -1 flips the third axis (NIfTI-1 qform method 2).
                let a = img.header.affine();
                let z = 2.5 * qfac as f64;
                let want_affine = [
                    [1.5, 0.0, 0.0, -10.0],
                    [0.0, 2.0, 0.0, 20.0],
                    [0.0, 0.0, z, 30.0],
                    [0.0, 0.0, 0.0, 1.0],
                ];
                assert_eq!(a, want_affine, "{what}: affine");
                for name in ["rt.nii", "rt.nii.gz"] {
                    let out = dir.join(name);
                    write_nifti(&out, &image).unwrap();
                    let back = Nifti::open(&out).unwrap();
                    let again = back.to_image();
                    assert_eq!(again.shape, image.shape, "{what}: {name} shape");
                    assert_eq!(bits(&again.data), bits(&image.data), "{what}: {name} data");
                    assert_eq!(back.header.affine(), want_affine, "{what}: {name} sform");
                    let q = back.header.qform();
                    for r in 0..4 {
                        for c in 0..4 {
                            assert!(
                                (q[r][c] - want_affine[r][c]).abs() < 1e-6,
                                "{what}: {name} qform {q:?}"
                            );
                        }
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
