//! The denoiser: a UNet with residual blocks (group norm, SiLU, a per-block projection of the
//! time embedding), sinusoidal time embedding, multi-head self-attention at chosen levels and
//! in the middle, optional class embedding with a learnt "no class" token for
//! classifier-free guidance — in 2D or 3D, one code path.
//!
//! The layout follows MONAI's `DiffusionModelUNet` (and diffusers' `UNet2DModel`): `conv_in`,
//! per level `res_blocks` residual blocks (+ attention) and a stride-2 convolution, a middle of
//! residual–attention–residual, then per level `res_blocks + 1` residual blocks fed with the
//! skip connections, nearest ×2 upsampling + convolution, and group norm, SiLU, `conv_out`.
//! As there, the second convolution of each residual block and `conv_out` start at zero.
//!
//! The network is a pure function of its [`Params`] (names such as `down.1.res.0.conv1.weight`),
//! so the same weights serve training, EMA, checkpoints and federated averaging.

use crate::schedule::timestep_embedding;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use scarce_core::ops::{self, ConvOpts, InterpMode, Resize};
use scarce_core::{Params, Stream};

/// The shape of a [`UNet`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UNetConfig {
    /// Spatial axes: 2 (images `[B, C, H, W]`) or 3 (volumes `[B, C, D, H, W]`).
    pub spatial_dims: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (the prediction's).
    pub out_channels: usize,
    /// Channels per level, e.g. `[32, 64, 64]`; each level after the first halves the size.
    pub channels: Vec<usize>,
    /// Self-attention after the residual blocks of each level.
    pub attention: Vec<bool>,
    /// Residual blocks per level on the way down (one more on the way up).
    pub res_blocks: usize,
    /// Channels per attention head (a level with fewer channels gets one head).
    pub head_channels: usize,
    /// Group-norm groups; must divide every level's channel count.
    pub groups: usize,
    /// Group-norm epsilon.
    pub norm_eps: f64,
    /// Number of classes for a class-conditional model (`None`: unconditional). A learnt
    /// extra embedding stands for "no class" (classifier-free guidance).
    pub num_classes: Option<usize>,
}

impl Default for UNetConfig {
    /// MONAI's `DiffusionModelUNet(spatial_dims=2, in_channels=1, out_channels=1,
    /// channels=(32, 64, 64), attention_levels=(False, False, True), num_res_blocks=1,
    /// num_head_channels=64)`.
    fn default() -> Self {
        UNetConfig {
            spatial_dims: 2,
            in_channels: 1,
            out_channels: 1,
            channels: vec![32, 64, 64],
            attention: vec![false, false, true],
            res_blocks: 1,
            head_channels: 64,
            groups: 32,
            norm_eps: 1e-6,
            num_classes: None,
        }
    }
}

/// The UNet denoiser; see the module docs.
#[derive(Debug, Clone)]
pub struct UNet {
    /// The shape.
    pub config: UNetConfig,
    /// Input channels of each up-path residual block, in order (from the skip bookkeeping).
    up_inputs: Vec<usize>,
}

/// Nearest-neighbour ×2 upsampling on every spatial axis (`F.interpolate(scale_factor=2)`,
/// as MONAI); its gradient sums each 2×2 block, exact at every order.
fn upsample2(x: &Tensor) -> Result<Tensor> {
    let factors = vec![2.0; x.rank() - 2];
    Ok(ops::interpolate(
        x,
        &Resize::Scale(factors),
        InterpMode::Nearest,
    )?)
}

fn silu(x: &Tensor) -> Result<Tensor> {
    Ok(x.silu()?)
}

impl UNet {
    /// Checks the config and builds the network description.
    pub fn new(config: UNetConfig) -> Result<Self> {
        let c = &config;
        if !(c.spatial_dims == 2 || c.spatial_dims == 3) {
            return Err(Error::config(
                "UNetConfig.spatial_dims",
                format!("{}: need 2 or 3", c.spatial_dims),
            ));
        }
        if c.channels.is_empty() || c.channels.contains(&0) {
            return Err(Error::config(
                "UNetConfig.channels",
                "need at least one level, every count positive",
            ));
        }
        if c.attention.len() != c.channels.len() {
            return Err(Error::config(
                "UNetConfig.attention",
                format!(
                    "{} flags for {} levels",
                    c.attention.len(),
                    c.channels.len()
                ),
            ));
        }
        if c.groups == 0 || c.channels.iter().any(|ch| ch % c.groups != 0) {
            return Err(Error::config(
                "UNetConfig.groups",
                format!(
                    "{} groups must divide every level's channels {:?}",
                    c.groups, c.channels
                ),
            ));
        }
        if c.res_blocks == 0 || c.in_channels == 0 || c.out_channels == 0 || c.head_channels == 0 {
            return Err(Error::config(
                "UNetConfig",
                "res_blocks, in_channels, out_channels and head_channels must be positive",
            ));
        }
        if !c.channels[0].is_multiple_of(2) {
            return Err(Error::config(
                "UNetConfig.channels",
                "the first level's channel count sets the time embedding and must be even",
            ));
        }
        if c.num_classes == Some(0) {
            return Err(Error::config("UNetConfig.num_classes", "0 classes"));
        }
        // Replay the skip stack to learn each up block's input channels.
        let levels = c.channels.len();
        let mut stack = vec![c.channels[0]];
        for (i, &ch) in c.channels.iter().enumerate() {
            stack.extend(std::iter::repeat_n(ch, c.res_blocks));
            if i + 1 < levels {
                stack.push(ch);
            }
        }
        let mut up_inputs = Vec::new();
        let mut h = c.channels[levels - 1];
        for i in (0..levels).rev() {
            for _ in 0..=c.res_blocks {
                let skip = stack.pop().unwrap_or(0);
                up_inputs.push(h + skip);
                h = c.channels[i];
            }
        }
        Ok(UNet { config, up_inputs })
    }

    /// The factor every spatial size must be divisible by: `2^(levels − 1)`.
    pub fn size_multiple(&self) -> usize {
        1 << (self.config.channels.len() - 1)
    }

    fn time_dim(&self) -> usize {
        self.config.channels[0] * 4
    }

    /// Checks an input shape: rank, channels, and sizes divisible by [`Self::size_multiple`].
    pub fn check_input(&self, dims: &[usize]) -> Result<()> {
        let c = &self.config;
        let m = self.size_multiple();
        if dims.len() != c.spatial_dims + 2 || dims[1] != c.in_channels {
            return Err(Error::config(
                "x",
                format!(
                    "shape {dims:?}: need [B, {}, {}]",
                    c.in_channels,
                    if c.spatial_dims == 2 {
                        "H, W"
                    } else {
                        "D, H, W"
                    }
                ),
            ));
        }
        if let Some(bad) = dims[2..].iter().find(|&&s| s == 0 || s % m != 0) {
            return Err(Error::config(
                "image size",
                format!(
                    "spatial size {bad} (of {:?}) is not divisible by {m}, the UNet's total \
                     downsampling over {} levels",
                    &dims[2..],
                    c.channels.len()
                ),
            ));
        }
        Ok(())
    }

    /// Fresh weights: PyTorch's default uniform initialisers, group norms at identity, the
    /// class embedding standard normal, and the last convolution of every residual block and
    /// `conv_out` at zero (as MONAI and diffusers do).
    pub fn init(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let c = &self.config;
        let k = if c.spatial_dims == 2 { 9 } else { 27 };
        let mut p = Params::new();
        let ks = |cout: usize, cin: usize, kk: usize| -> Vec<usize> {
            let mut s = vec![cout, cin];
            s.extend(std::iter::repeat_n(
                if kk == 1 { 1 } else { 3 },
                c.spatial_dims,
            ));
            s
        };
        let uniform =
            |p: &mut Params, name: &str, shape: Vec<usize>, fan_in: usize| -> Result<()> {
                let b = 1.0 / (fan_in as f64).sqrt();
                let t = rng
                    .child(name)
                    .uniform_tensor(shape, -b, b, DType::F32, device)?;
                p.insert(name, t);
                Ok(())
            };
        let conv = |p: &mut Params,
                    name: &str,
                    cout: usize,
                    cin: usize,
                    kk: usize,
                    zero: bool|
         -> Result<()> {
            if zero {
                p.insert(
                    format!("{name}.weight"),
                    Tensor::zeros(ks(cout, cin, kk), DType::F32, device)?,
                );
                p.insert(
                    format!("{name}.bias"),
                    Tensor::zeros(cout, DType::F32, device)?,
                );
                return Ok(());
            }
            uniform(p, &format!("{name}.weight"), ks(cout, cin, kk), cin * kk)?;
            uniform(p, &format!("{name}.bias"), vec![cout], cin * kk)
        };
        let linear = |p: &mut Params, name: &str, cout: usize, cin: usize| -> Result<()> {
            uniform(p, &format!("{name}.weight"), vec![cout, cin], cin)?;
            uniform(p, &format!("{name}.bias"), vec![cout], cin)
        };
        let norm = |p: &mut Params, name: &str, ch: usize| -> Result<()> {
            p.insert(
                format!("{name}.weight"),
                Tensor::ones(ch, DType::F32, device)?,
            );
            p.insert(
                format!("{name}.bias"),
                Tensor::zeros(ch, DType::F32, device)?,
            );
            Ok(())
        };
        let td = self.time_dim();
        let res = |p: &mut Params, name: &str, cin: usize, cout: usize| -> Result<()> {
            norm(p, &format!("{name}.norm1"), cin)?;
            conv(p, &format!("{name}.conv1"), cout, cin, k, false)?;
            linear(p, &format!("{name}.time_emb_proj"), cout, td)?;
            norm(p, &format!("{name}.norm2"), cout)?;
            conv(p, &format!("{name}.conv2"), cout, cout, k, true)?;
            if cin != cout {
                conv(p, &format!("{name}.skip"), cout, cin, 1, false)?;
            }
            Ok(())
        };
        let attn = |p: &mut Params, name: &str, ch: usize| -> Result<()> {
            norm(p, &format!("{name}.norm"), ch)?;
            for proj in ["to_q", "to_k", "to_v", "out_proj"] {
                linear(p, &format!("{name}.{proj}"), ch, ch)?;
            }
            Ok(())
        };

        conv(&mut p, "conv_in", c.channels[0], c.in_channels, k, false)?;
        linear(&mut p, "time_embed.0", td, c.channels[0])?;
        linear(&mut p, "time_embed.2", td, td)?;
        if let Some(n) = c.num_classes {
            let t = rng.child("class_embedding").normal_tensor(
                (n + 1, td),
                0.0,
                1.0,
                DType::F32,
                device,
            )?;
            p.insert("class_embedding.weight", t);
        }
        let levels = c.channels.len();
        let mut ch = c.channels[0];
        for i in 0..levels {
            for j in 0..c.res_blocks {
                res(&mut p, &format!("down.{i}.res.{j}"), ch, c.channels[i])?;
                ch = c.channels[i];
                if c.attention[i] {
                    attn(&mut p, &format!("down.{i}.attn.{j}"), ch)?;
                }
            }
            if i + 1 < levels {
                conv(&mut p, &format!("down.{i}.down"), ch, ch, k, false)?;
            }
        }
        res(&mut p, "mid.res.0", ch, ch)?;
        attn(&mut p, "mid.attn", ch)?;
        res(&mut p, "mid.res.1", ch, ch)?;
        let mut inputs = self.up_inputs.iter();
        for i in (0..levels).rev() {
            for j in 0..=c.res_blocks {
                let cin = inputs.next().copied().unwrap_or(ch);
                res(&mut p, &format!("up.{i}.res.{j}"), cin, c.channels[i])?;
                if c.attention[i] {
                    attn(&mut p, &format!("up.{i}.attn.{j}"), c.channels[i])?;
                }
            }
            if i > 0 {
                conv(
                    &mut p,
                    &format!("up.{i}.up"),
                    c.channels[i],
                    c.channels[i],
                    k,
                    false,
                )?;
            }
        }
        norm(&mut p, "out.norm", c.channels[0])?;
        conv(&mut p, "out.conv", c.out_channels, c.channels[0], k, true)?;
        Ok(p)
    }

    fn conv(
        &self,
        p: &Params,
        name: &str,
        x: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor> {
        let b = p.require(&format!("{name}.bias"))?;
        self.conv_biased(p, name, x, b, stride, pad)
    }

    /// [`Self::conv`] with its bias given: `[O]`, or `[N, O]` for one per sample.
    fn conv_biased(
        &self,
        p: &Params,
        name: &str,
        x: &Tensor,
        b: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor> {
        let w = p.require(&format!("{name}.weight"))?;
        Ok(if self.config.spatial_dims == 2 {
            ops::conv2d(
                x,
                w,
                Some(b),
                &ConvOpts::<2>::default().stride(stride).padding(pad),
            )?
        } else {
            ops::conv3d(
                x,
                w,
                Some(b),
                &ConvOpts::<3>::default().stride(stride).padding(pad),
            )?
        })
    }

    fn norm(&self, p: &Params, name: &str, x: &Tensor) -> Result<Tensor> {
        Ok(ops::group_norm(
            x,
            self.config.groups,
            Some(p.require(&format!("{name}.weight"))?),
            Some(p.require(&format!("{name}.bias"))?),
            self.config.norm_eps,
        )?)
    }

    /// `silu(norm(x))` as one fused op.
    fn norm_silu(&self, p: &Params, name: &str, x: &Tensor) -> Result<Tensor> {
        Ok(ops::group_norm_silu(
            x,
            self.config.groups,
            Some(p.require(&format!("{name}.weight"))?),
            Some(p.require(&format!("{name}.bias"))?),
            self.config.norm_eps,
        )?)
    }

    fn linear(&self, p: &Params, name: &str, x: &Tensor) -> Result<Tensor> {
        Ok(ops::linear(
            x,
            p.require(&format!("{name}.weight"))?,
            Some(p.require(&format!("{name}.bias"))?),
        )?)
    }

    /// A residual block; `emb_act` is `silu(time embedding)`, which every block projects.
    fn res_block(&self, p: &Params, name: &str, x: &Tensor, emb_act: &Tensor) -> Result<Tensor> {
        let h = self.norm_silu(p, &format!("{name}.norm1"), x)?;
        // The time embedding's projection joins conv1's bias, one bias row per sample: the
        // same sum as adding it after the convolution, without a broadcast in the graph.
        let t = self.linear(p, &format!("{name}.time_emb_proj"), emb_act)?;
        let conv1 = format!("{name}.conv1");
        let bias = t.broadcast_add(p.require(&format!("{conv1}.bias"))?)?;
        let h = self.conv_biased(p, &conv1, &h, &bias, 1, 1)?;
        let h = self.norm_silu(p, &format!("{name}.norm2"), &h)?;
        let h = self.conv(p, &format!("{name}.conv2"), &h, 1, 1)?;
        let skip = if p.get(&format!("{name}.skip.weight")).is_some() {
            self.conv(p, &format!("{name}.skip"), x, 1, 0)?
        } else {
            x.clone()
        };
        Ok((skip + h)?)
    }

    fn attention(&self, p: &Params, name: &str, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (b, c) = (dims[0], dims[1]);
        let s: usize = dims[2..].iter().product();
        let heads = (c / self.config.head_channels).max(1);
        let d = c / heads;
        let h = self.norm(p, &format!("{name}.norm"), x)?;
        let h = h.reshape((b, c, s))?.transpose(1, 2)?; // [B, S, C]
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous()?) // [B, h, S, d]
        };
        let q = split(self.linear(p, &format!("{name}.to_q"), &h)?)?;
        let k = split(self.linear(p, &format!("{name}.to_k"), &h)?)?;
        let v = split(self.linear(p, &format!("{name}.to_v"), &h)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let a = ops::softmax(&scores, -1)?;
        let o = a.matmul(&v)?.transpose(1, 2)?.reshape((b, s, c))?;
        let o = self.linear(p, &format!("{name}.out_proj"), &o)?;
        let o = o.transpose(1, 2)?.reshape(dims)?;
        Ok((x + o)?)
    }

    /// The class embedding rows for `classes` (`num_classes` = "no class").
    fn class_rows(&self, p: &Params, classes: &[usize], like: &Tensor) -> Result<Tensor> {
        let n = self.config.num_classes.unwrap_or(0);
        if let Some(&bad) = classes.iter().find(|&&c| c > n) {
            return Err(Error::config(
                "class",
                format!("{bad} outside 0..{n} (or {n} for no class)"),
            ));
        }
        let idx: Vec<u32> = classes.iter().map(|&c| c as u32).collect();
        let idx = Tensor::from_vec(idx, classes.len(), like.device())?;
        Ok(p.require("class_embedding.weight")?.index_select(&idx, 0)?)
    }

    /// The prediction for noisy `x` at timesteps `t` (one per batch element). `classes` is
    /// one label per element for a class-conditional model (the value `num_classes` means
    /// "no class"); `None` drops the condition. Giving classes to an unconditional model is
    /// an error.
    pub fn forward(
        &self,
        p: &Params,
        x: &Tensor,
        t: &[f64],
        classes: Option<&[usize]>,
    ) -> Result<Tensor> {
        let c = &self.config;
        self.check_input(x.dims())?;
        let batch = x.dim(0)?;
        if t.len() != batch {
            return Err(Error::config(
                "timesteps",
                format!("{} timesteps for a batch of {batch}", t.len()),
            ));
        }
        let temb = timestep_embedding(t, c.channels[0], x)?;
        let mut emb = self.linear(
            p,
            "time_embed.2",
            &silu(&self.linear(p, "time_embed.0", &temb)?)?,
        )?;
        match (c.num_classes, classes) {
            (None, Some(_)) => {
                return Err(Error::config(
                    "classes",
                    "class labels given to a UNet built without num_classes (unconditional)",
                ))
            }
            (Some(n), cls) => {
                let null = vec![n; batch];
                let cls = cls.unwrap_or(&null);
                if cls.len() != batch {
                    return Err(Error::config(
                        "classes",
                        format!("{} labels for a batch of {batch}", cls.len()),
                    ));
                }
                emb = (emb + self.class_rows(p, cls, x)?)?;
            }
            (None, None) => {}
        }

        // Each block applies SiLU to the embedding before its projection (as MONAI's do);
        // one activation serves them all.
        let emb_act = silu(&emb)?;
        let levels = c.channels.len();
        let mut h = self.conv(p, "conv_in", x, 1, 1)?;
        let mut skips = vec![h.clone()];
        for i in 0..levels {
            for j in 0..c.res_blocks {
                h = self.res_block(p, &format!("down.{i}.res.{j}"), &h, &emb_act)?;
                if c.attention[i] {
                    h = self.attention(p, &format!("down.{i}.attn.{j}"), &h)?;
                }
                skips.push(h.clone());
            }
            if i + 1 < levels {
                h = self.conv(p, &format!("down.{i}.down"), &h, 2, 1)?;
                skips.push(h.clone());
            }
        }
        h = self.res_block(p, "mid.res.0", &h, &emb_act)?;
        h = self.attention(p, "mid.attn", &h)?;
        h = self.res_block(p, "mid.res.1", &h, &emb_act)?;
        for i in (0..levels).rev() {
            for j in 0..=c.res_blocks {
                let skip = skips
                    .pop()
                    .ok_or_else(|| Error::config("UNet", "skip stack exhausted"))?;
                h = Tensor::cat(&[&h, &skip], 1)?;
                h = self.res_block(p, &format!("up.{i}.res.{j}"), &h, &emb_act)?;
                if c.attention[i] {
                    h = self.attention(p, &format!("up.{i}.attn.{j}"), &h)?;
                }
            }
            if i > 0 {
                h = upsample2(&h)?;
                h = self.conv(p, &format!("up.{i}.up"), &h, 1, 1)?;
            }
        }
        let h = self.norm_silu(p, "out.norm", &h)?;
        self.conv(p, "out.conv", &h, 1, 1)
    }

    /// Classifier-free guided prediction `ε_u + w (ε_c − ε_u)`, both halves in one batched
    /// forward pass. Needs a class-conditional model.
    pub fn forward_guided(
        &self,
        p: &Params,
        x: &Tensor,
        t: &[f64],
        classes: &[usize],
        guidance: f64,
    ) -> Result<Tensor> {
        let Some(n) = self.config.num_classes else {
            return Err(Error::config(
                "guidance",
                "classifier-free guidance needs a class-conditional UNet (num_classes is None)",
            ));
        };
        if !guidance.is_finite() {
            return Err(Error::config(
                "guidance",
                format!("{guidance} is not finite"),
            ));
        }
        let b = x.dim(0)?;
        let xx = Tensor::cat(&[x, x], 0)?;
        let tt: Vec<f64> = t.iter().chain(t).copied().collect();
        let cc: Vec<usize> = classes
            .iter()
            .copied()
            .chain(std::iter::repeat_n(n, b))
            .collect();
        let out = self.forward(p, &xx, &tt, Some(&cc))?;
        let (cond, uncond) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
        Ok((&uncond + ((cond - &uncond)? * guidance)?)?)
    }
}
