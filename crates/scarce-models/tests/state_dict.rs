//! Loading state dicts as `load_state_dict` does: a round trip through `save`, and a file
//! with a missing, an unexpected and a wrongly-shaped tensor refused in strict mode (every
//! one named, with the file) and reported out of it. Inputs the networks cannot take are
//! errors naming them.

use candle_core::{DType, Device, Tensor};
use scarce_core::{Ctx, Model, Params, Stream};
use scarce_models::{state_dict, ResNet, ResNetConfig, Stem, Vit, VitConfig};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scarce-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_saved_state_dict_loads_back_and_a_mismatched_one_is_refused_naming_each_tensor() {
    let dev = Device::Cpu;
    let net = ResNet::new(ResNetConfig::resnet18(1, 2, Stem::Small)).unwrap();
    let layout = net.layout();
    let (p, b) = state_dict::init(&layout, &Stream::new(3, "w"), DType::F32, &dev).unwrap();
    let path = temp("resnet18.safetensors");
    state_dict::save(&path, &p, &b).unwrap();
    let (p2, b2, report) = state_dict::load(&path, &layout, true, DType::F32, &dev).unwrap();
    assert!(report.is_clean());
    assert_eq!((p2.len(), b2.len()), (62, 40));
    for (name, t) in p.iter().chain(b.iter()) {
        let back = p2.get(name).or_else(|| b2.get(name)).unwrap();
        let diff = (t - back).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }

    // fc.bias missing, an extra tensor, conv1.weight with 3 input channels.
    let mut bad = p.clone();
    let mut kept = Params::new();
    for (name, t) in bad.iter() {
        if name != "fc.bias" && name != "conv1.weight" {
            kept.insert(name, t.clone());
        }
    }
    kept.insert(
        "conv1.weight",
        Tensor::zeros((64, 3, 3, 3), DType::F32, &dev).unwrap(),
    );
    kept.insert("head.extra", Tensor::zeros(4, DType::F32, &dev).unwrap());
    bad = kept;
    let path = temp("bad.safetensors");
    state_dict::save(&path, &bad, &b).unwrap();
    let err = state_dict::load(&path, &layout, true, DType::F32, &dev)
        .unwrap_err()
        .to_string();
    for needle in [
        "bad.safetensors",
        "fc.bias",
        "head.extra",
        "conv1.weight",
        "[64, 1, 3, 3]",
        "[64, 3, 3, 3]",
    ] {
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    let (p3, _, report) = state_dict::load(&path, &layout, false, DType::F32, &dev).unwrap();
    assert_eq!(report.missing, ["fc.bias"]);
    assert_eq!(report.unexpected, ["head.extra"]);
    assert_eq!(report.wrong_shape[0].0, "conv1.weight");
    assert!(p3.get("conv1.weight").is_none() && p3.get("fc.weight").is_some());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn inputs_the_networks_cannot_take_are_errors_naming_them() {
    let dev = Device::Cpu;
    let net = ResNet::new(ResNetConfig::resnet18(1, 2, Stem::Small)).unwrap();
    let p = net.init(&Stream::new(0, "r"), &dev).unwrap();
    let mut ctx = Ctx::eval(net.buffers(&dev).unwrap());
    let rgb = Tensor::zeros((2, 3, 28, 28), DType::F32, &dev).unwrap();
    let err = net.forward(&p, &rgb, &mut ctx).unwrap_err().to_string();
    assert!(err.contains('x') && err.contains("[2, 3, 28, 28]"), "{err}");

    let vit = Vit::new(VitConfig::new(28, 7, 1, 2, (16, 1, 2))).unwrap();
    let p = vit.init(&Stream::new(0, "v"), &dev).unwrap();
    let big = Tensor::zeros((1, 1, 32, 32), DType::F32, &dev).unwrap();
    let err = vit
        .forward(&p, &big, &mut Ctx::eval(Params::new()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[1, 1, 32, 32]"), "{err}");
    assert!(vit
        .attention(&p, &big, 5)
        .unwrap_err()
        .to_string()
        .contains("block"));
    assert!(Vit::new(VitConfig::new(28, 5, 1, 2, (16, 1, 2))).is_err());
    assert!(Vit::new(VitConfig::new(28, 7, 1, 2, (16, 1, 3))).is_err());
}
