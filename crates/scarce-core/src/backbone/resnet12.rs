//! ResNet-12 (Oreshkin et al. 2018; Lee et al. 2019): four residual blocks of three
//! conv3×3 → batch norm → leaky ReLU(0.1), a 1×1 conv + batch-norm shortcut, and max-pool 2,
//! then global average pooling. 2D or 3D.

use super::{bn_buffers, bn_params, uniform_fan_in, Spatial};
use crate::model::{Ctx, Model};
use crate::ops;
use crate::rng::Stream;
use crate::{Error, Params, Result};
use candle_core::{Device, Tensor};

/// Shape of a [`ResNet12`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNet12Config {
    /// Input channels.
    pub in_channels: usize,
    /// Channels of the four blocks (64, 160, 320, 640 in the usual model).
    pub channels: Vec<usize>,
    /// 2D images or 3D volumes.
    pub spatial: Spatial,
    /// Negative slope of the leaky ReLUs.
    pub leaky_slope: f64,
    /// Average over the final spatial positions (else flatten them).
    pub global_pool: bool,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
}

impl Default for ResNet12Config {
    fn default() -> Self {
        ResNet12Config {
            in_channels: 3,
            channels: vec![64, 160, 320, 640],
            spatial: Spatial::D2,
            leaky_slope: 0.1,
            global_pool: true,
            bn_eps: 1e-5,
        }
    }
}

/// The ResNet-12 backbone. Names: `layers.{i}.conv{1,2,3}.weight`, `layers.{i}.bn{1,2,3}.*`,
/// `layers.{i}.shortcut.0.weight` (1×1 conv), `layers.{i}.shortcut.1.*` (batch norm).
#[derive(Debug, Clone)]
pub struct ResNet12 {
    /// The shape.
    pub config: ResNet12Config,
}

impl ResNet12 {
    /// A ResNet-12 of this shape.
    pub fn new(config: ResNet12Config) -> Result<Self> {
        if config.channels.is_empty() || config.channels.contains(&0) || config.in_channels == 0 {
            return Err(Error::param(
                "ResNet12Config",
                "channels must be a non-empty list of positive widths",
            ));
        }
        Ok(ResNet12 { config })
    }

    fn cin(&self, i: usize) -> usize {
        if i == 0 {
            self.config.in_channels
        } else {
            self.config.channels[i - 1]
        }
    }
}

impl Model for ResNet12 {
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let c = &self.config;
        let k3 = 3usize.pow(c.spatial.axes() as u32);
        let mut p = Params::new();
        for (i, &width) in c.channels.iter().enumerate() {
            for j in 1..=3 {
                let cin = if j == 1 { self.cin(i) } else { width };
                let name = format!("layers.{i}.conv{j}.weight");
                uniform_fan_in(
                    &mut p,
                    rng,
                    &name,
                    &c.spatial.kernel(width, cin, 3),
                    cin * k3,
                    device,
                )?;
                bn_params(&mut p, &format!("layers.{i}.bn{j}"), width, device)?;
            }
            let name = format!("layers.{i}.shortcut.0.weight");
            uniform_fan_in(
                &mut p,
                rng,
                &name,
                &c.spatial.kernel(width, self.cin(i), 1),
                self.cin(i),
                device,
            )?;
            bn_params(&mut p, &format!("layers.{i}.shortcut.1"), width, device)?;
        }
        Ok(p)
    }

    fn buffers(&self, device: &Device) -> Result<Params> {
        let mut b = Params::new();
        for (i, &width) in self.config.channels.iter().enumerate() {
            for j in 1..=3 {
                bn_buffers(&mut b, &format!("layers.{i}.bn{j}"), width, device)?;
            }
            bn_buffers(&mut b, &format!("layers.{i}.shortcut.1"), width, device)?;
        }
        Ok(b)
    }

    fn forward(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let c = &self.config;
        c.spatial.check_input(x, c.in_channels)?;
        let mut h = x.clone();
        for i in 0..c.channels.len() {
            let short = c.spatial.conv(
                &h,
                p.require(&format!("layers.{i}.shortcut.0.weight"))?,
                None,
                1,
                0,
            )?;
            let short = ctx.batch_norm(p, &format!("layers.{i}.shortcut.1"), &short, c.bn_eps)?;
            let mut y = h;
            for j in 1..=3 {
                y = c.spatial.conv(
                    &y,
                    p.require(&format!("layers.{i}.conv{j}.weight"))?,
                    None,
                    1,
                    1,
                )?;
                y = ctx.batch_norm(p, &format!("layers.{i}.bn{j}"), &y, c.bn_eps)?;
                if j < 3 {
                    y = ops::leaky_relu(&y, c.leaky_slope)?;
                }
            }
            // max-pool then leaky ReLU: the same values and gradients as the usual order,
            // since a strictly increasing function keeps each window's first maximum, on a
            // 2^d× smaller tensor.
            h = c.spatial.max_pool(&(y + short)?, 2)?;
            h = ops::leaky_relu(&h, c.leaky_slope)?;
        }
        if c.global_pool {
            let axes: Vec<usize> = (2..h.rank()).collect();
            Ok(h.mean(axes)?)
        } else {
            Ok(h.flatten_from(1)?)
        }
    }
}
