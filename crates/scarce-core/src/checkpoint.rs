//! Checkpoints: [`Params`] in a safetensors file whose header carries what produced them.
//!
//! The header (`__metadata__`) holds `scarce.kind` (what the tensors are, e.g. `"conv4"`),
//! `scarce.config` (the model or experiment config as JSON), `scarce.version` (the crate
//! version that wrote it), `scarce.order` (the parameter order, which safetensors itself does
//! not keep) and any provenance the caller adds. Files are written atomically: to a temporary
//! file beside the target, flushed, then renamed, so a crash never leaves a half-written
//! checkpoint under the real name.

use crate::{Error, Params, Result};
use candle_core::{safetensors::Load, Device};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointMeta {
    /// What the tensors are (`"conv4"`, `"protonet"`, …).
    pub kind: String,
    /// The config that builds the model, as JSON.
    pub config: serde_json::Value,
    /// The `scarce-core` version that wrote the file (set by [`save`]).
    pub version: String,
    /// Free-form provenance: training step, data set, seed, …
    pub extra: BTreeMap<String, String>,
}

const KIND: &str = "scarce.kind";
const CONFIG: &str = "scarce.config";
const VERSION: &str = "scarce.version";
const ORDER: &str = "scarce.order";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `params` and `meta` to `path` atomically. `meta.version` is overwritten with this
/// crate's version.
pub fn save(path: impl AsRef<Path>, params: &Params, meta: &CheckpointMeta) -> Result<()> {
    let path = path.as_ref();
    let mut header: HashMap<String, String> = meta
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    header.insert(KIND.into(), meta.kind.clone());
    header.insert(CONFIG.into(), meta.config.to_string());
    header.insert(VERSION.into(), env!("CARGO_PKG_VERSION").into());
    header.insert(
        ORDER.into(),
        serde_json::to_string(params.names()).unwrap_or_default(),
    );
    // Tensors must be contiguous for safetensors' View.
    let tensors = params
        .iter()
        .map(|(n, t)| Ok((n.to_string(), t.contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(tensors, Some(header)).map_err(|e| Error::Format {
        path: path.into(),
        reason: e.to_string(),
    })?;

    let file_name = path
        .file_name()
        .ok_or_else(|| Error::param("path", format!("{} has no file name", path.display())))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}

/// Reads a checkpoint written by [`save`] onto `device`. Files without scarce's header keys
/// (plain safetensors) load too, with their tensors in name order and an empty `kind`.
pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<(Params, CheckpointMeta)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(io(path))?;
    let fmt = |e: safetensors::SafeTensorError| Error::Format {
        path: path.into(),
        reason: e.to_string(),
    };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(fmt)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(fmt)?;
    let mut header = header.metadata().clone().unwrap_or_default();

    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    if let Some(order) = header.remove(ORDER) {
        let order: Vec<String> = serde_json::from_str(&order).map_err(|e| Error::Format {
            path: path.into(),
            reason: format!("bad {ORDER}: {e}"),
        })?;
        let mut sorted = order.clone();
        sorted.sort();
        if sorted != names {
            return Err(Error::Format {
                path: path.into(),
                reason: format!("{ORDER} does not list the file's tensors"),
            });
        }
        names = order;
    }
    let mut params = Params::new();
    for n in &names {
        let view = st.tensor(n).map_err(fmt)?;
        params.insert(n.clone(), view.load(device)?);
    }
    let config = match header.remove(CONFIG) {
        Some(c) => serde_json::from_str(&c).map_err(|e| Error::Format {
            path: path.into(),
            reason: format!("bad {CONFIG}: {e}"),
        })?,
        None => serde_json::Value::Null,
    };
    let meta = CheckpointMeta {
        kind: header.remove(KIND).unwrap_or_default(),
        config,
        version: header.remove(VERSION).unwrap_or_default(),
        extra: header.into_iter().collect(),
    };
    Ok((params, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn roundtrip_keeps_order_values_and_header() {
        let dir = std::env::temp_dir().join(format!("scarce-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        let d = Device::Cpu;
        let mut p = Params::new();
        p.insert("z.weight", Tensor::new(&[1f32, 2., 3.], &d).unwrap());
        p.insert("a.bias", Tensor::new(&[[4f64]], &d).unwrap());
        let mut meta = CheckpointMeta {
            kind: "test".into(),
            config: serde_json::json!({"hidden": 64}),
            ..Default::default()
        };
        meta.extra.insert("step".into(), "17".into());
        save(&path, &p, &meta).unwrap();
        let (q, m) = load(&path, &d).unwrap();
        assert_eq!(q.names(), p.names());
        assert_eq!(
            q.require("z.weight").unwrap().to_vec1::<f32>().unwrap(),
            [1., 2., 3.]
        );
        assert_eq!(
            q.require("a.bias").unwrap().to_vec2::<f64>().unwrap(),
            [[4.]]
        );
        assert_eq!(m.kind, "test");
        assert_eq!(m.config["hidden"], 64);
        assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(m.extra["step"], "17");
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A truncated file is an error that names the file.
        let bytes = std::fs::read(&path).unwrap();
        let bad = dir.join("bad.safetensors");
        std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(&bad, &d).unwrap_err().to_string();
        assert!(err.contains("bad.safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_target_is_an_error_and_leaves_nothing() {
        let p: Params = [("a".to_string(), Tensor::new(&[1f32], &Device::Cpu).unwrap())]
            .into_iter()
            .collect();
        let err = save(
            "/nonexistent-dir/x.safetensors",
            &p,
            &CheckpointMeta::default(),
        );
        assert!(err.unwrap_err().to_string().contains("nonexistent-dir"));
    }
}
