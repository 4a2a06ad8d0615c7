//! 12-bit lossy JPEG (JPEG Extended, process 4) through libjpeg-turbo 3's TurboJPEG API:
//! jpeg-decoder, which decodes every other JPEG process here, has no 12-bit DCT.
//!
//! The only unsafe code in scarce-io: calls into the C library, each on a handle this module
//! owns and with buffers whose sizes are checked against the stream's header first. The
//! decoder is told to stop on libjpeg's warnings (a truncated or corrupt stream is an error,
//! not a grey-filled frame), to refuse more pixels than the data set declares, and to give up
//! after a bounded number of progressive scans.

#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};
use turbojpeg_sys as tj;

/// A progressive stream with more scans than this is refused (libjpeg-turbo's own advice
/// against streams built to take unbounded time).
const SCAN_LIMIT: c_int = 500;

/// A TurboJPEG decompressor, destroyed on drop.
struct Decompressor(tj::tjhandle);

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init, is non-null, and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Decompressor {
    fn new() -> Result<Decompressor, String> {
        // SAFETY: tj3Init takes no pointers; a null result is handled.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if h.is_null() {
            return Err("libjpeg-turbo: could not create a decompressor".into());
        }
        Ok(Decompressor(h))
    }

    fn error(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle.
        let s = unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) };
        format!("libjpeg-turbo: {}", s.to_string_lossy())
    }

    fn set(&self, param: tj::TJPARAM, value: c_int) -> Result<(), String> {
        // SAFETY: a valid handle and a parameter id from the bindings.
        match unsafe { tj::tj3Set(self.0, param as c_int, value) } {
            0 => Ok(()),
            _ => Err(self.error()),
        }
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: a valid handle and a parameter id from the bindings.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }
}

/// Decodes one single-component 12-bit DCT frame of `rows` × `columns` and appends it to
/// `out` as little-endian 16-bit samples (BitsAllocated 16).
pub(crate) fn decode(
    data: &[u8],
    rows: u32,
    columns: u32,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let d = Decompressor::new()?;
    let pixels = rows as u64 * columns as u64;
    d.set(tj::TJPARAM_TJPARAM_STOPONWARNING, 1)?;
    d.set(tj::TJPARAM_TJPARAM_SCANLIMIT, SCAN_LIMIT)?;
    d.set(
        tj::TJPARAM_TJPARAM_MAXPIXELS,
        c_int::try_from(pixels).map_err(|_| format!("{rows}x{columns} frame too large"))?,
    )?;
    // SAFETY: `data` is valid for `data.len()` bytes.
    if unsafe { tj::tj3DecompressHeader(d.0, data.as_ptr(), data.len() as _) } != 0 {
        return Err(d.error());
    }
    let (w, h) = (
        d.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        d.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if w as i64 != columns as i64 || h as i64 != rows as i64 {
        return Err(format!(
            "JPEG frame is {w}x{h}, the data set says {columns}x{rows}"
        ));
    }
    let precision = d.get(tj::TJPARAM_TJPARAM_PRECISION);
    if precision != 12 {
        return Err(format!(
            "expected a 12-bit frame, the stream is {precision}-bit"
        ));
    }
    if d.get(tj::TJPARAM_TJPARAM_COLORSPACE) != tj::TJCS_TJCS_GRAY as c_int {
        return Err("12-bit colour JPEG is not supported (one component expected)".into());
    }
    let mut samples = vec![0i16; pixels as usize];
    // SAFETY: `samples` holds w·h samples of one component, the size TJPF_GRAY with pitch 0
    // (tightly packed) writes for the w × h frame checked above.
    let rc = unsafe {
        tj::tj3Decompress12(
            d.0,
            data.as_ptr(),
            data.len() as _,
            samples.as_mut_ptr(),
            0,
            tj::TJPF_TJPF_GRAY as c_int,
        )
    };
    if rc != 0 {
        return Err(d.error());
    }
    out.reserve(samples.len() * 2);
    out.extend(samples.iter().flat_map(|&v| (v as u16).to_le_bytes()));
    Ok(())
}
