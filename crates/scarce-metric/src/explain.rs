//! Explanations a user can look at: for one query, its squared distance to every class
//! prototype and its nearest support examples, and a PNG panel of them (the query, a bar
//! per class — the predicted one red — with the distance written above, and the nearest
//! support images with their class number below).

use std::path::Path;

use candle_core::{DType, Tensor};
use scarce_core::{Error, Result};
use scarce_eval::plot::{colours, Canvas};

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

/// Draws `explanation` as a PNG: `query` and `support` images are single-channel `h × w`
/// values in `[0, 1]` (`support[i]` for support index `i`), `labels` the support labels.
pub fn explanation_png(
    path: &Path,
    explanation: &Explanation,
    query: &[f32],
    support: &[&[f32]],
    labels: &[u32],
    (h, w): (usize, usize),
) -> Result<()> {
    let scale = 4i64;
    let (ih, iw) = (h as i64 * scale, w as i64 * scale);
    let n = explanation.class_distances.len() as i64;
    let bar_w = 28i64;
    let chart_w = n * (bar_w + 8) + 16;
    let k = explanation.nearest.len() as i64;
    let width = 20 + iw + 20 + chart_w + 20 + k * (iw + 10) + 10;
    let height = ih + 80;
    let mut c = Canvas::new(width as usize, height as usize);
    c.grey_image(20, 40, query, h, w, scale);
    // Bars: height proportional to distance, tallest = ih.
    let max = explanation
        .class_distances
        .iter()
        .cloned()
        .fold(0.0, f64::max)
        .max(1e-12);
    let x0 = 20 + iw + 20;
    for (i, &d) in explanation.class_distances.iter().enumerate() {
        let x = x0 + i as i64 * (bar_w + 8);
        let top = 40 + ih - (d / max * ih as f64).round() as i64;
        let colour = if i == explanation.predicted {
            colours::RED
        } else {
            colours::BLUE
        };
        c.rect(x, top, x + bar_w, 40 + ih, colour);
        c.text(x, top - 12, &format!("{d:.1}"), 1, colours::BLACK);
        c.text(
            x + bar_w / 2 - 3,
            40 + ih + 6,
            &i.to_string(),
            2,
            colours::BLACK,
        );
    }
    let x1 = x0 + chart_w + 20;
    for (j, &(s, _)) in explanation.nearest.iter().enumerate() {
        let img = support
            .get(s)
            .ok_or_else(|| Error::param("support", format!("no image for support example {s}")))?;
        let x = x1 + j as i64 * (iw + 10);
        c.grey_image(x, 40, img, h, w, scale);
        c.text(
            x + iw / 2 - 3,
            40 + ih + 6,
            &labels[s].to_string(),
            2,
            colours::BLACK,
        );
    }
    c.save_png(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
