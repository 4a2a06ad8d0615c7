//! Oracle fixtures: reference values from PyTorch and other libraries, stored as
//! safetensors with a string metadata header (the format of `shared/fixtures/`).
//!
//! Fixture tests list a family's folder and check every case file they find, so a new case in
//! the same format is checked without code changes. The root is the directory named by the
//! environment variable `SCARCE_FIXTURES`, else the first `shared/fixtures` found beside the
//! current directory or one of its ancestors.

use crate::{Error, Result};
use candle_core::{safetensors::Load, DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One fixture case: its settings and tensors.
#[derive(Debug)]
pub struct Case {
    /// The file it came from.
    pub path: PathBuf,
    /// The case name (file stem).
    pub name: String,
    /// Every scalar setting, as the strings stored in the header.
    pub meta: HashMap<String, String>,
    /// The tensors, by name, on the CPU in their stored dtype.
    pub tensors: HashMap<String, Tensor>,
}

/// The fixture root: `$SCARCE_FIXTURES`, else `shared/fixtures` beside the current directory
/// or an ancestor. `None` when neither exists.
pub fn root() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCARCE_FIXTURES") {
        return Some(PathBuf::from(p));
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|a| a.join("shared").join("fixtures"))
        .find(|p| p.is_dir())
}

/// The case files (`*.safetensors`, sorted) of a fixture family such as `"ops"`. `Ok(None)`
/// when the family folder is absent (the caller skips and says so).
pub fn case_files(family: &str) -> Result<Option<Vec<PathBuf>>> {
    let Some(dir) = root().map(|r| r.join(family)).filter(|d| d.is_dir()) else {
        return Ok(None);
    };
    let rd = std::fs::read_dir(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    Ok(Some(files))
}

impl Case {
    /// Reads one case file.
    pub fn load(path: &Path) -> Result<Case> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
        let fmt = |e: safetensors::SafeTensorError| Error::Format {
            path: path.into(),
            reason: e.to_string(),
        };
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(fmt)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(fmt)?;
        let mut tensors = HashMap::new();
        for (n, v) in st.tensors() {
            tensors.insert(n, v.load(&Device::Cpu)?);
        }
        Ok(Case {
            path: path.into(),
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            meta: header.metadata().clone().unwrap_or_default(),
            tensors,
        })
    }

    fn format_err(&self, reason: String) -> Error {
        Error::Format {
            path: self.path.clone(),
            reason,
        }
    }

    /// The tensor `name` as f64 on `device`.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| Error::Missing {
            name: name.into(),
            what: self.path.display().to_string(),
        })?;
        Ok(t.to_device(device)?)
    }

    /// The tensor `name` converted to f64.
    pub fn f64(&self, name: &str, device: &Device) -> Result<Tensor> {
        Ok(self.tensor(name, device)?.to_dtype(DType::F64)?)
    }

    /// True when the case has tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The raw metadata string `key`.
    pub fn meta_str(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.format_err(format!("metadata key `{key}` missing")))
    }

    /// Metadata `key` parsed as JSON (numbers, booleans, lists).
    pub fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        let s = self.meta_str(key)?;
        serde_json::from_str(s)
            .map_err(|e| self.format_err(format!("metadata `{key}` = {s:?}: {e}")))
    }

    /// Metadata `key` as a list of integers; a single integer becomes a list of `n` copies.
    pub fn meta_usizes(&self, key: &str, n: usize) -> Result<Vec<usize>> {
        match self.meta_json::<serde_json::Value>(key)? {
            serde_json::Value::Array(_) => self.meta_json(key),
            v => {
                let x = v
                    .as_u64()
                    .ok_or_else(|| self.format_err(format!("metadata `{key}` not an integer")))?;
                Ok(vec![x as usize; n])
            }
        }
    }
}

/// What [`check_family`] found.
#[derive(Debug, Clone, Default)]
pub struct FamilyReport {
    /// Cases that passed.
    pub checked: usize,
    /// `case: error` for each case that failed.
    pub failures: Vec<String>,
}

/// Runs `check` on every case file of `family` (listing the folder), printing one line per
/// case with the largest error `check` returns, and a summary line with the count.
/// `Ok(None)`, after printing a skip line, when the family folder is absent.
pub fn check_family(
    family: &str,
    check: impl Fn(&Case) -> Result<f64>,
) -> Result<Option<FamilyReport>> {
    let cpu = Target {
        device: Device::Cpu,
        portable: false,
    };
    check_family_on(family, &[cpu], |case, _| check(case))
}

/// Where a device-parity check runs: a device, and which form the ops take there.
#[derive(Debug, Clone)]
pub struct Target {
    /// The device the case's tensors are put on.
    pub device: Device,
    /// Ops take their portable form (candle ops, what CUDA runs) even on the CPU; see
    /// [`crate::ops::with_portable_ops`].
    pub portable: bool,
}

impl Target {
    /// `cpu`, `cpu-portable`, `cuda:0`, …
    pub fn name(&self) -> String {
        let d = crate::device::name(&self.device);
        if self.portable && self.device.is_cpu() {
            format!("{d}-portable")
        } else {
            d
        }
    }
}

/// The device-parity targets: the CPU with scarce-core's kernels, the CPU with the portable
/// ops (the arithmetic and gradients of the GPU path, on a machine with no GPU), and every
/// device of [`crate::device::available`] beyond the CPU.
pub fn parity_targets() -> Vec<Target> {
    let mut targets = vec![
        Target {
            device: Device::Cpu,
            portable: false,
        },
        Target {
            device: Device::Cpu,
            portable: true,
        },
    ];
    targets.extend(
        crate::device::available()
            .into_iter()
            .filter(|d| !d.is_cpu())
            .map(|device| Target {
                device,
                portable: false,
            }),
    );
    targets
}

/// [`check_family`] on each of `targets` (the device-parity form: pass [`parity_targets`]):
/// every case is checked on every target, and the lines and failures name the target.
/// `checked` counts (case, target) pairs.
pub fn check_family_on(
    family: &str,
    targets: &[Target],
    check: impl Fn(&Case, &Device) -> Result<f64>,
) -> Result<Option<FamilyReport>> {
    let Some(files) = case_files(family)? else {
        println!("SKIP {family} fixtures: no fixtures/{family} folder (set SCARCE_FIXTURES or place shared/ beside the repo)");
        return Ok(None);
    };
    let mut report = FamilyReport::default();
    for f in &files {
        let case = Case::load(f)?;
        for target in targets {
            let name = target.name();
            let result = if target.portable {
                crate::ops::with_portable_ops(|| check(&case, &target.device))
            } else {
                check(&case, &target.device)
            };
            match result {
                Ok(e) => {
                    report.checked += 1;
                    println!("ok   {name:<12} {:<45} max err {e:.1e}", case.name);
                }
                Err(e) => report.failures.push(format!("{name} {}: {e}", case.name)),
            }
        }
    }
    let names: Vec<String> = targets.iter().map(Target::name).collect();
    println!(
        "{family} fixtures on {}: {} checks, {} failed",
        names.join(", "),
        report.checked,
        report.failures.len()
    );
    Ok(Some(report))
}

/// Relative error `max|a-b| / max(max|b|, 1e-300)` between two tensors of equal shape.
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        return Err(Error::shape("a", format!("{:?}", b.dims()), a.dims()));
    }
    let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max).max(1e-300);
    Ok(diff / scale)
}
