//! Any bytes as a `.nii` / `.nii.gz`: must return, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scarce_io::Nifti;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = Nifti::from_bytes(data, "fuzz.nii") {
        assert_eq!(n.samples.len() as u64, n.header.voxels());
        let _ = n.to_image();
    }
});
