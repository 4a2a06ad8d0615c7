//! MedMNIST-style files: one `.npz` or `.safetensors` file holding `{split}_images` and
//! `{split}_labels` for the splits `train`, `val`, `test`. Images are `[N, H, W]` (grey),
//! `[N, H, W, 3]` (RGB, stored channels-last as MedMNIST does) or `[N, D, H, W]` (3D);
//! labels `[N]` or `[N, 1]` integers.

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::npy::{read_npz_member, NpyArray, NpyType};

/// A MedMNIST split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train_*`.
    Train,
    /// `val_*`.
    Val,
    /// `test_*`.
    Test,
}

impl Split {
    /// The key prefix in the file.
    pub fn key(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Loads one split of a MedMNIST-style file (`.npz` or `.safetensors`, by extension).
/// Pixels are 8-bit, read in `[0, 1]`.
pub fn load_medmnist(path: &Path, split: Split) -> Result<Dataset> {
    let (images, labels) = match path.extension().and_then(|e| e.to_str()) {
        Some("npz") => (
            read_npz_member(path, &format!("{}_images", split.key()))?,
            read_npz_member(path, &format!("{}_labels", split.key()))?,
        ),
        Some("safetensors") => read_safetensors(path, split)?,
        _ => {
            return Err(Error::format(
                path,
                "expected a .npz or .safetensors MedMNIST file",
            ))
        }
    };
    let n = images.shape.first().copied().unwrap_or(0);
    let bytes = images
        .bytes()
        .filter(|_| images.dtype == NpyType::U8)
        .ok_or_else(|| Error::format(path, format!("{}_images must be uint8", split.key())))?;
    let (shape, pixels): (Vec<usize>, Vec<u8>) = match images.shape[..] {
        [_, h, w] => (vec![1, h, w], bytes.to_vec()),
        [_, h, w, 3] if !(h == w && w == 3) => {
            // Channels-last RGB to channels-first.
            let mut out = vec![0u8; bytes.len()];
            for s in 0..n {
                for p in 0..h * w {
                    for c in 0..3 {
                        out[s * 3 * h * w + c * h * w + p] = bytes[(s * h * w + p) * 3 + c];
                    }
                }
            }
            (vec![3, h, w], out)
        }
        [_, d, h, w] => (vec![1, d, h, w], bytes.to_vec()),
        _ => {
            return Err(Error::format(
                path,
                format!("{}_images has shape {:?}", split.key(), images.shape),
            ))
        }
    };
    let label_shape_ok = labels.shape == [n] || labels.shape == [n, 1];
    if !label_shape_ok {
        return Err(Error::format(
            path,
            format!(
                "{}_labels must be [{n}] or [{n}, 1] (multi-label files are not supported), got {:?}",
                split.key(),
                labels.shape
            ),
        ));
    }
    let labels = labels.to_labels(path)?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("medmnist");
    Dataset::from_u8(&format!("{stem}-{}", split.key()), &shape, pixels, labels)
}

fn read_safetensors(path: &Path, split: Split) -> Result<(NpyArray, NpyArray)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let get = |what: &str| -> Result<NpyArray> {
        let key = format!("{}_{what}", split.key());
        let t = st
            .tensor(&key)
            .map_err(|_| Error::format(path, format!("no tensor `{key}`")))?;
        let dtype = match t.dtype() {
            safetensors::Dtype::U8 => NpyType::U8,
            safetensors::Dtype::I64 => NpyType::I64,
            safetensors::Dtype::I32 => NpyType::I32,
            safetensors::Dtype::U32 => NpyType::U32,
            other => {
                return Err(Error::format(
                    path,
                    format!("tensor `{key}` has unsupported type {other:?}"),
                ))
            }
        };
        NpyArray::from_le_bytes(t.shape().to_vec(), dtype, t.data().to_vec())
            .map_err(|e| Error::format(path, format!("tensor `{key}`: {e}")))
    };
    Ok((get("images")?, get("labels")?))
}
