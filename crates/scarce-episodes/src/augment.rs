//! scarce-augment pipelines in the episode loader: [`Pipeline`] wraps any
//! `scarce_augment::Transform` as an [`Augment`], so a collator can apply it to every sample
//! (and its label map) with the collator's keyed randomness.

use scarce_augment::{Image, Rand, Sample, Transform};
use scarce_core::rng::Stream;

use crate::error::{Error, Result};
use crate::loader::Augment;

/// A scarce-augment transform as a collator augmentation. The transform must keep the
/// sample's shape (a crop must be paired with a pad or resize): a collated batch is stacked.
#[derive(Debug)]
pub struct Pipeline(pub Box<dyn Transform>);

impl Augment for Pipeline {
    fn apply(
        &self,
        pixels: &mut [f32],
        mask: Option<&mut [u8]>,
        shape: &[usize],
        rng: &Stream,
    ) -> Result<()> {
        let aug = |e: scarce_augment::Error| Error::param("augment", e.to_string());
        let (channels, spatial) = shape
            .split_first()
            .ok_or_else(|| Error::param("augment", "an empty sample shape"))?;
        let image = Image::new(pixels.to_vec(), *channels, spatial).map_err(aug)?;
        let labels = mask.as_ref().map(|m| m.iter().map(|&v| v as u16).collect());
        let mut sample = Sample::new(image, labels, 0).map_err(aug)?;
        // The collator's stream already keys (seed, episode, position): derive from it.
        self.0
            .apply(&mut sample, Rand::new(rng.u64(0)))
            .map_err(aug)?;
        if sample.image.shape != spatial || sample.image.channels != *channels {
            return Err(Error::param(
                "augment",
                format!(
                    "the pipeline changed the sample's shape from {shape:?} to {:?} × {:?}",
                    sample.image.channels, sample.image.shape
                ),
            ));
        }
        pixels.copy_from_slice(&sample.image.data);
        if let (Some(out), Some(labels)) = (mask, sample.mask) {
            for (o, l) in out.iter_mut().zip(labels) {
                // Labels come from the input map, so they fit in u8 again.
                *o = l as u8;
            }
        }
        Ok(())
    }
}
