//! Small raster plots written as PNG, without a plotting stack: a [`Canvas`] of RGB pixels
//! with lines, rectangles, grey images and digits in a built-in 3×5 font (enough for axis
//! ticks). Files are written atomically (temporary file, then rename).

use std::path::Path;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Colours used by the built-in plots.
pub mod colours {
    use super::Rgb;
    /// Background.
    pub const WHITE: Rgb = [255, 255, 255];
    /// Axes and text.
    pub const BLACK: Rgb = [0, 0, 0];
    /// Grid lines.
    pub const GREY: Rgb = [220, 220, 220];
    /// First series.
    pub const BLUE: Rgb = [31, 119, 180];
    /// Second series.
    pub const ORANGE: Rgb = [255, 127, 14];
    /// Third series.
    pub const GREEN: Rgb = [44, 160, 44];
    /// Highlights.
    pub const RED: Rgb = [214, 39, 40];
}

/// 3×5 bitmaps of `0-9 . - %` (rows top to bottom, 3 bits each, MSB left).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '%' => [5, 1, 2, 4, 5],
        _ => return None,
    })
}

/// An RGB image being drawn.
#[derive(Clone, Debug)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// The colour at a pixel.
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    /// A line (Bresenham), `thick` pixels wide.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb, thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(
                x - thick / 2,
                y - thick / 2,
                x + (thick - 1) / 2,
                y + (thick - 1) / 2,
                c,
            );
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text of digits, `.`, `-`, `%` at `scale` pixels per font pixel (other characters
    /// leave a gap).
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            if let Some(g) = glyph(ch) {
                for (row, bits) in g.iter().enumerate() {
                    for col in 0..3 {
                        if bits & (4 >> col) != 0 {
                            let (px, py) =
                                (x + (k as i64 * 4 + col) * scale, y + row as i64 * scale);
                            self.rect(px, py, px + scale - 1, py + scale - 1, c);
                        }
                    }
                }
            }
        }
    }

    /// A grey image (`h × w` values in `[0, 1]`) drawn at `(x, y)`, each pixel `scale`
    /// canvas pixels wide.
    pub fn grey_image(&mut self, x: i64, y: i64, values: &[f32], h: usize, w: usize, scale: i64) {
        for r in 0..h {
            for col in 0..w {
                let v = (values[r * w + col].clamp(0.0, 1.0) * 255.0).round() as u8;
                let (px, py) = (x + col as i64 * scale, y + r as i64 * scale);
                self.rect(px, py, px + scale - 1, py + scale - 1, [v, v, v]);
            }
        }
    }

    /// `self` above `below` (widths padded with white to the wider).
    pub fn stack(&self, below: &Canvas) -> Canvas {
        let mut out = Canvas::new(self.width.max(below.width), self.height + below.height);
        for (dy, part) in [(0, self), (self.height, below)] {
            for y in 0..part.height {
                for x in 0..part.width {
                    out.set(x as i64, (y + dy) as i64, part.get(x, y));
                }
            }
        }
        out
    }

    /// Writes the canvas as an 8-bit RGB PNG, atomically.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("png.tmp");
        let result = (|| {
            let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut enc = png::Encoder::new(file, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(std::io::Error::other)?;
            w.write_image_data(&self.pixels)
                .map_err(std::io::Error::other)?;
            w.finish().map_err(std::io::Error::other)?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// A line chart: each series is `(points, colour)` with `x` in `[x_lo, x_hi]` and `y` in
/// `[y_lo, y_hi]`; the y axis gets five labelled ticks, the x axis its two ends.
pub fn line_chart(
    series: &[(&[(f64, f64)], Rgb)],
    (x_lo, x_hi): (f64, f64),
    (y_lo, y_hi): (f64, f64),
    width: usize,
    height: usize,
) -> Canvas {
    let mut c = Canvas::new(width, height);
    let (left, right, top, bottom) = (50i64, width as i64 - 15, 15i64, height as i64 - 30);
    let px = |x: f64| {
        left + ((x - x_lo) / (x_hi - x_lo).max(1e-300) * (right - left) as f64).round() as i64
    };
    let py = |y: f64| {
        bottom
            - ((y.clamp(y_lo, y_hi) - y_lo) / (y_hi - y_lo).max(1e-300) * (bottom - top) as f64)
                .round() as i64
    };
    for k in 0..=4 {
        let y = y_lo + (y_hi - y_lo) * k as f64 / 4.0;
        c.line((left, py(y)), (right, py(y)), colours::GREY, 1);
        c.text(4, py(y) - 5, &short(y), 2, colours::BLACK);
    }
    c.line((left, top), (left, bottom), colours::BLACK, 1);
    c.line((left, bottom), (right, bottom), colours::BLACK, 1);
    c.text(left, bottom + 8, &short(x_lo), 2, colours::BLACK);
    let end = short(x_hi);
    c.text(
        right - 8 * end.len() as i64,
        bottom + 8,
        &end,
        2,
        colours::BLACK,
    );
    for (points, colour) in series {
        for w in points.windows(2) {
            c.line(
                (px(w[0].0), py(w[0].1)),
                (px(w[1].0), py(w[1].1)),
                *colour,
                2,
            );
        }
        if points.len() == 1 {
            c.rect(
                px(points[0].0) - 2,
                py(points[0].1) - 2,
                px(points[0].0) + 2,
                py(points[0].1) + 2,
                *colour,
            );
        }
    }
    c
}

/// The `(x, y)` pairs of two numeric columns of a CSV text with a header line; rows where
/// either is empty or not a number are skipped (e.g. validation columns filled only at
/// validation steps).
pub fn csv_points(text: &str, x_col: usize, y_col: usize) -> Vec<(f64, f64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            Some((num(x_col)?, num(y_col)?))
        })
        .collect()
}

/// A training run's curves, stacked: the training loss (mean over windows of `steps / 100`
/// steps) in blue above, the validation metric in orange below with y-range `val_range`.
pub fn learning_curve(
    train: &[(f64, f64)],
    val: &[(f64, f64)],
    steps: usize,
    val_range: (f64, f64),
) -> Canvas {
    let window = (steps / 100).max(1);
    let smoothed: Vec<(f64, f64)> = train
        .chunks(window)
        .map(|c| {
            (
                c[c.len() - 1].0,
                c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64,
            )
        })
        .collect();
    let top = smoothed.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-6);
    let x = (0.0, steps.max(1) as f64);
    let upper = line_chart(&[(&smoothed, colours::BLUE)], x, (0.0, top), 640, 240);
    let lower = line_chart(&[(val, colours::ORANGE)], x, val_range, 640, 240);
    upper.stack(&lower)
}

/// A number in at most 5 characters for tick labels.
fn short(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{}", v.round() as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_points_skip_empty_and_non_numeric_cells() {
        let text = "step,loss,val\n1,0.5,\n2,0.4,90.5\n3,nan?,91\n";
        assert_eq!(csv_points(text, 0, 1), vec![(1.0, 0.5), (2.0, 0.4)]);
        assert_eq!(csv_points(text, 0, 2), vec![(2.0, 90.5), (3.0, 91.0)]);
    }

    #[test]
    fn lines_and_text_land_where_asked() {
        let mut c = Canvas::new(20, 10);
        c.line((0, 0), (19, 9), colours::RED, 1);
        assert_eq!(c.get(0, 0), colours::RED);
        assert_eq!(c.get(19, 9), colours::RED);
        c.text(0, 4, "1", 1, colours::BLACK);
        // '1' is 010 / 110 / 010 / 010 / 111: its top row has only the middle pixel.
        assert_eq!(c.get(1, 4), colours::BLACK);
        assert_eq!(c.get(0, 4), colours::WHITE);
    }
}
