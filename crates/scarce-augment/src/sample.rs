//! What transforms act on: a channels-first image with its voxel spacing, an optional label
//! map of the same spatial shape, a class label, an id, and the record of what was applied.

use crate::interp::dims3;
use crate::ops::Op;
use crate::{Error, Result};

/// A channels-first 2D or 3D image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `channels × prod(shape)` values, channel-major, each channel C-ordered.
    pub data: Vec<f32>,
    /// Channels.
    pub channels: usize,
    /// Spatial shape, axis 0 first (`[h, w]` or `[d, h, w]`).
    pub shape: Vec<usize>,
    /// Voxel size per spatial axis (mm), same order.
    pub spacing: Vec<f64>,
}

impl Image {
    /// An image with unit spacing; errors unless `data` fits `channels` and `shape`.
    pub fn new(data: Vec<f32>, channels: usize, shape: &[usize]) -> Result<Image> {
        let spacing = vec![1.0; shape.len()];
        Image::with_spacing(data, channels, shape, &spacing)
    }

    /// An image with the given spacing.
    pub fn with_spacing(
        data: Vec<f32>,
        channels: usize,
        shape: &[usize],
        spacing: &[f64],
    ) -> Result<Image> {
        if !(2..=3).contains(&shape.len()) || shape.contains(&0) {
            return Err(Error::shape("image", "a non-empty 2D or 3D shape", shape));
        }
        if channels == 0 || data.len() != channels * shape.iter().product::<usize>() {
            return Err(Error::shape(
                "image",
                format!("{channels} × {shape:?} values"),
                &[data.len()],
            ));
        }
        if spacing.len() != shape.len() || spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::param(
                "spacing",
                format!("{spacing:?}: one positive value per spatial axis"),
            ));
        }
        Ok(Image {
            data,
            channels,
            shape: shape.to_vec(),
            spacing: spacing.to_vec(),
        })
    }

    /// Values per channel.
    pub fn voxels(&self) -> usize {
        self.shape.iter().product()
    }

    /// The spatial shape as 3D (`[1, h, w]` for 2D).
    pub fn dims(&self) -> [usize; 3] {
        dims3(&self.shape).unwrap_or([1, 1, 1])
    }

    /// Channel `c`.
    pub fn channel(&self, c: usize) -> &[f32] {
        let n = self.voxels();
        &self.data[c * n..(c + 1) * n]
    }
}

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The image.
    pub image: Image,
    /// Integer label map with the image's spatial shape (segmentation), if any.
    pub mask: Option<Vec<u16>>,
    /// Class label, if any.
    pub label: Option<usize>,
    /// Identifies the sample in random streams (with the epoch).
    pub id: u64,
    /// Every operation applied so far, in order, with its parameters.
    pub history: Vec<Op>,
}

impl Sample {
    /// A sample; errors unless the mask (if any) has the image's spatial size.
    pub fn new(image: Image, mask: Option<Vec<u16>>, id: u64) -> Result<Sample> {
        if let Some(m) = &mask {
            if m.len() != image.voxels() {
                return Err(Error::shape(
                    "mask",
                    format!("the image's spatial shape {:?}", image.shape),
                    &[m.len()],
                ));
            }
        }
        Ok(Sample {
            image,
            mask,
            label: None,
            id,
            history: Vec::new(),
        })
    }
}
