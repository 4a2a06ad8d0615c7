//! Requests the recipes cannot honour are refused with the parameter named, before any
//! training.

use scarce_core::backbone::{Conv4, Conv4Config};
use scarce_core::{Device, Model, Stream};
use scarce_ssl::{fixmatch, pretrain, FixMatchConfig, Labelled, SimClrConfig, Unlabelled};

#[test]
fn unlabelled_images_of_another_shape_are_refused() {
    let dev = Device::Cpu;
    let model = Conv4::new(Conv4Config::default()).unwrap();
    let mut p = model.init(&Stream::new(0, "t"), &dev).unwrap();
    p.insert(
        "fc.weight",
        scarce_core::Tensor::zeros((2, 64), scarce_core::DType::F32, &dev).unwrap(),
    );
    p.insert(
        "fc.bias",
        scarce_core::Tensor::zeros(2, scarce_core::DType::F32, &dev).unwrap(),
    );
    let lab = vec![0.5f32; 4 * 784];
    let rgb = vec![0.5f32; 40 * 3 * 784];
    let err = fixmatch(
        model.clone(),
        p,
        model.buffers(&dev).unwrap(),
        false,
        Labelled {
            pixels: &lab,
            sample_shape: &[1, 28, 28],
            labels: &[0, 1, 0, 1],
            classes: 2,
        },
        Unlabelled {
            pixels: &rgb,
            sample_shape: &[3, 28, 28],
            mean: 0.5,
            std: 0.2,
        },
        &FixMatchConfig::default(),
        &dev,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unlabelled") && err.contains("[3, 28, 28]") && err.contains("[1, 28, 28]"),
        "{err}"
    );
}

#[test]
fn a_batch_larger_than_the_pool_is_refused() {
    let px = vec![0.5f32; 10 * 784];
    let err = pretrain(
        Conv4::new(Conv4Config::default()).unwrap(),
        64,
        Unlabelled {
            pixels: &px,
            sample_shape: &[1, 28, 28],
            mean: 0.5,
            std: 0.2,
        },
        &SimClrConfig::default(),
        &Device::Cpu,
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("batch_size") && err.contains("10 unlabelled images"),
        "{err}"
    );
}
