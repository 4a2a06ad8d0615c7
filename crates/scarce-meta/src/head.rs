//! A backbone with a linear classification head: the network MAML trains on few-shot
//! classification, and the split ANIL adapts (`head.*` only).

use candle_core::{DType, Device, Tensor};
use scarce_core::{ops, Ctx, Model, Params, Stream};

/// Name prefix of the head's parameters (`head.weight` `[classes, features]`, `head.bias`).
pub const HEAD_PREFIX: &str = "head.";

/// `body` followed by a linear layer to `classes` logits. The body's parameter names are
/// kept; the head adds `head.weight` and `head.bias`.
#[derive(Debug, Clone)]
pub struct WithHead<M> {
    /// The feature extractor; its output is `[N, features]`.
    pub body: M,
    /// Width of the body's output.
    pub features: usize,
    /// Number of classes (N of N-way).
    pub classes: usize,
}

impl<M: Model> WithHead<M> {
    /// `body` (output `[N, features]`) with a head to `classes` logits.
    pub fn new(body: M, features: usize, classes: usize) -> scarce_core::Result<Self> {
        if features == 0 || classes == 0 {
            return Err(scarce_core::Error::param(
                "WithHead",
                "features and classes must be positive",
            ));
        }
        Ok(WithHead {
            body,
            features,
            classes,
        })
    }
}

impl<M: Model> Model for WithHead<M> {
    fn init(&self, rng: &Stream, device: &Device) -> scarce_core::Result<Params> {
        let mut p = self.body.init(&rng.child("body"), device)?;
        // PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in) for weight and bias.
        let bound = 1.0 / (self.features as f64).sqrt();
        let head = rng.child("head");
        p.insert(
            format!("{HEAD_PREFIX}weight"),
            head.child("weight").uniform_tensor(
                (self.classes, self.features),
                -bound,
                bound,
                DType::F32,
                device,
            )?,
        );
        p.insert(
            format!("{HEAD_PREFIX}bias"),
            head.child("bias")
                .uniform_tensor(self.classes, -bound, bound, DType::F32, device)?,
        );
        Ok(p)
    }

    fn buffers(&self, device: &Device) -> scarce_core::Result<Params> {
        self.body.buffers(device)
    }

    fn forward(&self, p: &Params, x: &Tensor, ctx: &mut Ctx) -> scarce_core::Result<Tensor> {
        let z = self.body.forward(p, x, ctx)?;
        ops::linear(
            &z,
            p.require(&format!("{HEAD_PREFIX}weight"))?,
            Some(p.require(&format!("{HEAD_PREFIX}bias"))?),
        )
    }
}
