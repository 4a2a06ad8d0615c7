//! A trained encoder: a model, its weights and its batch-norm statistics, read out in eval
//! mode, saved and loaded alone (the projection head stays behind).

use std::path::Path;

use candle_core::{Device, Tensor};
use scarce_core::checkpoint::{self, CheckpointMeta};
use scarce_core::{Ctx, Error, Model, Params, Result};

/// A model with its learnt weights and running statistics.
#[derive(Debug, Clone)]
pub struct Encoder<M> {
    /// The architecture.
    pub model: M,
    /// Learnt weights.
    pub params: Params,
    /// Batch-norm running statistics (empty for a model without batch norm).
    pub buffers: Params,
}

impl<M: Model> Encoder<M> {
    /// Features of `x` (`[N, ...]`) in eval mode, `batch` images at a time.
    pub fn features(&self, x: &Tensor, batch: usize) -> Result<Tensor> {
        let n = x.dim(0)?;
        let batch = batch.max(1);
        let mut out = Vec::with_capacity(n.div_ceil(batch));
        for start in (0..n).step_by(batch) {
            let mut ctx = Ctx::eval(self.buffers.clone());
            let xb = x.narrow(0, start, batch.min(n - start))?;
            out.push(self.model.forward(&self.params, &xb, &mut ctx)?.detach());
        }
        if out.is_empty() {
            return Err(Error::param("x", "no images"));
        }
        Ok(Tensor::cat(&out, 0)?)
    }

    /// Writes weights and statistics (statistics under `buffers.`) with `meta` (kind,
    /// config, provenance) to a safetensors checkpoint, atomically.
    pub fn save(&self, path: impl AsRef<Path>, meta: &CheckpointMeta) -> Result<()> {
        let mut all = self.params.clone();
        all.insert_prefixed("buffers.", &self.buffers);
        checkpoint::save(path, &all, meta)
    }

    /// Reads an encoder written by [`Encoder::save`] for `model`; every tensor the model
    /// needs must be there with its shape (the error names the first that is not).
    pub fn load(
        model: M,
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(Self, CheckpointMeta)> {
        let path = path.as_ref();
        let (all, meta) = checkpoint::load(path, device)?;
        let want_p = model.init(&scarce_core::rng::Stream::new(0, "shape"), device)?;
        let want_b = model.buffers(device)?;
        let mut params = Params::new();
        let mut buffers = Params::new();
        for (want, prefix, out) in [
            (&want_p, "", &mut params),
            (&want_b, "buffers.", &mut buffers),
        ] {
            for (name, t) in want.iter() {
                let key = format!("{prefix}{name}");
                let got = all.get(&key).ok_or_else(|| Error::Format {
                    path: path.into(),
                    reason: format!("tensor `{key}` missing"),
                })?;
                if got.dims() != t.dims() {
                    return Err(Error::Format {
                        path: path.into(),
                        reason: format!(
                            "tensor `{key}` is {:?}, the model needs {:?}",
                            got.dims(),
                            t.dims()
                        ),
                    });
                }
                out.insert(name.to_string(), got.clone());
            }
        }
        Ok((
            Encoder {
                model,
                params,
                buffers,
            },
            meta,
        ))
    }
}
