//! Backbones written once on [`crate::ops`]: Conv4 (2D and 3D), ResNet-12 (2D and 3D) and
//! an MLP. Parameter names follow the equivalent PyTorch modules' `state_dict` keys.

mod conv4;
mod mlp;
mod resnet12;

pub use conv4::{Conv4, Conv4Config};
pub use mlp::{Mlp, MlpConfig};
pub use resnet12::{ResNet12, ResNet12Config};

use crate::ops::{self, ConvOpts, PoolOpts};
use crate::rng::Stream;
use crate::{Error, Params, Result};
use candle_core::{DType, Device, Tensor};

/// Number of spatial axes a convolutional backbone works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Spatial {
    /// Images `[N, C, H, W]`.
    #[default]
    D2,
    /// Volumes `[N, C, D, H, W]`.
    D3,
}

impl Spatial {
    /// 2 or 3.
    pub fn axes(self) -> usize {
        match self {
            Spatial::D2 => 2,
            Spatial::D3 => 3,
        }
    }

    /// A `k`-cube kernel shape `[out, in, k, k(, k)]`.
    pub(crate) fn kernel(self, out: usize, inp: usize, k: usize) -> Vec<usize> {
        let mut s = vec![out, inp];
        s.extend(std::iter::repeat_n(k, self.axes()));
        s
    }

    /// Convolution with the same stride and padding on every axis.
    pub(crate) fn conv(
        self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor> {
        match self {
            Spatial::D2 => ops::conv2d(x, w, b, &ConvOpts::default().stride(stride).padding(pad)),
            Spatial::D3 => ops::conv3d(x, w, b, &ConvOpts::default().stride(stride).padding(pad)),
        }
    }

    /// `k`-window max pooling, floor mode.
    pub(crate) fn max_pool(self, x: &Tensor, k: usize) -> Result<Tensor> {
        match self {
            Spatial::D2 => ops::max_pool2d(x, &PoolOpts::new(k)),
            Spatial::D3 => ops::max_pool3d(x, &PoolOpts::new(k)),
        }
    }

    /// Checks that `x` is `[N, channels, *spatial]`.
    pub(crate) fn check_input(self, x: &Tensor, channels: usize) -> Result<()> {
        let d = x.dims();
        if d.len() != self.axes() + 2 || d[1] != channels {
            return Err(Error::shape(
                "x",
                format!("[N, {channels}, {} spatial axes]", self.axes()),
                d,
            ));
        }
        Ok(())
    }
}

/// PyTorch's default init for conv and linear layers: `U(-1/√fan_in, 1/√fan_in)` for weight
/// and bias (kaiming-uniform with `a = √5`).
pub(crate) fn uniform_fan_in(
    p: &mut Params,
    rng: &Stream,
    name: &str,
    shape: &[usize],
    fan_in: usize,
    device: &Device,
) -> Result<()> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    p.insert(
        name,
        rng.child(name)
            .uniform_tensor(shape, -bound, bound, DType::F32, device)?,
    );
    Ok(())
}

/// Batch-norm weights (1) and biases (0) for `prefix`.
pub(crate) fn bn_params(p: &mut Params, prefix: &str, c: usize, device: &Device) -> Result<()> {
    p.insert(
        format!("{prefix}.weight"),
        Tensor::ones(c, DType::F32, device)?,
    );
    p.insert(
        format!("{prefix}.bias"),
        Tensor::zeros(c, DType::F32, device)?,
    );
    Ok(())
}

/// Batch-norm running statistics (mean 0, variance 1) for `prefix`.
pub(crate) fn bn_buffers(b: &mut Params, prefix: &str, c: usize, device: &Device) -> Result<()> {
    b.insert(
        format!("{prefix}.running_mean"),
        Tensor::zeros(c, DType::F32, device)?,
    );
    b.insert(
        format!("{prefix}.running_var"),
        Tensor::ones(c, DType::F32, device)?,
    );
    Ok(())
}
