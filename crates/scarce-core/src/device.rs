//! Device choice: the one place in the workspace that names a backend.

use crate::Result;
use candle_core::Device;

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Pref {
    /// CUDA device 0 when the `cuda` feature is compiled in and a GPU answers; else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA device with this ordinal; an error when it is not available.
    Cuda(usize),
}

/// Returns the device for `pref`.
///
/// `Pref::Auto` never fails: without the `cuda` feature, or when the driver or device is
/// missing, it returns the CPU and says so on stderr (once per call). `Pref::Cuda(i)` fails
/// with candle's error when device `i` cannot be opened.
pub fn device(pref: Pref) -> Result<Device> {
    match pref {
        Pref::Cpu => Ok(Device::Cpu),
        Pref::Cuda(i) => Ok(Device::new_cuda(i)?),
        Pref::Auto => {
            if cfg!(feature = "cuda") {
                match Device::new_cuda(0) {
                    Ok(d) => Ok(d),
                    Err(e) => {
                        eprintln!("scarce: CUDA unavailable ({e}); using the CPU");
                        Ok(Device::Cpu)
                    }
                }
            } else {
                Ok(Device::Cpu)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_always_work() {
        assert!(device(Pref::Cpu).unwrap().is_cpu());
        let d = device(Pref::Auto).unwrap();
        if !cfg!(feature = "cuda") {
            assert!(d.is_cpu());
        }
    }
}
