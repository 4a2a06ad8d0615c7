//! Native YBR_FULL_422: two pixels share one chroma pair (`Y1 Y2 Cb Cr`), so an 8-bit image
//! stores two bytes per pixel. pydicom expands it to full-resolution YBR and converts that to
//! RGB; the same must happen here. Built from the vendored `MR_small.dcm` with its image
//! attributes replaced.

mod common;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use scarce_io::{DicomFile, Error};

/// An 8-bit, 3-sample native image of `rows` x `columns` with `photometric` and `pixels`.
fn image(photometric: &str, rows: u16, columns: u16, pixels: Vec<u8>) -> Vec<u8> {
    let src = common::vendored().join("dicom/pydicom_test_files/MR_small.dcm");
    let mut obj = dicom_object::open_file(&src).unwrap();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(us(tags::ROWS, rows));
    obj.put(us(tags::COLUMNS, columns));
    obj.put(us(tags::SAMPLES_PER_PIXEL, 3));
    obj.put(us(tags::BITS_ALLOCATED, 8));
    obj.put(us(tags::BITS_STORED, 8));
    obj.put(us(tags::HIGH_BIT, 7));
    obj.put(us(tags::PIXEL_REPRESENTATION, 0));
    obj.put(us(tags::PLANAR_CONFIGURATION, 0));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(photometric),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    bytes
}

fn rgb(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let px = DicomFile::from_bytes(bytes, "ybr.dcm")?.pixels()?;
    assert_eq!((px.channels, px.photometric.as_str()), (3, "RGB"));
    match px.samples {
        scarce_io::Samples::U8(v) => Ok(v),
        other => panic!("8-bit data decoded as {:?}", other.dtype()),
    }
}

#[test]
fn ybr_full_422_is_expanded_then_converted_like_ybr_full() {
    // 2 rows x 4 columns: four pixel pairs, each `Y1 Y2 Cb Cr`.
    let groups: [[u8; 4]; 4] = [
        [100, 110, 128, 128], // grey: RGB = Y exactly
        [30, 200, 90, 170],
        [255, 0, 255, 0],
        [16, 235, 60, 240],
    ];
    let packed: Vec<u8> = groups.concat();
    let full: Vec<u8> = groups
        .iter()
        .flat_map(|g| [g[0], g[2], g[3], g[1], g[2], g[3]])
        .collect();
    let from_422 = rgb(&image("YBR_FULL_422", 2, 4, packed)).unwrap();
    let from_full = rgb(&image("YBR_FULL", 2, 4, full)).unwrap();
    assert_eq!(from_422.len(), 2 * 4 * 3);
    assert_eq!(from_422, from_full);
    // Cb = Cr = 128 is grey: R = G = B = Y.
    assert_eq!(&from_422[..6], &[100, 100, 100, 110, 110, 110]);
}

#[test]
fn ybr_full_422_short_or_odd_data_is_refused() {
    // 2 x 4 pixels need 16 bytes in 4:2:2 (not 24).
    let short = image("YBR_FULL_422", 2, 4, vec![128; 14]);
    let err = rgb(&short).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    // 4:2:2 pairs pixels: an odd pixel count per frame cannot be laid out.
    let odd = image("YBR_FULL_422", 3, 3, vec![128; 18]);
    let err = rgb(&odd).unwrap_err();
    assert!(err.to_string().contains("YBR_FULL_422"), "{err}");
}
