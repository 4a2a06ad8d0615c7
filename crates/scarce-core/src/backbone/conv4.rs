//! Conv4: four blocks of conv3×3 → batch norm → ReLU → max-pool 2 (Vinyals et al.; the
//! Prototypical Networks and MAML backbone), in 2D or 3D.

use super::{bn_buffers, bn_params, uniform_fan_in, Spatial};
use crate::model::{Ctx, Model};
use crate::ops;
use crate::rng::Stream;
use crate::{Error, Params, Result};
use candle_core::{Device, Tensor};

/// Shape of a [`Conv4`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conv4Config {
    /// Input channels (1 for Omniglot, 3 for RGB).
    pub in_channels: usize,
    /// Channels of every block (64 in Conv4-64).
    pub hidden: usize,
    /// Number of blocks (4).
    pub blocks: usize,
    /// 2D images or 3D volumes.
    pub spatial: Spatial,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
}

impl Default for Conv4Config {
    fn default() -> Self {
        Conv4Config {
            in_channels: 1,
            hidden: 64,
            blocks: 4,
            spatial: Spatial::D2,
            bn_eps: 1e-5,
        }
    }
}

/// The Conv4 backbone. Names: `encoder.{i}.0.{weight,bias}` (conv),
/// `encoder.{i}.1.{weight,bias,running_mean,running_var}` (batch norm), as PyTorch's
/// `nn.Sequential` of blocks. Output: `[N, hidden · prod(final spatial)]`, flattened C, H, W.
#[derive(Debug, Clone)]
pub struct Conv4 {
    /// The shape.
    pub config: Conv4Config,
}

impl Conv4 {
    /// A Conv4 of this shape.
    pub fn new(config: Conv4Config) -> Result<Self> {
        if config.in_channels == 0 || config.hidden == 0 || config.blocks == 0 {
            return Err(Error::param(
                "Conv4Config",
                "in_channels, hidden and blocks must be positive",
            ));
        }
        Ok(Conv4 { config })
    }

    fn cin(&self, i: usize) -> usize {
        if i == 0 {
            self.config.in_channels
        } else {
            self.config.hidden
        }
    }
}

impl Model for Conv4 {
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let c = &self.config;
        let mut p = Params::new();
        for i in 0..c.blocks {
            let fan_in = self.cin(i) * 3usize.pow(c.spatial.axes() as u32);
            let w = c.spatial.kernel(c.hidden, self.cin(i), 3);
            uniform_fan_in(
                &mut p,
                rng,
                &format!("encoder.{i}.0.weight"),
                &w,
                fan_in,
                device,
            )?;
            uniform_fan_in(
                &mut p,
                rng,
                &format!("encoder.{i}.0.bias"),
                &[c.hidden],
                fan_in,
                device,
            )?;
            bn_params(&mut p, &format!("encoder.{i}.1"), c.hidden, device)?;
        }
        Ok(p)
    }

    fn buffers(&self, device: &Device) -> Result<Params> {
        let mut b = Params::new();
        for i in 0..self.config.blocks {
            bn_buffers(
                &mut b,
                &format!("encoder.{i}.1"),
                self.config.hidden,
                device,
            )?;
        }
        Ok(b)
    }

    fn forward(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let c = &self.config;
        c.spatial.check_input(x, c.in_channels)?;
        let mut h = x.clone();
        for i in 0..c.blocks {
            let w = p.require(&format!("encoder.{i}.0.weight"))?;
            let b = p.require(&format!("encoder.{i}.0.bias"))?;
            let bn = format!("encoder.{i}.1");
            if let Some((wf, bf)) = ctx.fold_batch_norm(p, &bn, w, b, c.bn_eps)? {
                // Eval mode: batch norm folded into the convolution, one pass fewer.
                h = c.spatial.conv(&h, &wf, Some(&bf), 1, 1)?;
                h = ops::relu(&c.spatial.max_pool(&h, 2)?)?;
                continue;
            }
            h = c.spatial.conv(&h, w, Some(b), 1, 1)?;
            // Batch norm and max-pool (one fused op in training), then ReLU: equal to ReLU
            // then max-pool, values and gradients, since ReLU is monotone (each window's first
            // maximum is the same element, and where it is ≤ 0 the gradient is 0 either way).
            h = ctx.batch_norm_max_pool(p, &bn, &h, c.bn_eps, 2)?;
            h = ops::relu(&h)?;
        }
        Ok(h.flatten_from(1)?)
    }
}
