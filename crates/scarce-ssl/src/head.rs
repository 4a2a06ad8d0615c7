//! Projection heads: what sits between an encoder and a self-supervised loss, and is thrown
//! away after pretraining.

use candle_core::{DType, Device, Tensor};
use scarce_core::rng::Stream;
use scarce_core::{Ctx, Error, Model, Params, Result};

/// lightly's `SimCLRProjectionHead` (two layers): `Linear(in, hidden, bias = false)` →
/// `BatchNorm1d(hidden)` → ReLU → `Linear(hidden, out)`. Names `layers.0.weight`,
/// `layers.1.{weight, bias, running_mean, running_var}`, `layers.3.{weight, bias}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectionHead {
    /// Input width (the encoder's feature width).
    pub input_dim: usize,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Output width.
    pub output_dim: usize,
}

impl ProjectionHead {
    /// A head of these widths (all positive).
    pub fn new(input_dim: usize, hidden_dim: usize, output_dim: usize) -> Result<Self> {
        if input_dim == 0 || hidden_dim == 0 || output_dim == 0 {
            return Err(Error::param("ProjectionHead", "widths must be positive"));
        }
        Ok(ProjectionHead {
            input_dim,
            hidden_dim,
            output_dim,
        })
    }
}

/// PyTorch's `nn.Linear` default: uniform in `±1/√fan_in`.
fn uniform(rng: &Stream, shape: &[usize], fan_in: usize, dev: &Device) -> Result<Tensor> {
    let b = 1.0 / (fan_in as f64).sqrt();
    rng.uniform_tensor(shape, -b, b, DType::F32, dev)
}

impl Model for ProjectionHead {
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let (i, h, o) = (self.input_dim, self.hidden_dim, self.output_dim);
        let mut p = Params::new();
        p.insert("layers.0.weight", uniform(&rng.at(0), &[h, i], i, device)?);
        p.insert("layers.1.weight", Tensor::ones(h, DType::F32, device)?);
        p.insert("layers.1.bias", Tensor::zeros(h, DType::F32, device)?);
        p.insert("layers.3.weight", uniform(&rng.at(1), &[o, h], h, device)?);
        p.insert("layers.3.bias", uniform(&rng.at(2), &[o], h, device)?);
        Ok(p)
    }

    fn buffers(&self, device: &Device) -> Result<Params> {
        let mut b = Params::new();
        b.insert(
            "layers.1.running_mean",
            Tensor::zeros(self.hidden_dim, DType::F32, device)?,
        );
        b.insert(
            "layers.1.running_var",
            Tensor::ones(self.hidden_dim, DType::F32, device)?,
        );
        Ok(b)
    }

    fn forward(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let h = scarce_core::ops::linear(x, p.require("layers.0.weight")?, None)?;
        let h = ctx.batch_norm(p, "layers.1", &h, 1e-5)?;
        let h = scarce_core::ops::relu(&h)?;
        scarce_core::ops::linear(
            &h,
            p.require("layers.3.weight")?,
            Some(p.require("layers.3.bias")?),
        )
    }
}
