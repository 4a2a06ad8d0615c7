//! The Vision Transformer (Dosovitskiy et al. 2021) as timm's `VisionTransformer` builds it
//! by default — a patch-embedding convolution with bias, a class token, a learnt position
//! embedding over the class token and every patch, pre-norm blocks (LayerNorm ε = 1e-6,
//! multi-head attention with a qkv bias, an MLP with exact erf GELU), a final norm, the class
//! token pooled, a linear head — under timm's names (`blocks.0.attn.qkv.weight`,
//! `pos_embed`), so a converted timm state dict loads unchanged.

use candle_core::{DType, Device, IndexOp, Tensor};
use scarce_core::ops::{self, ConvOpts};
use scarce_core::{Ctx, Error, Model, Params, Result, Stream};

use crate::state_dict::{init, Kind, TensorSpec};

/// Shape of a [`Vit`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VitConfig {
    /// Input height and width (square images).
    pub img_size: usize,
    /// Patch height and width; must divide `img_size`.
    pub patch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Classes of the head.
    pub num_classes: usize,
    /// Embedding width D.
    pub dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads; must divide D.
    pub heads: usize,
    /// MLP hidden width over D (timm: 4).
    pub mlp_ratio: f64,
    /// LayerNorm epsilon (timm: 1e-6).
    pub ln_eps: f64,
}

impl VitConfig {
    /// A ViT of width `dim`, `depth` blocks and `heads` heads, timm's other defaults.
    pub fn new(
        img_size: usize,
        patch: usize,
        in_channels: usize,
        num_classes: usize,
        (dim, depth, heads): (usize, usize, usize),
    ) -> Self {
        VitConfig {
            img_size,
            patch,
            in_channels,
            num_classes,
            dim,
            depth,
            heads,
            mlp_ratio: 4.0,
            ln_eps: 1e-6,
        }
    }

    /// ViT-Tiny: D 192, 12 blocks, 3 heads (timm's `vit_tiny_patch16_224` shape).
    pub fn tiny(img_size: usize, patch: usize, in_channels: usize, num_classes: usize) -> Self {
        Self::new(img_size, patch, in_channels, num_classes, (192, 12, 3))
    }

    /// ViT-Small: D 384, 12 blocks, 6 heads.
    pub fn small(img_size: usize, patch: usize, in_channels: usize, num_classes: usize) -> Self {
        Self::new(img_size, patch, in_channels, num_classes, (384, 12, 6))
    }

    /// ViT-Base: D 768, 12 blocks, 12 heads.
    pub fn base(img_size: usize, patch: usize, in_channels: usize, num_classes: usize) -> Self {
        Self::new(img_size, patch, in_channels, num_classes, (768, 12, 12))
    }

    fn grid(&self) -> usize {
        self.img_size / self.patch
    }

    fn hidden(&self) -> usize {
        (self.dim as f64 * self.mlp_ratio) as usize
    }
}

/// A timm Vision Transformer as a functional [`Model`]: `forward` gives the logits,
/// [`Vit::features`] the pre-logits (the final norm's class token), [`Vit::attention`] a
/// block's attention probabilities.
#[derive(Debug, Clone)]
pub struct Vit {
    /// The shape.
    pub config: VitConfig,
}

impl Vit {
    /// A ViT of this shape.
    ///
    /// # Errors
    /// When the patch does not divide the image, the heads do not divide D, or a size is 0.
    pub fn new(config: VitConfig) -> Result<Self> {
        let c = &config;
        if c.patch == 0 || !c.img_size.is_multiple_of(c.patch) || c.img_size == 0 {
            return Err(Error::param(
                "VitConfig.patch",
                format!("{} must divide img_size {}", c.patch, c.img_size),
            ));
        }
        if c.heads == 0 || !c.dim.is_multiple_of(c.heads) {
            return Err(Error::param(
                "VitConfig.heads",
                format!("{} must divide dim {}", c.heads, c.dim),
            ));
        }
        if c.in_channels == 0 || c.num_classes == 0 || c.depth == 0 || c.hidden() == 0 {
            return Err(Error::param(
                "VitConfig",
                "in_channels, num_classes, depth and the MLP width must be positive",
            ));
        }
        Ok(Vit { config })
    }

    /// Every tensor of the state dict, in timm's order.
    pub fn layout(&self) -> Vec<TensorSpec> {
        let c = &self.config;
        let (d, h) = (c.dim, c.hidden());
        let tokens = 1 + c.grid() * c.grid();
        let patch_fan = c.in_channels * c.patch * c.patch;
        let lin = |name: String, out: usize, inp: usize| {
            [
                TensorSpec::new(
                    format!("{name}.weight"),
                    &[out, inp],
                    Kind::LinearWeight,
                    inp,
                ),
                TensorSpec::new(format!("{name}.bias"), &[out], Kind::LinearBias, inp),
            ]
        };
        let ln = |name: String| {
            [
                TensorSpec::new(format!("{name}.weight"), &[d], Kind::LnWeight, 0),
                TensorSpec::new(format!("{name}.bias"), &[d], Kind::LnBias, 0),
            ]
        };
        let mut l = vec![
            TensorSpec::new("cls_token", &[1, 1, d], Kind::Token, 0),
            TensorSpec::new("pos_embed", &[1, tokens, d], Kind::Token, 0),
            TensorSpec::new(
                "patch_embed.proj.weight",
                &[d, c.in_channels, c.patch, c.patch],
                Kind::ConvWeight,
                patch_fan,
            ),
            TensorSpec::new("patch_embed.proj.bias", &[d], Kind::ConvBias, patch_fan),
        ];
        for i in 0..c.depth {
            l.extend(ln(format!("blocks.{i}.norm1")));
            l.extend(lin(format!("blocks.{i}.attn.qkv"), 3 * d, d));
            l.extend(lin(format!("blocks.{i}.attn.proj"), d, d));
            l.extend(ln(format!("blocks.{i}.norm2")));
            l.extend(lin(format!("blocks.{i}.mlp.fc1"), h, d));
            l.extend(lin(format!("blocks.{i}.mlp.fc2"), d, h));
        }
        l.extend(ln("norm".into()));
        l.extend(lin("head".into(), c.num_classes, d));
        l
    }

    /// The tokens after patch embedding, class token and position embedding: `[N, T, D]`.
    fn embed(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        if x.rank() != 4
            || x.dim(1)? != c.in_channels
            || x.dim(2)? != c.img_size
            || x.dim(3)? != c.img_size
        {
            return Err(Error::shape(
                "x",
                format!("[N, {}, {}, {}]", c.in_channels, c.img_size, c.img_size),
                x.dims(),
            ));
        }
        let opts = ConvOpts::<2> {
            stride: [c.patch; 2],
            ..Default::default()
        };
        let t = ops::conv2d(
            x,
            p.require("patch_embed.proj.weight")?,
            Some(p.require("patch_embed.proj.bias")?),
            &opts,
        )?;
        let t = t.flatten_from(2)?.transpose(1, 2)?;
        let n = x.dim(0)?;
        let cls = p.require("cls_token")?.broadcast_as((n, 1, c.dim))?;
        Ok(Tensor::cat(&[&cls, &t], 1)?.broadcast_add(p.require("pos_embed")?)?)
    }

    fn layer_norm(&self, p: &Params, name: &str, t: &Tensor) -> Result<Tensor> {
        let w = p.require(&format!("{name}.weight"))?;
        let b = p.require(&format!("{name}.bias"))?;
        ops::layer_norm(t, 1, Some(w), Some(b), self.config.ln_eps)
    }

    fn linear(&self, p: &Params, name: &str, t: &Tensor) -> Result<Tensor> {
        ops::linear(
            t,
            p.require(&format!("{name}.weight"))?,
            Some(p.require(&format!("{name}.bias"))?),
        )
    }

    /// Block `i`'s attention on normalised tokens `y`: the output and the probabilities
    /// `[N, heads, T, T]`.
    fn attend(&self, p: &Params, i: usize, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let c = &self.config;
        let (n, t, d) = y.dims3()?;
        let hd = d / c.heads;
        let qkv = self.linear(p, &format!("blocks.{i}.attn.qkv"), y)?;
        let qkv = qkv
            .reshape((n, t, 3, c.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (
            qkv.i(0)?.contiguous()?,
            qkv.i(1)?.contiguous()?,
            qkv.i(2)?.contiguous()?,
        );
        let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
        let probs = ops::softmax(&scores, -1)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((n, t, d))?;
        Ok((
            self.linear(p, &format!("blocks.{i}.attn.proj"), &out)?,
            probs,
        ))
    }

    /// The tokens after block `upto` (exclusive), and the attention probabilities of the
    /// last block run.
    fn blocks(&self, p: &Params, x: &Tensor, upto: usize) -> Result<(Tensor, Option<Tensor>)> {
        let mut t = self.embed(p, x)?;
        let mut last = None;
        for i in 0..upto {
            let (a, probs) =
                self.attend(p, i, &self.layer_norm(p, &format!("blocks.{i}.norm1"), &t)?)?;
            t = (t + a)?;
            let y = self.layer_norm(p, &format!("blocks.{i}.norm2"), &t)?;
            let y = ops::gelu(&self.linear(p, &format!("blocks.{i}.mlp.fc1"), &y)?)?;
            t = (&t + self.linear(p, &format!("blocks.{i}.mlp.fc2"), &y)?)?;
            last = Some(probs);
        }
        Ok((t, last))
    }

    /// The pre-logits `[N, D]`: the final norm's output at the class token (timm's
    /// `forward_head(..., pre_logits=True)`).
    ///
    /// # Errors
    /// When `x` is not `[N, in_channels, img_size, img_size]` or a weight is missing.
    pub fn features(&self, p: &Params, x: &Tensor) -> Result<Tensor> {
        let (t, _) = self.blocks(p, x, self.config.depth)?;
        Ok(self.layer_norm(p, "norm", &t)?.i((.., 0))?.contiguous()?)
    }

    /// The softmax attention probabilities of block `block`, `[N, heads, T, T]` (row = query,
    /// column = key, token 0 the class token).
    ///
    /// # Errors
    /// When `block` is not below the depth, or as [`Vit::features`].
    pub fn attention(&self, p: &Params, x: &Tensor, block: usize) -> Result<Tensor> {
        if block >= self.config.depth {
            return Err(Error::param(
                "block",
                format!("{block}: the ViT has {} blocks", self.config.depth),
            ));
        }
        let (_, probs) = self.blocks(p, x, block + 1)?;
        probs.ok_or_else(|| Error::param("block", "no block ran"))
    }
}

impl Model for Vit {
    fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        Ok(init(&self.layout(), rng, DType::F32, device)?.0)
    }

    fn forward(&self, p: &Params, x: &Tensor, _ctx: &mut Ctx) -> Result<Tensor> {
        let f = self.features(p, x)?;
        self.linear(p, "head", &f)
    }
}
