//! Look-up tables refuse inputs they would otherwise apply to only part of the data:
//! unequal numbers of window centres and widths, a pixel array whose sample count does not
//! match its frames × rows × columns × channels, and palette colour on more than one sample
//! per pixel.

mod common;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use scarce_io::dicom::lut::LutScope;
use scarce_io::{DicomFile, Samples};

fn mr_small_with(edit: impl FnOnce(&mut dicom_object::DefaultDicomObject)) -> DicomFile {
    let src = common::vendored().join("dicom/pydicom_test_files/MR_small.dcm");
    let mut obj = dicom_object::open_file(&src).unwrap();
    edit(&mut obj);
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    DicomFile::from_bytes(&bytes, "edited.dcm").unwrap()
}

#[test]
fn unequal_window_centres_and_widths_are_refused() {
    let f = mr_small_with(|obj| {
        obj.put(DataElement::new(
            tags::WINDOW_CENTER,
            VR::DS,
            PrimitiveValue::Strs(["100".to_string(), "200".to_string()].into()),
        ));
        obj.put(DataElement::new(
            tags::WINDOW_WIDTH,
            VR::DS,
            PrimitiveValue::from("400"),
        ));
    });
    let e = f.windows().unwrap_err().to_string();
    assert!(e.contains("1 widths for 2 WindowCenter"), "{e}");
}

#[test]
fn sample_counts_must_match_the_image() {
    let f = mr_small_with(|_| {});
    let mut px = f.pixels().unwrap();
    assert!(f.modality_lut(&px, LutScope::DataSet).is_ok());
    // Samples past the last frame would be skipped without a word.
    if let Samples::I16(v) = &mut px.samples {
        v.push(0);
    } else {
        panic!("MR_small is int16");
    }
    let e = f
        .modality_lut(&px, LutScope::DataSet)
        .unwrap_err()
        .to_string();
    assert!(e.contains("samples for 1 frames"), "{e}");
    // Palette colour indexes one sample per pixel.
    let mut rgb = f.pixels().unwrap();
    rgb.channels = 3;
    rgb.samples = Samples::U8(vec![0; rgb.rows * rgb.columns * 3]);
    let e = f.palette_to_rgb(&rgb).unwrap_err().to_string();
    assert!(e.contains("3 samples per pixel"), "{e}");
}
