//! scarce-augment pipelines run inside the collator: image and label map move together,
//! results repeat, and a pipeline that changes the shape is refused by name.

use std::sync::Arc;

use scarce_augment::transforms::{RandomCrop, RandomFlip};
use scarce_core::Device;
use scarce_episodes::{Collator, Dataset, EpisodeConfig, EpisodeSampler, Pipeline};

/// 6 classes × 4 samples of 1×3×4 images whose pixels are their own index in the image,
/// with a label map marking the first row.
fn toy() -> Dataset {
    let n = 24;
    let labels: Vec<usize> = (0..n).map(|i| i / 4).collect();
    let pixels = (0..n * 12).map(|v| (v % 12) as f32).collect();
    let masks = (0..n * 12).map(|v| u8::from(v % 12 < 4)).collect();
    Dataset::from_f32("toy", &[1, 3, 4], pixels, labels)
        .unwrap()
        .with_masks(masks)
        .unwrap()
}

#[test]
fn pipelines_augment_images_and_masks_together() {
    let ds = toy();
    let s = EpisodeSampler::new(&ds, EpisodeConfig::new(3, 1, 1), 0).unwrap();
    let flip = Pipeline(Box::new(RandomFlip {
        axes: vec![0, 1],
        p: 1.0,
    }));
    let collator = Collator::new(&ds, &Device::Cpu).with_augment(Arc::new(flip), true, 1);
    let b = collator.collate(&s.episode(0).unwrap()).unwrap();
    let px = b.support.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Both axes flipped: pixel k holds 11 − k.
    assert_eq!(
        &px[..12],
        &(0..12).rev().map(|v| v as f32).collect::<Vec<_>>()[..]
    );
    let m = b
        .support_masks
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    // The marked first row is now the last row.
    assert_eq!(&m[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    let again = collator.collate(&s.episode(0).unwrap()).unwrap();
    assert_eq!(
        again.query.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.query.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );

    let crop = Pipeline(Box::new(RandomCrop { size: vec![2, 2] }));
    let collator = Collator::new(&ds, &Device::Cpu).with_augment(Arc::new(crop), true, 1);
    let e = collator
        .collate(&s.episode(0).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("augment") && e.contains("shape"), "{e}");
}
