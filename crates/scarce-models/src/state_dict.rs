//! State dicts as PyTorch writes them: the ordered list of a network's tensors
//! ([`TensorSpec`]: name, shape, kind), and loading a safetensors file into [`Params`] by
//! name with the checks of `load_state_dict` — missing, unexpected and wrongly-shaped tensors
//! listed, an error in strict mode.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use scarce_core::{Error, Params, Result};

/// What a tensor of a state dict is, which fixes how it is initialised and whether it is
/// learnt (the names are the fixtures' `state_dict_kinds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A convolution's kernel.
    ConvWeight,
    /// A convolution's bias.
    ConvBias,
    /// A linear layer's weight matrix.
    LinearWeight,
    /// A linear layer's bias.
    LinearBias,
    /// Batch-norm scale.
    BnWeight,
    /// Batch-norm shift.
    BnBias,
    /// Batch-norm running mean (a buffer).
    BnRunningMean,
    /// Batch-norm running variance (a buffer).
    BnRunningVar,
    /// Layer-norm scale.
    LnWeight,
    /// Layer-norm shift.
    LnBias,
    /// A learnt token or embedding table (class token, position embedding).
    Token,
}

impl Kind {
    /// The name the fixtures and this crate's docs use (`conv_weight`, `bn_running_var` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConvWeight => "conv_weight",
            Kind::ConvBias => "conv_bias",
            Kind::LinearWeight => "linear_weight",
            Kind::LinearBias => "linear_bias",
            Kind::BnWeight => "bn_weight",
            Kind::BnBias => "bn_bias",
            Kind::BnRunningMean => "bn_running_mean",
            Kind::BnRunningVar => "bn_running_var",
            Kind::LnWeight => "ln_weight",
            Kind::LnBias => "ln_bias",
            Kind::Token => "token",
        }
    }

    /// True for running statistics: state, not learnt.
    pub fn is_buffer(self) -> bool {
        matches!(self, Kind::BnRunningMean | Kind::BnRunningVar)
    }
}

/// One tensor of a state dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// PyTorch's key (`layer3.0.downsample.0.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// What it is.
    pub kind: Kind,
    /// Inputs feeding one output of its layer (convolutions and linear layers; 0 otherwise).
    pub fan_in: usize,
}

impl TensorSpec {
    /// A spec.
    pub fn new(name: impl Into<String>, shape: &[usize], kind: Kind, fan_in: usize) -> Self {
        TensorSpec {
            name: name.into(),
            shape: shape.to_vec(),
            kind,
            fan_in,
        }
    }
}

/// The layout of a batch norm `prefix` with `c` channels, in PyTorch's order.
pub(crate) fn batch_norm(prefix: &str, c: usize) -> Vec<TensorSpec> {
    [
        ("weight", Kind::BnWeight),
        ("bias", Kind::BnBias),
        ("running_mean", Kind::BnRunningMean),
        ("running_var", Kind::BnRunningVar),
    ]
    .into_iter()
    .map(|(n, k)| TensorSpec::new(format!("{prefix}.{n}"), &[c], k, 0))
    .collect()
}

/// What a non-strict load found besides the tensors it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors the network has and the file lacks.
    pub missing: Vec<String>,
    /// Tensors the file has and the network does not (`num_batches_tracked` is not listed).
    pub unexpected: Vec<String>,
    /// `(name, expected shape, file's shape)` for tensors present in both with other shapes.
    pub wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    /// True when the file matched the network exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.wrong_shape.is_empty()
    }
}

/// Loads the tensors of `layout` from the safetensors file `path` by name, cast to `dtype`
/// on `device`: the learnt parameters and the buffers apart, and what did not match.
///
/// # Errors
/// When the file cannot be read or parsed; in `strict` mode also when any tensor is missing,
/// unexpected or of another shape — the error lists every one of them and names the file.
/// Out of strict mode a missing tensor is left out of the result (the caller fills it, e.g.
/// a new classification head) and a wrongly-shaped one is not loaded.
pub fn load(
    path: &Path,
    layout: &[TensorSpec],
    strict: bool,
    dtype: DType,
    device: &Device,
) -> Result<(Params, Params, LoadReport)> {
    let (file, _) = scarce_core::checkpoint::load(path, &Device::Cpu)?;
    let mut file: HashMap<String, Tensor> = file
        .iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, t)| (name.to_string(), t.clone()))
        .collect();
    let (mut params, mut buffers) = (Params::new(), Params::new());
    let mut report = LoadReport::default();
    for spec in layout {
        match file.remove(&spec.name) {
            None => report.missing.push(spec.name.clone()),
            Some(t) if t.dims() != spec.shape.as_slice() => {
                report
                    .wrong_shape
                    .push((spec.name.clone(), spec.shape.clone(), t.dims().to_vec()))
            }
            Some(t) => {
                let t = t.to_dtype(dtype)?.to_device(device)?;
                place(spec, t, &mut params, &mut buffers);
            }
        }
    }
    report.unexpected = file.into_keys().collect();
    report.unexpected.sort();
    if strict && !report.is_clean() {
        let shapes: Vec<String> = report
            .wrong_shape
            .iter()
            .map(|(n, want, got)| format!("{n} (network {want:?}, file {got:?})"))
            .collect();
        return Err(Error::Format {
            path: path.into(),
            reason: format!(
                "the state dict does not fit the network: missing [{}]; unexpected [{}]; \
                 wrong shape [{}]",
                report.missing.join(", "),
                report.unexpected.join(", "),
                shapes.join(", ")
            ),
        });
    }
    Ok((params, buffers, report))
}

/// Writes `params` and `buffers` as a plain safetensors state dict under PyTorch's names,
/// which `safetensors.torch.load_file` + `load_state_dict` read back; atomically, through
/// [`scarce_core::checkpoint::save`] (its header also carries `{"format": "pt"}`, as hub
/// files do).
///
/// # Errors
/// When the file cannot be written.
pub fn save(path: &Path, params: &Params, buffers: &Params) -> Result<()> {
    let mut all = params.clone();
    all.insert_prefixed("", buffers);
    let meta = scarce_core::checkpoint::CheckpointMeta {
        kind: "state_dict".into(),
        extra: [("format".to_string(), "pt".to_string())].into(),
        ..Default::default()
    };
    scarce_core::checkpoint::save(path, &all, &meta)
}

/// Puts `t` among the learnt parameters or the buffers, by `spec`'s kind.
fn place(spec: &TensorSpec, t: Tensor, params: &mut Params, buffers: &mut Params) {
    if spec.kind.is_buffer() {
        buffers.insert(spec.name.as_str(), t);
    } else {
        params.insert(spec.name.as_str(), t);
    }
}

/// Every tensor of `layout` made by `make(index, spec)`: the learnt parameters and the
/// buffers apart.
pub(crate) fn build(
    layout: &[TensorSpec],
    mut make: impl FnMut(usize, &TensorSpec) -> Result<Tensor>,
) -> Result<(Params, Params)> {
    let (mut params, mut buffers) = (Params::new(), Params::new());
    for (i, spec) in layout.iter().enumerate() {
        place(spec, make(i, spec)?, &mut params, &mut buffers);
    }
    Ok((params, buffers))
}

/// Fresh weights for `layout` from `rng`, as PyTorch initialises each kind by default (see
/// [`init_tensor`]): the learnt parameters and the buffers apart.
pub fn init(
    layout: &[TensorSpec],
    rng: &scarce_core::Stream,
    dtype: DType,
    device: &Device,
) -> Result<(Params, Params)> {
    build(layout, |_, spec| init_tensor(spec, rng, dtype, device))
}

/// One fresh tensor as PyTorch initialises its kind by default: convolution kernels
/// Kaiming-normal for ReLU over the fan-out (torchvision's ResNet), linear weights and all
/// biases uniform on ±1/√fan-in (`nn.Linear`), norm scales 1 and shifts 0, running means 0
/// and variances 1, tokens normal with σ = 0.02 (timm). Draws come from `rng.child(name)`.
pub fn init_tensor(
    spec: &TensorSpec,
    rng: &scarce_core::Stream,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = spec.shape.as_slice();
    let r = rng.child(&spec.name);
    let bound = 1.0 / (spec.fan_in.max(1) as f64).sqrt();
    Ok(match spec.kind {
        Kind::ConvWeight => {
            let fan_out = spec.shape[0] * spec.shape[2..].iter().product::<usize>();
            r.normal_tensor(shape, 0.0, (2.0 / fan_out as f64).sqrt(), dtype, device)?
        }
        Kind::LinearWeight | Kind::LinearBias | Kind::ConvBias => {
            r.uniform_tensor(shape, -bound, bound, dtype, device)?
        }
        Kind::BnWeight | Kind::LnWeight | Kind::BnRunningVar => Tensor::ones(shape, dtype, device)?,
        Kind::BnBias | Kind::LnBias | Kind::BnRunningMean => Tensor::zeros(shape, dtype, device)?,
        Kind::Token => r.normal_tensor(shape, 0.0, 0.02, dtype, device)?,
    })
}
