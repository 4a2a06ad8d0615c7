//! A convolutional variational autoencoder (Kingma & Welling 2014), optionally conditional on
//! a class (one-hot planes beside the encoder's input, a one-hot vector beside the decoder's
//! latent) and β-weighted (Higgins et al. 2017): loss = per-image squared error + β·KL.

use crate::cond::{check_square_batch, condition, uniform};
use crate::train::{Generative, Update};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use scarce_core::ops::{self, ConvOpts};
use scarce_core::{Params, Stream};

/// The shape and objective of a [`Vae`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VaeConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Side of the square images; divisible by `2^levels`.
    pub image_size: usize,
    /// Channels per level; each level halves the side (4×4 stride-2 convolutions).
    pub channels: Vec<usize>,
    /// Latent dimension.
    pub latent: usize,
    /// Classes of a conditional VAE.
    pub num_classes: Option<usize>,
    /// Weight of the KL term (β = 1: the ELBO).
    pub beta: f64,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            in_channels: 1,
            image_size: 28,
            channels: vec![32, 64],
            latent: 16,
            num_classes: None,
            beta: 1.0,
        }
    }
}

/// The VAE; weights `enc.{i}`, `enc.mu`, `enc.logvar`, `dec.fc`, `dec.{i}`.
#[derive(Debug, Clone)]
pub struct Vae {
    /// The settings.
    pub config: VaeConfig,
}

fn conv_s2() -> ConvOpts<2> {
    ConvOpts::<2>::default().stride(2).padding(1)
}

impl Vae {
    /// Checks the config.
    pub fn new(config: VaeConfig) -> Result<Self> {
        let c = &config;
        let m = 1usize << c.channels.len();
        if c.channels.is_empty() || c.channels.contains(&0) || c.latent == 0 || c.in_channels == 0 {
            return Err(Error::config(
                "VaeConfig",
                "channels, latent and in_channels must be positive",
            ));
        }
        if c.image_size == 0 || !c.image_size.is_multiple_of(m) {
            return Err(Error::config(
                "image_size",
                format!(
                    "{} is not divisible by {m} ({} stride-2 levels)",
                    c.image_size,
                    c.channels.len()
                ),
            ));
        }
        if !(c.beta.is_finite() && c.beta >= 0.0) {
            return Err(Error::config("beta", format!("{}: need beta >= 0", c.beta)));
        }
        Ok(Vae { config })
    }

    fn classes(&self) -> usize {
        self.config.num_classes.unwrap_or(0)
    }

    fn bottom(&self) -> usize {
        self.config.image_size >> self.config.channels.len()
    }

    fn init_params(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let c = &self.config;
        let mut p = Params::new();
        let mut cin = c.in_channels + self.classes();
        for (i, &ch) in c.channels.iter().enumerate() {
            uniform(
                &mut p,
                rng,
                &format!("enc.{i}.weight"),
                vec![ch, cin, 4, 4],
                cin * 16,
                device,
            )?;
            uniform(
                &mut p,
                rng,
                &format!("enc.{i}.bias"),
                vec![ch],
                cin * 16,
                device,
            )?;
            cin = ch;
        }
        let flat = cin * self.bottom() * self.bottom();
        for head in ["mu", "logvar"] {
            uniform(
                &mut p,
                rng,
                &format!("enc.{head}.weight"),
                vec![c.latent, flat],
                flat,
                device,
            )?;
            uniform(
                &mut p,
                rng,
                &format!("enc.{head}.bias"),
                vec![c.latent],
                flat,
                device,
            )?;
        }
        let zin = c.latent + self.classes();
        uniform(&mut p, rng, "dec.fc.weight", vec![flat, zin], zin, device)?;
        uniform(&mut p, rng, "dec.fc.bias", vec![flat], zin, device)?;
        let levels = c.channels.len();
        for i in (0..levels).rev() {
            let cout = if i == 0 {
                c.in_channels
            } else {
                c.channels[i - 1]
            };
            // conv_transpose weights are [in, out, k, k]; PyTorch's fan-in is out·k·k.
            uniform(
                &mut p,
                rng,
                &format!("dec.{i}.weight"),
                vec![c.channels[i], cout, 4, 4],
                cout * 16,
                device,
            )?;
            uniform(
                &mut p,
                rng,
                &format!("dec.{i}.bias"),
                vec![cout],
                cout * 16,
                device,
            )?;
        }
        Ok(p)
    }

    /// The posterior `(μ, log σ²)` of images `x` `[N, C, S, S]` (labels `y` when conditional).
    pub fn encode(&self, p: &Params, x: &Tensor, y: Option<&[usize]>) -> Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let mut h = condition(x, y, self.config.num_classes, "VAE")?;
        for i in 0..self.config.channels.len() {
            h = ops::conv2d(
                &h,
                p.require(&format!("enc.{i}.weight"))?,
                Some(p.require(&format!("enc.{i}.bias"))?),
                &conv_s2(),
            )?;
            h = ops::leaky_relu(&h, 0.2)?;
        }
        let h = h.reshape((n, ()))?;
        let head = |name: &str| -> Result<Tensor> {
            Ok(ops::linear(
                &h,
                p.require(&format!("enc.{name}.weight"))?,
                Some(p.require(&format!("enc.{name}.bias"))?),
            )?)
        };
        Ok((head("mu")?, head("logvar")?))
    }

    /// Images in `[-1, 1]` from latents `z` `[N, latent]` (labels `y` when conditional).
    pub fn decode(&self, p: &Params, z: &Tensor, y: Option<&[usize]>) -> Result<Tensor> {
        let c = &self.config;
        let n = z.dim(0)?;
        let zin = condition(z, y, self.config.num_classes, "VAE")?;
        let levels = c.channels.len();
        let s = self.bottom();
        let mut h = ops::linear(
            &zin,
            p.require("dec.fc.weight")?,
            Some(p.require("dec.fc.bias")?),
        )?;
        h = ops::relu(&h)?.reshape((n, c.channels[levels - 1], s, s))?;
        for i in (0..levels).rev() {
            h = ops::conv_transpose2d(
                &h,
                p.require(&format!("dec.{i}.weight"))?,
                Some(p.require(&format!("dec.{i}.bias"))?),
                &conv_s2(),
            )?;
            h = if i == 0 { h.tanh()? } else { ops::relu(&h)? };
        }
        Ok(h)
    }

    /// The β-VAE loss of a batch: mean over images of `Σ (x̂ − x)² + β·KL(q(z|x) ‖ N(0, I))`,
    /// with `ε` for the reparameterisation drawn from `rng`. Returns `(loss, reconstruction,
    /// KL)`.
    pub fn loss(
        &self,
        p: &Params,
        x: &Tensor,
        y: Option<&[usize]>,
        rng: &Stream,
    ) -> Result<(Tensor, f64, f64)> {
        let n = x.dim(0)? as f64;
        let (mu, logvar) = self.encode(p, x, y)?;
        let eps = rng.normal_tensor(mu.shape(), 0.0, 1.0, mu.dtype(), mu.device())?;
        let z = (&mu + ((&logvar * 0.5)?.exp()? * eps)?)?;
        let xr = self.decode(p, &z, y)?;
        let recon = ((xr - x)?.sqr()?.sum_all()? / n)?;
        let kl = ((((logvar.exp()? + mu.sqr()?)? - &logvar)? - 1.0)?.sum_all()? * (0.5 / n))?;
        let loss = (&recon + (&kl * self.config.beta)?)?;
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        Ok((loss.clone(), scalar(&recon)?, scalar(&kl)?))
    }
}

impl Generative for Vae {
    fn kind(&self) -> &'static str {
        "scarce-gen/vae"
    }
    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
    fn groups(&self) -> &'static [&'static str] {
        &["model"]
    }
    fn init(&self, rng: &Stream, device: &Device) -> Result<Vec<Params>> {
        Ok(vec![self.init_params(rng, device)?])
    }
    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }
    fn check_batch(&self, dims: &[usize]) -> Result<()> {
        check_square_batch(dims, self.config.in_channels, self.config.image_size, "VAE")
    }
    fn step(
        &self,
        u: &mut Update<'_>,
        x: &Tensor,
        y: Option<&[usize]>,
        rng: &Stream,
    ) -> Result<()> {
        let (loss, _, _) = self.loss(u.params(0), x, y, rng)?;
        u.apply(0, "negative ELBO", &loss)
    }
    fn sample(
        &self,
        p: &Params,
        n: usize,
        _size: &[usize],
        classes: Option<&[usize]>,
        rng: &Stream,
        device: &Device,
    ) -> Result<Tensor> {
        let z = rng.normal_tensor((n, self.config.latent), 0.0, 1.0, DType::F32, device)?;
        self.decode(p, &z, classes)
    }
}
