//! Oracle fixtures for scarce's tests: reference values from PyTorch and other libraries,
//! stored as safetensors with a string metadata header (the format of `shared/fixtures/`).
//! A test helper, not part of any published crate's API (`publish = false`; the crates take
//! it as a path dev-dependency, which packaging drops).
//!
//! Fixture tests list a family's folder and check every case file they find, so a new case in
//! the same format is checked without code changes. The root is the directory named by the
//! environment variable `SCARCE_FIXTURES`, else the first `shared/fixtures` found beside the
//! current directory or one of its ancestors.
//!
//! The harness is built so that a check cannot pass while checking nothing:
//! - [`rel_err`] and [`rel_err_slices`] score any NaN as an infinite error, and
//!   [`within`] fails on NaN (`!(err <= tol)`), so a NaN output or a NaN oracle value fails;
//! - under CI (`CI=true`) or with `SCARCE_REQUIRE_FIXTURES=1` ([`required`]), a missing or
//!   empty family folder is an error naming the folder; elsewhere it is skipped with a line
//!   saying so;
//! - every tensor of a case must be read by the check ([`Case::tensor`] and the accessors
//!   record it) or named with the reason it is not compared ([`Case::not_compared`]); a case
//!   with a tensor the check never looked at fails, naming the tensor.

#![deny(missing_docs)]

use candle_core::{safetensors::Load, DType, Device, Tensor};
use scarce_core::{Error, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One fixture case: its settings and tensors.
#[derive(Debug)]
pub struct Case {
    /// The file it came from.
    pub path: PathBuf,
    /// The case name (file stem).
    pub name: String,
    /// Every scalar setting, as the strings stored in the header.
    pub meta: HashMap<String, String>,
    /// The tensors, by name, on the CPU in their stored dtype. Read them through
    /// [`Case::tensor`] (or [`Case::f64`]) so that the harness knows they were used.
    pub tensors: HashMap<String, Tensor>,
    /// Names of the tensors read so far, or declared not compared.
    used: Mutex<BTreeSet<String>>,
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

/// True when missing fixtures or data must fail a test instead of skipping it: under CI
/// (`CI` set to anything but `false` or `0`) or with `SCARCE_REQUIRE_FIXTURES=1`.
pub fn required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| {
                let v = v.trim();
                !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
            })
            .unwrap_or(false)
    };
    on("CI") || on("SCARCE_REQUIRE_FIXTURES")
}

/// What to do when a test's fixture or data folder is absent or empty: under [`required`],
/// an error naming the folder; otherwise a printed `SKIP` line and `Ok(())`, so the caller
/// skips. `what` says what the folder should hold.
pub fn absent(folder: &Path, what: &str) -> Result<()> {
    if required() {
        return Err(Error::Format {
            path: folder.into(),
            reason: format!(
                "{what}: missing or empty, and fixtures are required here (CI or \
                 SCARCE_REQUIRE_FIXTURES=1); set SCARCE_FIXTURES / SCARCE_DATA or place \
                 shared/ beside the repo"
            ),
        });
    }
    println!(
        "SKIP {what}: {} is missing or empty (set SCARCE_FIXTURES or place shared/ beside the repo)",
        folder.display()
    );
    Ok(())
}

/// The files ending in `.{ext}` (sorted) of fixture family `family`, such as `"ops"`.
/// `Ok(None)`, after a `SKIP` line, when the folder is absent or holds no such file and
/// fixtures are not [`required`]; an error naming the folder when they are.
pub fn family_files(family: &str, ext: &str) -> Result<Option<Vec<PathBuf>>> {
    let dir = root()
        .unwrap_or_else(|| PathBuf::from("shared").join("fixtures"))
        .join(family);
    let what = format!("{family} fixtures (*.{ext})");
    if !dir.is_dir() {
        absent(&dir, &what)?;
        return Ok(None);
    }
    let rd = std::fs::read_dir(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    if files.is_empty() {
        absent(&dir, &what)?;
        return Ok(None);
    }
    Ok(Some(files))
}

/// The case files (`*.safetensors`, sorted) of a fixture family; see [`family_files`].
pub fn case_files(family: &str) -> Result<Option<Vec<PathBuf>>> {
    family_files(family, "safetensors")
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
            used: Mutex::new(BTreeSet::new()),
        })
    }

    fn format_err(&self, reason: String) -> Error {
        Error::Format {
            path: self.path.clone(),
            reason,
        }
    }

    fn mark(&self, name: &str) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
    }

    /// The tensor `name` on `device`, in its stored dtype; records it as used.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| Error::Missing {
            name: name.into(),
            what: self.path.display().to_string(),
        })?;
        self.mark(name);
        Ok(t.to_device(device)?)
    }

    /// Declares that tensor `name`, when the case holds it, is deliberately not compared;
    /// `why` says why (the harness otherwise fails a case with a tensor nobody read).
    pub fn not_compared(&self, name: &str, why: &str) {
        debug_assert!(!why.is_empty(), "say why `{name}` is not compared");
        if self.tensors.contains_key(name) {
            self.mark(name);
        }
    }

    /// The tensors of the case that were neither read nor declared not compared, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = self
            .tensors
            .keys()
            .filter(|n| !used.contains(*n))
            .cloned()
            .collect();
        names.sort();
        names
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
    /// [`scarce_core::ops::with_portable_ops`].
    pub portable: bool,
}

impl Target {
    /// `cpu`, `cpu-portable`, `cuda:0`, …
    pub fn name(&self) -> String {
        let d = scarce_core::device::name(&self.device);
        if self.portable && self.device.is_cpu() {
            format!("{d}-portable")
        } else {
            d
        }
    }
}

/// The device-parity targets: the CPU with scarce-core's kernels, the CPU with the portable
/// ops (the arithmetic and gradients of the GPU path, on a machine with no GPU), and every
/// device of [`scarce_core::device::available`] beyond the CPU.
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
        scarce_core::device::available()
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
        return Ok(None);
    };
    let mut report = FamilyReport::default();
    for f in &files {
        let case = Case::load(f)?;
        for target in targets {
            let name = target.name();
            let result = if target.portable {
                scarce_core::ops::with_portable_ops(|| check(&case, &target.device))
            } else {
                check(&case, &target.device)
            };
            // A tensor the check never read is a value nobody compared.
            let result = result.and_then(|e| match case.unused() {
                unused if unused.is_empty() => Ok(e),
                unused => Err(Error::Format {
                    path: case.path.clone(),
                    reason: format!(
                        "tensors never read by the check (compare them or name them with \
                         Case::not_compared): {}",
                        unused.join(", ")
                    ),
                }),
            });
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
/// Any NaN, in `a` or in `b`, makes the error infinite, as does an infinity in one that the
/// other does not match; see [`rel_err_slices`].
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        return Err(Error::shape("a", format!("{:?}", b.dims()), a.dims()));
    }
    let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    rel_err_slices(&a, &b)
}

/// [`rel_err`] on slices: `max|a-b| / max(max|b|, 1e-300)`. A length mismatch is an error;
/// a NaN anywhere scores `f64::INFINITY` (never a silent 0), equal infinities score 0.
pub fn rel_err_slices(a: &[f64], b: &[f64]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::param(
            "a",
            format!("{} values where the reference has {}", a.len(), b.len()),
        ));
    }
    let mut diff = 0.0f64;
    let mut scale = 1e-300f64;
    for (&x, &y) in a.iter().zip(b) {
        if x.is_nan() || y.is_nan() {
            return Ok(f64::INFINITY);
        }
        if x != y {
            diff = diff.max((x - y).abs());
        }
        if y.is_finite() {
            scale = scale.max(y.abs());
        }
    }
    Ok(diff / scale)
}

/// `Ok(err)` when `err <= tol`, else an error naming `what`. NaN fails.
pub fn within(what: &str, err: f64, tol: f64) -> Result<f64> {
    if err <= tol {
        Ok(err)
    } else {
        Err(Error::param(
            what,
            format!("relative error {err:.3e} > tolerance {tol:e}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_err_scores_nan_and_mismatched_infinities_as_infinite() {
        let ok = rel_err_slices(&[1.0, 2.0], &[1.0, 2.0 + 2e-12]).unwrap();
        assert!(ok > 0.0 && ok < 2e-12);
        for (a, b) in [
            (vec![f64::NAN, 2.0], vec![1.0, 2.0]),
            (vec![1.0, 2.0], vec![1.0, f64::NAN]),
            (vec![f64::NAN], vec![f64::NAN]),
            (vec![f64::INFINITY], vec![1.0]),
            (vec![1.0], vec![f64::NEG_INFINITY]),
        ] {
            assert_eq!(
                rel_err_slices(&a, &b).unwrap(),
                f64::INFINITY,
                "{a:?} {b:?}"
            );
        }
        assert_eq!(
            rel_err_slices(&[f64::INFINITY], &[f64::INFINITY]).unwrap(),
            0.0
        );
        assert!(rel_err_slices(&[1.0], &[1.0, 2.0]).is_err());
        let t = Tensor::new(&[1.0f64, f64::NAN, 3.0], &Device::Cpu).unwrap();
        let u = Tensor::new(&[1.0f64, 2.0, 3.0], &Device::Cpu).unwrap();
        assert_eq!(rel_err(&t, &u).unwrap(), f64::INFINITY);
        assert_eq!(rel_err(&u, &t).unwrap(), f64::INFINITY);
    }

    #[test]
    fn within_fails_on_nan() {
        assert!(within("x", 1e-13, 1e-12).is_ok());
        assert!(within("x", 2e-12, 1e-12).is_err());
        assert!(within("x", f64::NAN, 1e-12).is_err());
        assert!(within("x", f64::INFINITY, 1e-12).is_err());
    }

    #[test]
    fn a_tensor_nobody_read_is_reported() {
        let t = Tensor::new(&[1.0f64], &Device::Cpu).unwrap();
        let case = Case {
            path: "x.safetensors".into(),
            name: "x".into(),
            meta: HashMap::new(),
            tensors: [("a", &t), ("b", &t), ("c", &t)]
                .into_iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
            used: Mutex::new(BTreeSet::new()),
        };
        case.tensor("a", &Device::Cpu).unwrap();
        case.not_compared("c", "an input the oracle also derived");
        assert_eq!(case.unused(), vec!["b".to_string()]);
    }
}
