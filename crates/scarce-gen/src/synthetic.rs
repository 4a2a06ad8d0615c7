//! Synthetic data with provenance, ready to mix into scarce-episodes.
//!
//! Every synthetic sample records where it came from — the SHA-256 of the generator's
//! checkpoint file, the generator kind, the seed, its class and its index — so a data set
//! built from it can be traced, and a result reproduced, down to the image. Mixed into a real
//! data set, synthetic samples carry the site `synthetic:<hash prefix>` and one group each,
//! so site- and patient-aware splits keep them apart from real patients.

use crate::train::Generative;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use scarce_core::{Params, Stream};
use scarce_episodes::Dataset;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Where one synthetic sample came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// SHA-256 (hex) of the generator checkpoint file.
    pub checkpoint_sha256: String,
    /// The generator's kind (`scarce-gen/diffusion`, …).
    pub generator: String,
    /// Seed of the sampling run.
    pub seed: u64,
    /// The class it was generated for.
    pub class: usize,
    /// Its index within its class in that run.
    pub index: usize,
}

/// Generated images (`[N, C, …]` in `[0, 1]`) with their provenance (which holds each
/// image's class).
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    /// The images, in `[0, 1]`.
    pub images: Tensor,
    /// One record per image.
    pub provenance: Vec<Provenance>,
}

/// SHA-256 (hex) of a file.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl SyntheticDataset {
    /// Samples `per_class[c]` images of every class `c` from `model` with weights `p` (those
    /// of the checkpoint at `checkpoint`, which is hashed for provenance), `batch` at a time.
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        model: &dyn Generative,
        p: &Params,
        checkpoint: &Path,
        per_class: &[usize],
        size: &[usize],
        seed: u64,
        batch: usize,
        device: &Device,
    ) -> Result<Self> {
        if model.num_classes().is_some_and(|k| per_class.len() > k) {
            return Err(Error::config(
                "per_class",
                format!(
                    "{} classes asked of a {}-class generator",
                    per_class.len(),
                    model.num_classes().unwrap_or(0)
                ),
            ));
        }
        if model.num_classes().is_none() && per_class.len() != 1 {
            return Err(Error::config(
                "per_class",
                "an unconditional generator has one class",
            ));
        }
        let hash = file_sha256(checkpoint)?;
        let rng = Stream::new(seed, "synthetic");
        let (mut parts, mut provenance) = (Vec::new(), Vec::new());
        for (class, &n) in per_class.iter().enumerate() {
            for start in (0..n).step_by(batch.max(1)) {
                let len = batch.max(1).min(n - start);
                let cls = vec![class; len];
                let cond = model.num_classes().map(|_| cls.as_slice());
                let x = model.sample(
                    p,
                    len,
                    size,
                    cond,
                    &rng.at(class as u64).at(start as u64),
                    device,
                )?;
                parts.push(((x.to_dtype(DType::F32)? + 1.0)? * 0.5)?);
                provenance.extend((start..start + len).map(|index| Provenance {
                    checkpoint_sha256: hash.clone(),
                    generator: model.kind().to_string(),
                    seed,
                    class,
                    index,
                }));
            }
        }
        if parts.is_empty() {
            return Err(Error::config("per_class", "no samples asked for"));
        }
        Ok(SyntheticDataset {
            images: Tensor::cat(&parts, 0)?,
            provenance,
        })
    }

    /// The class of every image, from its provenance.
    pub fn labels(&self) -> Vec<usize> {
        self.provenance.iter().map(|p| p.class).collect()
    }

    /// `real` plus synthetic samples so that, in every class, synthetic samples make up
    /// `ratio` of the result (as far as there are enough; the first ones are taken). Real
    /// samples keep their site (or get `real`), synthetic ones get the site
    /// `synthetic:<first 12 hex of the checkpoint hash>` and a group each
    /// (`synthetic:<class>:<index>`). The sample shapes must agree.
    pub fn mix_into(&self, real: &Dataset, ratio: f64) -> Result<Dataset> {
        if !(0.0..1.0).contains(&ratio) {
            return Err(Error::config(
                "ratio",
                format!("{ratio}: need 0 <= ratio < 1"),
            ));
        }
        if self.images.dim(0)? != self.provenance.len() {
            return Err(Error::config(
                "provenance",
                format!(
                    "{} records for {} images",
                    self.provenance.len(),
                    self.images.dim(0)?
                ),
            ));
        }
        let shape = real.sample_shape().to_vec();
        if self.images.dims()[1..] != shape[..] {
            return Err(Error::config(
                "synthetic images",
                format!(
                    "sample shape {:?} differs from the real data's {shape:?}",
                    &self.images.dims()[1..]
                ),
            ));
        }
        let len = real.sample_len();
        let synth = self.images.flatten_all()?.to_vec1::<f32>()?;
        let (mut pixels, mut labels, mut sites, mut groups) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut buf = vec![0f32; len];
        for i in 0..real.len() {
            real.read(i, &mut buf)?;
            pixels.extend_from_slice(&buf);
            labels.push(real.labels()[i]);
            sites.push(real.site(i).unwrap_or("real").to_string());
            groups.push(if real.has_groups() {
                real.group_name(real.group(i))
            } else {
                format!("real:{i}")
            });
        }
        for c in 0..real.n_classes() {
            let n_real = real.class_samples(c).len() as f64;
            let want = (ratio / (1.0 - ratio) * n_real).round() as usize;
            for (j, pr) in self
                .provenance
                .iter()
                .enumerate()
                .filter(|(_, p)| p.class == c)
                .take(want)
            {
                pixels.extend_from_slice(&synth[j * len..(j + 1) * len]);
                labels.push(c);
                sites.push(format!(
                    "synthetic:{}",
                    &pr.checkpoint_sha256[..12.min(pr.checkpoint_sha256.len())]
                ));
                groups.push(format!("synthetic:{c}:{}", pr.index));
            }
        }
        let names = (0..real.n_classes())
            .map(|c| real.class_name(c).to_string())
            .collect();
        Ok(Dataset::from_f32(
            &format!("{}+synthetic", real.name()),
            &shape,
            pixels,
            labels,
        )?
        .with_class_names(names)?
        .with_sites(sites)?
        .with_groups(groups)?)
    }
}
