//! Device choice: the one place in the workspace that names a backend.

use crate::{Error, Result};
use candle_core::Device;

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Pref {
    /// CUDA device 0 when the `cuda` feature is compiled in and a GPU answers, else Metal
    /// device 0 when the `metal` feature is compiled in and answers; else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA device with this ordinal; an error when it is not available.
    Cuda(usize),
    /// The Metal (Apple GPU) device with this ordinal; an error when it is not available
    /// (always without the `metal` feature).
    Metal(usize),
}

impl std::str::FromStr for Pref {
    type Err = Error;

    /// `auto`, `cpu`, `cuda` (device 0), `cuda:N`, `metal` (device 0) or `metal:N`.
    fn from_str(s: &str) -> Result<Pref> {
        let ordinal = |prefix: &str| s.strip_prefix(prefix).and_then(|i| i.parse().ok());
        match s {
            "auto" => Ok(Pref::Auto),
            "cpu" => Ok(Pref::Cpu),
            "cuda" => Ok(Pref::Cuda(0)),
            "metal" => Ok(Pref::Metal(0)),
            _ => ordinal("cuda:")
                .map(Pref::Cuda)
                .or_else(|| ordinal("metal:").map(Pref::Metal))
                .ok_or_else(|| {
                    Error::param(
                        "device",
                        format!("`{s}`: expected auto, cpu, cuda, cuda:N, metal or metal:N"),
                    )
                }),
        }
    }
}

impl Pref {
    /// The preference named by the environment variable `SCARCE_DEVICE` (`auto`, `cpu`,
    /// `cuda`, `cuda:N`), or `default` when it is unset. Benchmarks and examples use it so
    /// one binary runs on either device.
    pub fn from_env_or(default: Pref) -> Result<Pref> {
        match std::env::var("SCARCE_DEVICE") {
            Ok(v) => v
                .parse()
                .map_err(|e: Error| Error::param("SCARCE_DEVICE", e.to_string())),
            Err(_) => Ok(default),
        }
    }
}

/// Returns the device for `pref`.
///
/// `Pref::Auto` never fails. Built without the `cuda` and `metal` features it returns the
/// CPU, silently (the build asked for no GPU). Built with one, when the driver or device is
/// missing, it returns the CPU and says so, once per call. `Pref::Cuda(i)` and
/// `Pref::Metal(i)` fail with candle's error when device `i` cannot be opened. The notice is
/// a `tracing` warning (shown by whatever subscriber the program installs).
pub fn device(pref: Pref) -> Result<Device> {
    match pref {
        Pref::Cpu => Ok(Device::Cpu),
        Pref::Cuda(i) => Ok(Device::new_cuda(i)?),
        Pref::Metal(i) => Ok(Device::new_metal(i)?),
        Pref::Auto => {
            for (backend, open) in compiled_gpus() {
                match open(0) {
                    Ok(d) => return Ok(d),
                    Err(e) => tracing::warn!(
                        "{backend} unavailable ({}); trying the next device",
                        first_line(&e)
                    ),
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// Opens device `i` of one backend.
type Open = fn(usize) -> candle_core::Result<Device>;

/// The GPU backends compiled into this build, in the order `Pref::Auto` tries them.
fn compiled_gpus() -> impl Iterator<Item = (&'static str, Open)> {
    [
        ("CUDA", cfg!(feature = "cuda"), Device::new_cuda as Open),
        ("Metal", cfg!(feature = "metal"), Device::new_metal as Open),
    ]
    .into_iter()
    .filter(|(_, on, _)| *on)
    .map(|(name, _, open)| (name, open))
}

/// Every device this process can run on: the CPU, then CUDA device 0 when the `cuda` feature
/// is compiled in and a GPU answers, and Metal device 0 likewise. Device-parity tests run
/// their checks on each.
pub fn available() -> Vec<Device> {
    let mut all = vec![Device::Cpu];
    for (backend, open) in compiled_gpus() {
        match open(0) {
            Ok(d) => all.push(d),
            Err(e) => tracing::warn!(
                "{backend} compiled in but unavailable ({}); not tested on it",
                first_line(&e)
            ),
        }
    }
    all
}

/// The first line of an error: candle appends a backtrace when `RUST_BACKTRACE` is set.
fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// A short name for a device in reports: `cpu`, `cuda:0`, `metal:0`.
pub fn name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
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

    #[test]
    fn names_parse() {
        assert_eq!("cpu".parse::<Pref>().unwrap(), Pref::Cpu);
        assert_eq!("auto".parse::<Pref>().unwrap(), Pref::Auto);
        assert_eq!("metal".parse::<Pref>().unwrap(), Pref::Metal(0));
        assert_eq!("metal:1".parse::<Pref>().unwrap(), Pref::Metal(1));
        if !cfg!(feature = "metal") {
            assert!(device(Pref::Metal(0)).is_err());
        }
        assert_eq!("cuda".parse::<Pref>().unwrap(), Pref::Cuda(0));
        assert_eq!("cuda:3".parse::<Pref>().unwrap(), Pref::Cuda(3));
        let e = "gpu".parse::<Pref>().unwrap_err().to_string();
        assert!(e.contains("`gpu`") && e.contains("cuda:N"), "{e}");
    }

    #[test]
    fn available_starts_with_the_cpu() {
        let all = available();
        assert_eq!(name(&all[0]), "cpu");
        assert!(all[1..].iter().all(|d| name(d).starts_with("cuda:")));
    }
}
