//! A multilayer perceptron (the MAML sinusoid network is `MlpConfig::new(&[1, 40, 40, 1])`).

use super::uniform_fan_in;
use crate::model::{Ctx, Model};
use crate::ops;
use crate::rng::Stream;
use crate::{Error, Params, Result};
use candle_core::{Device, Tensor};

/// Shape of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Layer widths, input first, output last (at least two).
    pub sizes: Vec<usize>,
    /// Negative slope of the hidden activation (0 = ReLU).
    pub leaky_slope: f64,
}

impl MlpConfig {
    /// ReLU MLP with these widths.
    pub fn new(sizes: &[usize]) -> Self {
        MlpConfig {
            sizes: sizes.to_vec(),
            leaky_slope: 0.0,
        }
    }
}

/// Linear layers with ReLU between them. Names `net.{2i}.{weight,bias}`, as PyTorch's
/// `nn.Sequential(Linear, ReLU, Linear, …)`. Input `[B, sizes[0]]`.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// The shape.
    pub config: MlpConfig,
}

impl Mlp {
    /// An MLP of this shape.
    pub fn new(config: MlpConfig) -> Result<Self> {
        if config.sizes.len() < 2 || config.sizes.contains(&0) {
            return Err(Error::param(
                "MlpConfig.sizes",
                format!("{:?}: need at least two positive widths", config.sizes),
            ));
        }
        Ok(Mlp { config })
    }
}

impl Model for Mlp {
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let mut p = Params::new();
        for (i, w) in self.config.sizes.windows(2).enumerate() {
            uniform_fan_in(
                &mut p,
                rng,
                &format!("net.{}.weight", 2 * i),
                &[w[1], w[0]],
                w[0],
                device,
            )?;
            uniform_fan_in(
                &mut p,
                rng,
                &format!("net.{}.bias", 2 * i),
                &[w[1]],
                w[0],
                device,
            )?;
        }
        Ok(p)
    }

    fn forward(&self, p: &Params, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let s = &self.config.sizes;
        if x.rank() != 2 || x.dim(1)? != s[0] {
            return Err(Error::shape("x", format!("[B, {}]", s[0]), x.dims()));
        }
        let layers = s.len() - 1;
        let mut h = x.clone();
        for i in 0..layers {
            let w = p.require(&format!("net.{}.weight", 2 * i))?;
            let b = p.require(&format!("net.{}.bias", 2 * i))?;
            h = ops::linear(&h, w, Some(b))?;
            if i + 1 < layers {
                h = if self.config.leaky_slope == 0.0 {
                    ops::relu(&h)?
                } else {
                    ops::leaky_relu(&h, self.config.leaky_slope)?
                };
            }
        }
        Ok(h)
    }
}
