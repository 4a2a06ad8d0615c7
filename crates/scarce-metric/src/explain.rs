//! Explanations a user can look at: for one query, its squared distance to every class
//! prototype and its nearest support examples, and an SVG panel of them (the query, a bar
//! per class — the predicted one red — with the distance written above, and the nearest
//! support images titled with their class).

use std::path::Path;

use candle_core::{DType, Tensor};
use scarce_core::{Error, Result};
use scarce_eval::plot::{colours, Canvas, Chart, Figure};

use crate::classifier::{check_episode, prototypes, squared_distances};

/// Why a query got its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Squared distance to each class prototype.
    pub class_distances: Vec<f64>,
    /// The class with the smallest distance.
    pub predicted: usize,
    /// The nearest support examples: (support index, squared distance), nearest first.
    pub nearest: Vec<(usize, f64)>,
}

/// Explains one query embedding `[d]` against support embeddings `[n, d]` with labels.
pub fn explain(
    query: &Tensor,
    support: &Tensor,
    labels: &[u32],
    n_way: usize,
    k_nearest: usize,
) -> Result<Explanation> {
    let q = query.reshape((1, ()))?;
    check_episode(support, labels, n_way, &q)?;
    let protos = prototypes(support, labels, n_way)?;
    let to_vec = |t: Tensor| -> Result<Vec<f64>> {
        Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
    };
    let class_distances = to_vec(squared_distances(&q, &protos)?)?;
    let support_distances = to_vec(squared_distances(&q, support)?)?;
    let predicted = (0..n_way)
        .min_by(|&a, &b| class_distances[a].total_cmp(&class_distances[b]))
        .unwrap_or(0);
    let mut order: Vec<usize> = (0..support_distances.len()).collect();
    order.sort_by(|&a, &b| support_distances[a].total_cmp(&support_distances[b]));
    let nearest = order
        .into_iter()
        .take(k_nearest)
        .map(|i| (i, support_distances[i]))
        .collect();
    Ok(Explanation {
        class_distances,
        predicted,
        nearest,
    })
}

/// Draws `explanation` as an SVG figure: the query, a bar chart of its squared distance to
/// each class prototype (the predicted class red, each distance written above its bar), and
/// the nearest support images titled with their class and distance. `query` and `support`
/// images are single-channel `h × w` values in `[0, 1]` (`support[i]` for support index
/// `i`), `labels` the support labels.
///
/// # Errors
/// When an image is missing or has not `h × w` values, or the file cannot be written.
pub fn explanation_svg(
    path: &Path,
    explanation: &Explanation,
    query: &[f32],
    support: &[&[f32]],
    labels: &[u32],
    (h, w): (usize, usize),
) -> Result<()> {
    let picture = |what: &str, img: &[f32]| -> Result<Canvas> {
        if img.len() != h * w {
            return Err(Error::param(
                what,
                format!("{} values for a {h} × {w} image", img.len()),
            ));
        }
        let mut c = Canvas::new(w, h);
        c.grey_image(0, 0, img, h, w, 1);
        Ok(c)
    };
    let bar = |i: usize, d: f64| [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, d)];
    let (mut others, mut predicted) = (Vec::new(), Vec::new());
    for (i, &d) in explanation.class_distances.iter().enumerate() {
        if i == explanation.predicted {
            predicted.push(bar(i, d));
        } else {
            others.push(bar(i, d));
        }
    }
    let top = explanation
        .class_distances
        .iter()
        .cloned()
        .fold(0.0, f64::max)
        .max(1e-12);
    let values = explanation
        .class_distances
        .iter()
        .enumerate()
        .map(|(i, &d)| (i as f64 - 0.3, d + 0.06 * top, format!("{d:.1}")))
        .collect();
    let n = explanation.class_distances.len() as f64;
    let chart = Chart::new("Squared distance to each class prototype")
        .x_axis("class", Some((-0.6, n - 0.4)))
        .y_axis("squared distance", Some((0.0, 1.15 * top)))
        .boxes("predicted", predicted, colours::RED)
        .boxes("other classes", others, colours::BLUE)
        .labels(values);
    let mut figure = Figure::new(2 + explanation.nearest.len(), (260, 260))
        .picture(
            format!("query → class {}", explanation.predicted),
            picture("query", query)?,
        )
        .chart(chart);
    for &(s, d) in &explanation.nearest {
        let img = support
            .get(s)
            .ok_or_else(|| Error::param("support", format!("no image for support example {s}")))?;
        let label = labels
            .get(s)
            .ok_or_else(|| Error::param("labels", format!("no label for support example {s}")))?;
        figure = figure.picture(
            format!("support {s}: class {label}, d = {d:.1}"),
            picture("support", img)?,
        );
    }
    figure.save_svg(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_panel_shows_the_query_the_distances_and_the_nearest_support_images() {
        let dev = Device::Cpu;
        let support = Tensor::new(&[[0f32, 0.0], [0.0, 2.0], [6.0, 0.0]], &dev).unwrap();
        let query = Tensor::new(&[0f32, 1.0], &dev).unwrap();
        let why = explain(&query, &support, &[0, 0, 1], 2, 2).unwrap();
        // Prototypes (0, 1) and (6, 0): squared distances 0 and 37.
        assert_eq!(why.class_distances, vec![0.0, 37.0]);
        assert_eq!(why.predicted, 0);
        let images = [[0.0f32; 4], [0.5; 4], [1.0; 4]];
        let refs: Vec<&[f32]> = images.iter().map(|i| &i[..]).collect();
        let dir = std::env::temp_dir().join(format!("scarce-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("explanation.svg");
        explanation_svg(&path, &why, &[0.2; 4], &refs, &[0, 0, 1], (2, 2)).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        // The query and the two nearest support images, as pictures; the distances as text.
        assert_eq!(svg.matches("data:image/png;base64,").count(), 3);
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        for t in [
            "0.0",
            "37.0",
            "query → class 0",
            "support 0: class 0, d = 1.0",
        ] {
            assert!(texts.contains(&t), "{t} missing");
        }
        // A wrongly sized image is refused, naming it, and nothing is written.
        let bad = explanation_svg(
            &dir.join("bad.svg"),
            &why,
            &[0.2; 3],
            &refs,
            &[0, 0, 1],
            (2, 2),
        );
        assert!(bad.unwrap_err().to_string().contains("query"));
        assert!(!dir.join("bad.svg").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
