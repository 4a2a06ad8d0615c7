//! Plots a user opens: [`Chart`]s with a title, labelled axes and a legend, laid out in a
//! [`Figure`] and written as SVG with `plotters` (the viewer renders the text, so no font
//! ships), and [`Canvas`]es of RGB pixels for image grids, written as PNG or placed in a
//! figure. Files are written atomically (temporary file, then rename).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

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
    /// Reference lines.
    pub const GREY_DARK: Rgb = [110, 110, 110];
    /// First series.
    pub const BLUE: Rgb = [31, 119, 180];
    /// Second series.
    pub const ORANGE: Rgb = [255, 127, 14];
    /// Third series.
    pub const GREEN: Rgb = [44, 160, 44];
    /// Highlights.
    pub const RED: Rgb = [214, 39, 40];
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

    /// The canvas encoded as an 8-bit RGB PNG.
    pub fn png_bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(std::io::Error::other)?;
        w.write_image_data(&self.pixels)
            .map_err(std::io::Error::other)?;
        w.finish().map_err(std::io::Error::other)?;
        Ok(bytes)
    }

    /// Writes the canvas as an 8-bit RGB PNG, atomically.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        write_atomically(path, &self.png_bytes()?)
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it, so a reader never sees
/// a partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

/// What one layer of a [`Chart`] draws.
#[derive(Clone, Debug, PartialEq)]
enum Layer {
    Line(Vec<(f64, f64)>),
    Points(Vec<(f64, f64)>),
    Boxes(Vec<[(f64, f64); 2]>),
    Labels(Vec<(f64, f64, String)>),
}

/// One drawn series: its legend entry (none when empty), its colour and what it draws.
#[derive(Clone, Debug, PartialEq)]
struct Series {
    name: String,
    colour: Rgb,
    layer: Layer,
}

/// A chart with a title, labelled axes and a legend of its named series.
///
/// ```
/// use scarce_eval::plot::{colours, Chart, Figure};
/// let chart = Chart::new("Validation accuracy")
///     .x_axis("step", Some((0.0, 100.0)))
///     .y_axis("accuracy (%)", None)
///     .line("ProtoNet", vec![(0.0, 60.0), (50.0, 80.0), (100.0, 85.0)], colours::BLUE);
/// let svg = Figure::new(1, (480, 320)).chart(chart).to_svg().unwrap();
/// assert!(svg.contains("Validation accuracy") && svg.contains("ProtoNet"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    title: String,
    x_label: String,
    y_label: String,
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
    series: Vec<Series>,
}

impl Chart {
    /// An empty chart; axis ranges fit the data unless set.
    pub fn new(title: impl Into<String>) -> Self {
        Chart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            x_range: None,
            y_range: None,
            series: Vec::new(),
        }
    }

    /// The x axis's label and range (`None`: fitted to the data).
    pub fn x_axis(mut self, label: impl Into<String>, range: Option<(f64, f64)>) -> Self {
        self.x_label = label.into();
        self.x_range = range;
        self
    }

    /// The y axis's label and range (`None`: fitted to the data).
    pub fn y_axis(mut self, label: impl Into<String>, range: Option<(f64, f64)>) -> Self {
        self.y_label = label.into();
        self.y_range = range;
        self
    }

    fn push(mut self, name: impl Into<String>, colour: Rgb, layer: Layer) -> Self {
        self.series.push(Series {
            name: name.into(),
            colour,
            layer,
        });
        self
    }

    /// A polyline through `points`; `name` is its legend entry (empty: none).
    pub fn line(self, name: impl Into<String>, points: Vec<(f64, f64)>, colour: Rgb) -> Self {
        self.push(name, colour, Layer::Line(points))
    }

    /// A dot at each of `points`.
    pub fn points(self, name: impl Into<String>, points: Vec<(f64, f64)>, colour: Rgb) -> Self {
        self.push(name, colour, Layer::Points(points))
    }

    /// Filled rectangles, each given by two opposite corners (bars, bands).
    pub fn boxes(self, name: impl Into<String>, boxes: Vec<[(f64, f64); 2]>, colour: Rgb) -> Self {
        self.push(name, colour, Layer::Boxes(boxes))
    }

    /// Text anchored at data coordinates (values above bars, annotations).
    pub fn labels(self, labels: Vec<(f64, f64, String)>) -> Self {
        self.push("", colours::BLACK, Layer::Labels(labels))
    }

    /// The rectangles of the series called `name`, if it is a [`Chart::boxes`] series.
    pub fn boxes_named(&self, name: &str) -> Option<&[[(f64, f64); 2]]> {
        self.series.iter().find_map(|s| match &s.layer {
            Layer::Boxes(b) if s.name == name => Some(b.as_slice()),
            _ => None,
        })
    }

    /// The x and y ranges drawn: the ones set, else the data's extent with a 5% margin
    /// (a single value gets ±1).
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for s in &self.series {
            let mut add = |(x, y): (f64, f64)| {
                xs.push(x);
                ys.push(y);
            };
            match &s.layer {
                Layer::Line(p) | Layer::Points(p) => p.iter().copied().for_each(&mut add),
                Layer::Boxes(b) => b.iter().flatten().copied().for_each(&mut add),
                Layer::Labels(l) => l.iter().for_each(|(x, y, _)| add((*x, *y))),
            }
        }
        let fit = |v: &[f64]| {
            let (lo, hi) = v
                .iter()
                .filter(|x| x.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-12 * lo.abs().max(1.0) {
                (lo - 1.0, hi + 1.0)
            } else {
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            }
        };
        (
            self.x_range.unwrap_or_else(|| fit(&xs)),
            self.y_range.unwrap_or_else(|| fit(&ys)),
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let mut legend = false;
        for s in &self.series {
            let colour = RGBColor(s.colour[0], s.colour[1], s.colour[2]);
            let drawn = match &s.layer {
                Layer::Line(p) => {
                    chart.draw_series(LineSeries::new(p.iter().copied(), colour.stroke_width(2)))?
                }
                Layer::Points(p) => {
                    chart.draw_series(p.iter().map(|&q| Circle::new(q, 3, colour.filled())))?
                }
                Layer::Boxes(b) => {
                    chart.draw_series(b.iter().map(|&r| Rectangle::new(r, colour.filled())))?
                }
                Layer::Labels(l) => chart.draw_series(l.iter().map(|(x, y, text)| {
                    Text::new(text.clone(), (*x, *y), ("sans-serif", 12).into_font())
                }))?,
            };
            if !s.name.is_empty() {
                legend = true;
                drawn.label(s.name.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 14, y + 4)], colour.filled())
                });
            }
        }
        if legend {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// One cell of a [`Figure`].
#[derive(Clone, Debug)]
enum Panel {
    Chart(Chart),
    Picture(String, Canvas),
}

/// Panels laid out row by row, `cols` to a row, each `panel_size` pixels: charts, and
/// pictures (a [`Canvas`] under a title, embedded as PNG and scaled to fit).
#[derive(Clone, Debug)]
pub struct Figure {
    cols: usize,
    panel_size: (u32, u32),
    panels: Vec<Panel>,
}

impl Figure {
    /// An empty figure.
    pub fn new(cols: usize, panel_size: (u32, u32)) -> Self {
        Figure {
            cols: cols.max(1),
            panel_size,
            panels: Vec::new(),
        }
    }

    /// Adds a chart as the next panel.
    pub fn chart(mut self, chart: Chart) -> Self {
        self.panels.push(Panel::Chart(chart));
        self
    }

    /// Adds a picture under `title` as the next panel.
    pub fn picture(mut self, title: impl Into<String>, image: Canvas) -> Self {
        self.panels.push(Panel::Picture(title.into(), image));
        self
    }

    /// The figure as an SVG document.
    ///
    /// # Errors
    /// When plotters fails to draw, or a picture cannot be encoded.
    pub fn to_svg(&self) -> std::io::Result<String> {
        let rows = self.panels.len().div_ceil(self.cols).max(1);
        let size = (
            self.panel_size.0 * self.cols as u32,
            self.panel_size.1 * rows as u32,
        );
        let mut svg = String::new();
        // Where each picture goes, in pixels: plotters draws its title, the PNG goes in after.
        let mut places = Vec::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            root.fill(&WHITE).map_err(std::io::Error::other)?;
            let cells = root.split_evenly((rows, self.cols));
            for (panel, cell) in self.panels.iter().zip(&cells) {
                match panel {
                    Panel::Chart(chart) => chart.draw(cell).map_err(std::io::Error::other)?,
                    Panel::Picture(title, image) => {
                        let inner = cell
                            .titled(title, ("sans-serif", 14))
                            .map_err(std::io::Error::other)?;
                        places.push((inner.get_pixel_range(), image));
                    }
                }
            }
            root.present().map_err(std::io::Error::other)?;
        }
        let mut images = String::new();
        for ((xs, ys), image) in places {
            let pad = 4;
            images.push_str(&format!(
                "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" \
                 preserveAspectRatio=\"xMidYMid meet\" style=\"image-rendering:pixelated\" \
                 href=\"data:image/png;base64,{}\"/>\n",
                xs.start + pad,
                ys.start + pad,
                (xs.end - xs.start - 2 * pad).max(1),
                (ys.end - ys.start - 2 * pad).max(1),
                base64(&image.png_bytes()?)
            ));
        }
        let end = svg
            .rfind("</svg>")
            .ok_or_else(|| std::io::Error::other("plotters wrote no closing </svg>"))?;
        svg.insert_str(end, &images);
        Ok(svg)
    }

    /// Writes the figure as SVG, atomically.
    ///
    /// # Errors
    /// As [`Figure::to_svg`], and when the file cannot be written.
    pub fn save_svg(&self, path: &Path) -> std::io::Result<()> {
        write_atomically(path, self.to_svg()?.as_bytes())
    }
}

/// Standard base64 (RFC 4648, padded) for the PNG data URIs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A training run's curves, one panel each: the training loss (mean over windows of
/// `steps / 100` steps) above, the validation score (`val_label`, y-range `val_range`) below.
pub fn learning_curve(
    train: &[(f64, f64)],
    val: &[(f64, f64)],
    steps: usize,
    (val_label, val_range): (&str, (f64, f64)),
) -> Figure {
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
    let x = Some((0.0, steps.max(1) as f64));
    let loss = Chart::new("Training loss")
        .x_axis("step", x)
        .y_axis(format!("loss (mean of {window} steps)"), Some((0.0, top)))
        .line("", smoothed, colours::BLUE);
    let validation = Chart::new("Validation")
        .x_axis("step", x)
        .y_axis(val_label, Some(val_range))
        .line("", val.to_vec(), colours::ORANGE)
        .points("", val.to_vec(), colours::ORANGE);
    Figure::new(1, (720, 280)).chart(loss).chart(validation)
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
    fn lines_land_where_asked() {
        let mut c = Canvas::new(20, 10);
        c.line((0, 0), (19, 9), colours::RED, 1);
        assert_eq!(c.get(0, 0), colours::RED);
        assert_eq!(c.get(19, 9), colours::RED);
        assert_eq!(c.get(19, 0), colours::WHITE);
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn figures_carry_titles_axis_labels_legends_and_pictures() {
        let chart = Chart::new("Accuracy per round")
            .x_axis("round", None)
            .y_axis("accuracy", Some((0.0, 1.0)))
            .line("site 1", vec![(1.0, 0.5), (2.0, 0.7)], colours::BLUE)
            .line("", vec![(1.0, 0.4), (2.0, 0.6)], colours::GREEN);
        let svg = Figure::new(2, (400, 300))
            .chart(chart)
            .picture("query", Canvas::new(4, 4))
            .to_svg()
            .unwrap();
        // Text elements hold their text on a line of its own.
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        for text in ["Accuracy per round", "round", "accuracy", "site 1", "query"] {
            assert!(texts.contains(&text), "{text} missing");
        }
        assert_eq!(svg.matches("data:image/png;base64,").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn fitted_ranges_cover_the_data_with_a_margin() {
        let c = Chart::new("")
            .line("", vec![(0.0, 1.0), (10.0, 3.0)], colours::BLUE)
            .boxes("", vec![[(2.0, 0.0), (3.0, 5.0)]], colours::RED);
        let ((x0, x1), (y0, y1)) = c.ranges();
        assert!((x0 + 0.5).abs() < 1e-12 && (x1 - 10.5).abs() < 1e-12);
        assert!((y0 + 0.25).abs() < 1e-12 && (y1 - 5.25).abs() < 1e-12);
        let single = Chart::new("").points("", vec![(2.0, 2.0)], colours::RED);
        assert_eq!(single.ranges(), ((1.0, 3.0), (1.0, 3.0)));
    }
}
