//! Sample grids as PNG: generated images in `[-1, 1]`, tiled row by row.

use crate::{Error, Result};
use candle_core::{DType, IndexOp, Tensor};
use scarce_eval::plot::Canvas;
use std::path::Path;

/// Writes `x` (`[N, C, H, W]`, or `[N, C, D, H, W]` shown by its middle slice; values in
/// `[-1, 1]`; the first channel) as a PNG grid of `per_row` images per row, each pixel drawn
/// 2×2, written atomically.
pub fn save_grid(x: &Tensor, per_row: usize, path: &Path) -> Result<()> {
    let x = match x.rank() {
        4 => x.clone(),
        5 => {
            let d = x.dim(2)?;
            x.i((.., .., d / 2))?
        }
        _ => {
            return Err(Error::config(
                "images",
                format!("shape {:?}: need [N, C, H, W] or [N, C, D, H, W]", x.dims()),
            ))
        }
    };
    let (n, _, h, w) = x.dims4()?;
    let per_row = per_row.max(1);
    let rows = n.div_ceil(per_row);
    let (scale, gap) = (2usize, 2usize);
    let mut canvas = Canvas::new(
        per_row * (w * scale + gap) + gap,
        rows * (h * scale + gap) + gap,
    );
    let v = ((x.i((.., 0))?.to_dtype(DType::F32)? + 1.0)? * 0.5)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for i in 0..n {
        let (r, c) = (i / per_row, i % per_row);
        canvas.grey_image(
            (gap + c * (w * scale + gap)) as i64,
            (gap + r * (h * scale + gap)) as i64,
            &v[i * h * w..(i + 1) * h * w],
            h,
            w,
            scale as i64,
        );
    }
    canvas.save_png(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}
