//! A conditional DCGAN (Radford et al. 2016; class as one-hot planes beside the
//! discriminator's input and a one-hot vector beside the generator's noise) with the tricks
//! that make GANs work on a few hundred images: differentiable augmentation of real and fake
//! images alike (DiffAugment, Zhao et al. 2020), one-sided label smoothing, feature matching
//! (Salimans et al. 2016), and the R1 gradient penalty on real images (Mescheder et al.
//! 2018) — a second-order term, which needs `CANDLE_GRAD_DO_NOT_DETACH=1` and fails loudly
//! without it.
//!
//! The loss is the non-saturating one: D minimises `softplus(−D(real))·` (with smoothed target)
//! `+ softplus(D(fake))`, G minimises `softplus(−D(fake))`.

use crate::cond::{check_square_batch, condition, uniform};
use crate::train::{Generative, Update};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use scarce_augment::tensor::DiffAugment;
use scarce_core::ops::{self, ConvOpts};
use scarce_core::{Params, Stream};

/// The shape and training tricks of a [`Gan`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GanConfig {
    /// Image channels.
    pub in_channels: usize,
    /// Side of the square images; divisible by 4.
    pub image_size: usize,
    /// Noise dimension.
    pub latent: usize,
    /// Base width: the generator has `2w` then `w` channels, the discriminator `w` then `2w`.
    pub width: usize,
    /// Classes of a conditional GAN.
    pub num_classes: Option<usize>,
    /// DiffAugment on every image the discriminator sees: colour, translation (fraction of the
    /// side) and cutout (fraction of the side); `None` disables it.
    pub diff_augment: Option<(bool, f64, f64)>,
    /// One-sided label smoothing: the real target is `1 − smoothing`.
    pub label_smoothing: f64,
    /// Weight of the feature-matching term in the generator's loss.
    pub feature_matching: f64,
    /// R1 penalty weight γ (0 disables; > 0 needs second-order gradients).
    pub r1_gamma: f64,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            in_channels: 1,
            image_size: 28,
            latent: 64,
            width: 64,
            num_classes: None,
            diff_augment: Some((true, 0.125, 0.5)),
            label_smoothing: 0.1,
            feature_matching: 0.0,
            r1_gamma: 0.0,
        }
    }
}

/// The GAN; generator weights `fc`, `up.0`, `up.1`, `norm.{0,1}`; discriminator `conv.0`,
/// `conv.1`, `out`.
#[derive(Debug, Clone)]
pub struct Gan {
    /// The settings.
    pub config: GanConfig,
}

fn softplus(x: &Tensor) -> Result<Tensor> {
    // relu(x) + log(1 + exp(−|x|)): no overflow for large |x|.
    Ok((ops::relu(x)? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?))?)
}

fn s2() -> ConvOpts<2> {
    ConvOpts::<2>::default().stride(2).padding(1)
}

impl Gan {
    /// Checks the config (and, when `r1_gamma > 0`, that second-order gradients are live).
    pub fn new(config: GanConfig) -> Result<Self> {
        let c = &config;
        if c.image_size == 0 || !c.image_size.is_multiple_of(4) {
            return Err(Error::config(
                "image_size",
                format!("{} is not divisible by 4", c.image_size),
            ));
        }
        if c.latent == 0 || c.width == 0 || c.in_channels == 0 || !c.width.is_multiple_of(8) {
            return Err(Error::config(
                "GanConfig",
                "latent, in_channels positive; width a positive multiple of 8",
            ));
        }
        if !(0.0..1.0).contains(&c.label_smoothing) || c.feature_matching < 0.0 || c.r1_gamma < 0.0
        {
            return Err(Error::config(
                "GanConfig",
                "label_smoothing in [0, 1), feature_matching and r1_gamma non-negative",
            ));
        }
        if c.r1_gamma > 0.0 {
            scarce_core::second_order::ensure()?;
        }
        Ok(Gan { config })
    }

    fn k(&self) -> usize {
        self.config.num_classes.unwrap_or(0)
    }

    fn init_g(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let c = &self.config;
        let (w, s) = (c.width, c.image_size / 4);
        let zin = c.latent + self.k();
        let mut p = Params::new();
        uniform(
            &mut p,
            rng,
            "fc.weight",
            vec![2 * w * s * s, zin],
            zin,
            device,
        )?;
        uniform(&mut p, rng, "fc.bias", vec![2 * w * s * s], zin, device)?;
        for (i, (cin, cout)) in [(2 * w, w), (w, c.in_channels)].into_iter().enumerate() {
            uniform(
                &mut p,
                rng,
                &format!("up.{i}.weight"),
                vec![cin, cout, 4, 4],
                cout * 16,
                device,
            )?;
            uniform(
                &mut p,
                rng,
                &format!("up.{i}.bias"),
                vec![cout],
                cout * 16,
                device,
            )?;
        }
        for (i, ch) in [2 * w, w].into_iter().enumerate() {
            p.insert(
                format!("norm.{i}.weight"),
                Tensor::ones(ch, DType::F32, device)?,
            );
            p.insert(
                format!("norm.{i}.bias"),
                Tensor::zeros(ch, DType::F32, device)?,
            );
        }
        Ok(p)
    }

    fn init_d(&self, rng: &Stream, device: &Device) -> Result<Params> {
        let c = &self.config;
        let (w, s) = (c.width, c.image_size / 4);
        let mut p = Params::new();
        let cin = c.in_channels + self.k();
        for (i, (ci, co)) in [(cin, w), (w, 2 * w)].into_iter().enumerate() {
            uniform(
                &mut p,
                rng,
                &format!("conv.{i}.weight"),
                vec![co, ci, 4, 4],
                ci * 16,
                device,
            )?;
            uniform(
                &mut p,
                rng,
                &format!("conv.{i}.bias"),
                vec![co],
                ci * 16,
                device,
            )?;
        }
        let flat = 2 * w * s * s;
        uniform(&mut p, rng, "out.weight", vec![1, flat], flat, device)?;
        uniform(&mut p, rng, "out.bias", vec![1], flat, device)?;
        Ok(p)
    }

    /// Images in `[-1, 1]` from noise `z` `[N, latent]` (labels when conditional).
    pub fn generate(&self, g: &Params, z: &Tensor, y: Option<&[usize]>) -> Result<Tensor> {
        let c = &self.config;
        let n = z.dim(0)?;
        let zin = condition(z, y, self.config.num_classes, "GAN")?;
        let s = c.image_size / 4;
        let mut h = ops::linear(&zin, g.require("fc.weight")?, Some(g.require("fc.bias")?))?
            .reshape((n, 2 * c.width, s, s))?;
        for i in 0..2 {
            h = ops::group_norm(
                &h,
                8,
                Some(g.require(&format!("norm.{i}.weight"))?),
                Some(g.require(&format!("norm.{i}.bias"))?),
                1e-5,
            )?;
            h = ops::relu(&h)?;
            h = ops::conv_transpose2d(
                &h,
                g.require(&format!("up.{i}.weight"))?,
                Some(g.require(&format!("up.{i}.bias"))?),
                &s2(),
            )?;
        }
        Ok(h.tanh()?)
    }

    /// The discriminator's logits `[N]` and penultimate features `[N, F]` for images `x`.
    pub fn discriminate(
        &self,
        d: &Params,
        x: &Tensor,
        y: Option<&[usize]>,
    ) -> Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let mut h = condition(x, y, self.config.num_classes, "GAN")?;
        for i in 0..2 {
            h = ops::conv2d(
                &h,
                d.require(&format!("conv.{i}.weight"))?,
                Some(d.require(&format!("conv.{i}.bias"))?),
                &s2(),
            )?;
            h = ops::leaky_relu(&h, 0.2)?;
        }
        let f = h.reshape((n, ()))?;
        let logit =
            ops::linear(&f, d.require("out.weight")?, Some(d.require("out.bias")?))?.reshape(n)?;
        Ok((logit, f))
    }

    fn augment(&self, x: &Tensor, rng: &Stream) -> Result<Tensor> {
        Ok(match self.config.diff_augment {
            Some((color, translation, cutout)) => DiffAugment {
                color,
                translation,
                cutout,
            }
            .apply(x, rng)
            .map_err(|e| Error::config("diff_augment", e.to_string()))?,
            None => x.clone(),
        })
    }

    fn noise(&self, n: usize, rng: &Stream, device: &Device) -> Result<Tensor> {
        Ok(rng.normal_tensor((n, self.config.latent), 0.0, 1.0, DType::F32, device)?)
    }
}

impl Generative for Gan {
    fn kind(&self) -> &'static str {
        "scarce-gen/gan"
    }
    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
    fn groups(&self) -> &'static [&'static str] {
        &["generator", "discriminator"]
    }
    fn adam_beta1(&self) -> f64 {
        0.5
    }
    fn init(&self, rng: &Stream, device: &Device) -> Result<Vec<Params>> {
        Ok(vec![
            self.init_g(&rng.child("G"), device)?,
            self.init_d(&rng.child("D"), device)?,
        ])
    }
    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }
    fn check_batch(&self, dims: &[usize]) -> Result<()> {
        check_square_batch(dims, self.config.in_channels, self.config.image_size, "GAN")
    }

    fn step(
        &self,
        u: &mut Update<'_>,
        x: &Tensor,
        y: Option<&[usize]>,
        rng: &Stream,
    ) -> Result<()> {
        let c = &self.config;
        let n = x.dim(0)?;
        let dev = x.device();
        // Discriminator: real (smoothed target) against detached fakes.
        let fake = self
            .generate(u.params(0), &self.noise(n, &rng.child("z_d"), dev)?, y)?
            .detach();
        let real_in = if c.r1_gamma > 0.0 {
            Var::from_tensor(x)?.as_tensor().clone()
        } else {
            x.clone()
        };
        let (lr, _) = self.discriminate(
            u.params(1),
            &self.augment(&real_in, &rng.child("aug_real"))?,
            y,
        )?;
        let (lf, _) = self.discriminate(
            u.params(1),
            &self.augment(&fake, &rng.child("aug_fake"))?,
            y,
        )?;
        let t = 1.0 - c.label_smoothing;
        let mut d_loss =
            ((softplus(&lr)? - (&lr * t)?)?.mean_all()? + softplus(&lf)?.mean_all()?)?;
        if c.r1_gamma > 0.0 {
            scarce_core::second_order::ensure()?;
            let g = lr
                .sum_all()?
                .backward()?
                .get(&real_in)
                .cloned()
                .ok_or_else(|| Error::config("r1_gamma", "no gradient reached the real images"))?;
            let r1 = (g.sqr()?.sum_all()? * (c.r1_gamma / 2.0 / n as f64))?;
            d_loss = (d_loss + r1)?;
        }
        u.apply(1, "discriminator", &d_loss)?;

        // Generator: non-saturating loss against the updated discriminator, plus feature
        // matching of the mean discriminator features.
        let fake = self.generate(u.params(0), &self.noise(n, &rng.child("z_g"), dev)?, y)?;
        let (lf, ff) = self.discriminate(
            u.params(1),
            &self.augment(&fake, &rng.child("aug_fake_g"))?,
            y,
        )?;
        let mut g_loss = softplus(&lf.neg()?)?.mean_all()?;
        if c.feature_matching > 0.0 {
            let (_, fr) =
                self.discriminate(u.params(1), &self.augment(x, &rng.child("aug_real_g"))?, y)?;
            let gap = (fr.detach().mean(0)? - ff.mean(0)?)?.sqr()?.sum_all()?;
            g_loss = (g_loss + (gap * c.feature_matching)?)?;
        }
        u.apply(0, "generator", &g_loss)
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
        self.generate(p, &self.noise(n, rng, device)?, classes)
    }
}
