//! Any bytes -> parse, decode, modality LUT and image conversion: must return, never panic,
//! abort, hang or allocate beyond what the input justifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scarce_io::dicom::lut::LutScope;
use scarce_io::dicom::ImageOptions;
use scarce_io::DicomFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = DicomFile::from_bytes(data, "fuzz.dcm") else {
        return;
    };
    if let Ok(px) = file.pixels() {
        assert_eq!(
            px.samples.len(),
            px.frames * px.rows * px.columns * px.channels
        );
        let _ = file.modality_lut(&px, LutScope::Frames);
        let _ = file.to_image(&ImageOptions::default());
    }
});
