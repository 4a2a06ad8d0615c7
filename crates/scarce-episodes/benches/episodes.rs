//! Episodes per second from the bundled Omniglot (background set, 28×28, with the four
//! rotations as classes), sampled and collated to CPU tensors: 5-way and 20-way 5-shot
//! 15-query, without and with a per-sample augmentation (random shift of up to 2 pixels
//! with zero fill, plus Gaussian pixel noise σ = 0.05).

use std::sync::Arc;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scarce_core::rng::Stream;
use scarce_episodes::omniglot::{Omniglot, OmniglotSet};
use scarce_episodes::{Collator, EpisodeConfig, EpisodeSampler, Result};

fn shift_and_noise(
    px: &mut [f32],
    _: Option<&mut [u8]>,
    shape: &[usize],
    rng: &Stream,
) -> Result<()> {
    let (h, w) = (shape[1], shape[2]);
    let dy = rng.below(0, 5) as isize - 2;
    let dx = rng.below(1, 5) as isize - 2;
    let src = px.to_vec();
    for y in 0..h as isize {
        for x in 0..w as isize {
            let (sy, sx) = (y - dy, x - dx);
            let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
            let v = if inside {
                src[(sy * w as isize + sx) as usize]
            } else {
                0.0
            };
            let k = (y * w as isize + x) as usize;
            px[k] = v + 0.05 * rng.normal(2 + k as u64) as f32;
        }
    }
    Ok(())
}

fn bench(c: &mut Criterion) {
    let dir = scarce_episodes::data_dir().join("omniglot");
    let train = Omniglot::load(&dir, OmniglotSet::Background, 28)
        .unwrap()
        .dataset
        .with_rotations(&[0, 1, 2, 3])
        .unwrap();
    let mut group = c.benchmark_group("episodes");
    group.throughput(Throughput::Elements(1));
    for n_way in [5, 20] {
        let sampler = EpisodeSampler::new(&train, EpisodeConfig::new(n_way, 5, 15), 0).unwrap();
        for augment in [false, true] {
            let mut collator = Collator::new(&train, &Device::Cpu);
            if augment {
                collator = collator.with_augment(Arc::new(shift_and_noise), true, 0);
            }
            let name = format!(
                "omniglot_{n_way}w5s15q{}",
                if augment { "_augmented" } else { "" }
            );
            let mut i = 0u64;
            group.bench_function(name, |b| {
                b.iter(|| {
                    i += 1;
                    collator.collate(&sampler.episode(i).unwrap()).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
