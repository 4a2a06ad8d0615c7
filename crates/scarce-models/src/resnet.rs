//! ResNet-18 and ResNet-34 (He et al. 2016) exactly as torchvision builds them — BasicBlocks,
//! widths 64 / 128 / 256 / 512, no convolution bias, the stride on each stage's first 3×3
//! convolution, a 1×1 convolution + batch norm on the shortcut where the shape changes —
//! under torchvision's parameter and buffer names, so a converted torchvision state dict
//! loads unchanged. Two stems: ImageNet's (7×7 stride 2, max-pool 3 stride 2) and the 3×3
//! stride-1 stem without max-pool that the MedMNIST v2 benchmark uses at 28 × 28.

use candle_core::{DType, Device, Tensor};
use scarce_core::ops::{self, ConvOpts, PoolOpts};
use scarce_core::{Ctx, Error, Model, Params, Result, Stream};

use crate::state_dict::{batch_norm, init, init_tensor, Kind, TensorSpec};

/// The first layers of a [`ResNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stem {
    /// `conv1` 7×7 stride 2 padding 3, `bn1`, ReLU, max-pool 3 stride 2 padding 1.
    ImageNet,
    /// `conv1` 3×3 stride 1 padding 1, `bn1`, ReLU, no max-pool (small images: CIFAR,
    /// MedMNIST's 28 × 28).
    Small,
}

/// Shape of a [`ResNet`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    /// BasicBlocks per stage: `[2, 2, 2, 2]` (ResNet-18) or `[3, 4, 6, 3]` (ResNet-34).
    pub blocks: [usize; 4],
    /// Input channels (1 for grey-scale scans).
    pub in_channels: usize,
    /// Classes of the `fc` head; 0 = no head, `forward` gives the pooled features (timm's
    /// `num_classes=0`: an encoder for self-supervised pretraining or a probe).
    pub num_classes: usize,
    /// The stem.
    pub stem: Stem,
    /// Batch-norm epsilon (PyTorch: 1e-5).
    pub bn_eps: f64,
}

impl ResNetConfig {
    /// ResNet-18.
    pub fn resnet18(in_channels: usize, num_classes: usize, stem: Stem) -> Self {
        ResNetConfig {
            blocks: [2, 2, 2, 2],
            in_channels,
            num_classes,
            stem,
            bn_eps: 1e-5,
        }
    }

    /// ResNet-34.
    pub fn resnet34(in_channels: usize, num_classes: usize, stem: Stem) -> Self {
        ResNetConfig {
            blocks: [3, 4, 6, 3],
            ..Self::resnet18(in_channels, num_classes, stem)
        }
    }
}

const WIDTHS: [usize; 4] = [64, 128, 256, 512];

/// A torchvision ResNet with BasicBlocks, as a functional [`Model`]: `forward` gives the
/// logits, [`ResNet::features`] the pooled 512 features before `fc`.
#[derive(Debug, Clone)]
pub struct ResNet {
    /// The shape.
    pub config: ResNetConfig,
}

impl ResNet {
    /// A ResNet of this shape.
    ///
    /// # Errors
    /// When the channel count or a stage's block count is zero.
    pub fn new(config: ResNetConfig) -> Result<Self> {
        if config.in_channels == 0 || config.blocks.contains(&0) {
            return Err(Error::param(
                "ResNetConfig",
                format!(
                    "in_channels {} and every stage's block count {:?} must be positive",
                    config.in_channels, config.blocks
                ),
            ));
        }
        Ok(ResNet { config })
    }

    /// Every tensor of the state dict, in torchvision's order (buffers included,
    /// `num_batches_tracked` left out).
    pub fn layout(&self) -> Vec<TensorSpec> {
        let c = &self.config;
        let k = match c.stem {
            Stem::ImageNet => 7,
            Stem::Small => 3,
        };
        let conv = |name: String, cout: usize, cin: usize, k: usize| {
            TensorSpec::new(name, &[cout, cin, k, k], Kind::ConvWeight, cin * k * k)
        };
        let mut l = vec![conv("conv1.weight".into(), 64, c.in_channels, k)];
        l.extend(batch_norm("bn1", 64));
        let mut cin = 64;
        for (s, (&width, &n)) in WIDTHS.iter().zip(&c.blocks).enumerate() {
            for b in 0..n {
                let p = format!("layer{}.{b}", s + 1);
                let block_in = if b == 0 { cin } else { width };
                l.push(conv(format!("{p}.conv1.weight"), width, block_in, 3));
                l.extend(batch_norm(&format!("{p}.bn1"), width));
                l.push(conv(format!("{p}.conv2.weight"), width, width, 3));
                l.extend(batch_norm(&format!("{p}.bn2"), width));
                if b == 0 && (s > 0 || cin != width) {
                    l.push(conv(format!("{p}.downsample.0.weight"), width, cin, 1));
                    l.extend(batch_norm(&format!("{p}.downsample.1"), width));
                }
            }
            cin = width;
        }
        if c.num_classes > 0 {
            l.push(TensorSpec::new(
                "fc.weight",
                &[c.num_classes, 512],
                Kind::LinearWeight,
                512,
            ));
            l.push(TensorSpec::new(
                "fc.bias",
                &[c.num_classes],
                Kind::LinearBias,
                512,
            ));
        }
        l
    }

    /// The pooled features `[N, 512]` (torchvision's `avgpool` output, flattened).
    ///
    /// # Errors
    /// When `x` is not `[N, in_channels, H, W]` or a weight is missing.
    pub fn features(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let c = &self.config;
        if x.rank() != 4 || x.dim(1)? != c.in_channels {
            return Err(Error::shape(
                "x",
                format!("[N, {}, H, W]", c.in_channels),
                x.dims(),
            ));
        }
        let conv = |h: &Tensor, name: &str, stride: usize, padding: usize| -> Result<Tensor> {
            let opts = ConvOpts::<2> {
                stride: [stride; 2],
                padding: [padding; 2],
                ..Default::default()
            };
            ops::conv2d(h, p.require(name)?, None, &opts)
        };
        let eps = c.bn_eps;
        let mut h = match c.stem {
            Stem::ImageNet => {
                let h = conv(x, "conv1.weight", 2, 3)?;
                let h = ops::relu(&ctx.batch_norm(p, "bn1", &h, eps)?)?;
                let pool = PoolOpts::<2> {
                    stride: [2; 2],
                    padding: [1; 2],
                    ..PoolOpts::window([3; 2])
                };
                ops::max_pool2d(&h, &pool)?
            }
            Stem::Small => {
                let h = conv(x, "conv1.weight", 1, 1)?;
                ops::relu(&ctx.batch_norm(p, "bn1", &h, eps)?)?
            }
        };
        for (s, &n) in c.blocks.iter().enumerate() {
            for b in 0..n {
                let pre = format!("layer{}.{b}", s + 1);
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let y = conv(&h, &format!("{pre}.conv1.weight"), stride, 1)?;
                let y = ops::relu(&ctx.batch_norm(p, &format!("{pre}.bn1"), &y, eps)?)?;
                let y = conv(&y, &format!("{pre}.conv2.weight"), 1, 1)?;
                let y = ctx.batch_norm(p, &format!("{pre}.bn2"), &y, eps)?;
                let down = format!("{pre}.downsample.0.weight");
                let identity = if p.get(&down).is_some() {
                    let d = conv(&h, &down, stride, 0)?;
                    ctx.batch_norm(p, &format!("{pre}.downsample.1"), &d, eps)?
                } else {
                    h
                };
                h = ops::relu(&(y + identity)?)?;
            }
        }
        Ok(ops::adaptive_avg_pool2d(&h, [1, 1])?.flatten_from(1)?)
    }
}

impl Model for ResNet {
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        Ok(init(&self.layout(), rng, DType::F32, device)?.0)
    }

    fn buffers(&self, device: &Device) -> Result<Params> {
        // Only the running statistics: no draw of the weights for nothing.
        let rng = Stream::new(0, "buffers");
        let mut b = Params::new();
        for spec in self.layout().iter().filter(|s| s.kind.is_buffer()) {
            b.insert(
                spec.name.as_str(),
                init_tensor(spec, &rng, DType::F32, device)?,
            );
        }
        Ok(b)
    }

    fn forward(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let f = self.features(p, x, ctx)?;
        if self.config.num_classes == 0 {
            return Ok(f);
        }
        ops::linear(&f, p.require("fc.weight")?, Some(p.require("fc.bias")?))
    }
}
