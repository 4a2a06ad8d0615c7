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

/// From scarce-io's image, whose layout is `[channels, depth, height, width]` with the spacing
/// along (x, y, z), i.e. width first: here the spatial axes run depth first (`[d, h, w]`,
/// or `[h, w]` for a single slice) and so does the spacing. The values keep their order (both
/// are channel-major and C-ordered); origin, direction and metadata are not carried.
#[cfg(feature = "io")]
impl TryFrom<&scarce_io::Image> for Image {
    type Error = Error;

    fn try_from(img: &scarce_io::Image) -> Result<Image> {
        let [c, d, h, w] = img.shape;
        let [sx, sy, sz] = img.spacing;
        if d == 1 {
            Image::with_spacing(img.data.clone(), c, &[h, w], &[sy, sx])
        } else {
            Image::with_spacing(img.data.clone(), c, &[d, h, w], &[sz, sy, sx])
        }
    }
}

/// To scarce-io's layout (`[channels, depth, height, width]`, spacing along x, y, z; a 2D
/// image is one slice of depth 1 and spacing 1 along z), with origin 0 and identity
/// direction: this image has no world geometry beyond its spacing.
#[cfg(feature = "io")]
impl From<&Image> for scarce_io::Image {
    fn from(img: &Image) -> scarce_io::Image {
        let [d, h, w] = img.dims();
        let spacing = match img.spacing[..] {
            [sy, sx] => [sx, sy, 1.0],
            [sz, sy, sx] => [sx, sy, sz],
            _ => [1.0; 3], // `with_spacing` admits 2D and 3D only
        };
        scarce_io::Image {
            data: img.data.clone(),
            shape: [img.channels, d, h, w],
            spacing,
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            meta: scarce_io::Metadata::default(),
        }
    }
}

#[cfg(all(test, feature = "io"))]
mod io_tests {
    use super::*;

    #[test]
    fn axes_and_spacing_are_reversed_and_values_kept() {
        // 2 channels of 3 slices of 4 x 5, spacing x 0.5, y 0.7, z 2.0.
        let data: Vec<f32> = (0..2 * 3 * 4 * 5).map(|v| v as f32).collect();
        let io = scarce_io::Image {
            data: data.clone(),
            shape: [2, 3, 4, 5],
            spacing: [0.5, 0.7, 2.0],
            origin: [0.0; 3],
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            meta: scarce_io::Metadata::default(),
        };
        let a = Image::try_from(&io).unwrap();
        assert_eq!((a.channels, a.shape.clone()), (2, vec![3, 4, 5]));
        assert_eq!(a.spacing, vec![2.0, 0.7, 0.5]);
        // Voxel (c 1, z 2, y 3, x 4) is the same value on both sides.
        assert_eq!(
            a.channel(1)[(2 * 4 + 3) * 5 + 4],
            data[((3 + 2) * 4 + 3) * 5 + 4]
        );
        let back = scarce_io::Image::from(&a);
        assert_eq!(
            (back.shape, back.spacing, back.data),
            (io.shape, io.spacing, data)
        );
        // A single slice becomes a 2D image.
        let slice = scarce_io::Image {
            shape: [1, 1, 4, 5],
            data: vec![0.0; 20],
            ..io
        };
        let a = Image::try_from(&slice).unwrap();
        assert_eq!(
            (a.shape.clone(), a.spacing.clone()),
            (vec![4, 5], vec![0.7, 0.5])
        );
        assert_eq!(scarce_io::Image::from(&a).spacing, [0.5, 0.7, 1.0]);
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
