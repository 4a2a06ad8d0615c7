//! A model's parameters as named f64 layers (Flower's `NDArrays`), the unit every strategy
//! aggregates, and a client's result for a round.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use scarce_core::Params;

use crate::{Error, Result};

/// Named layers, each a flat f64 array with its shape, in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Layer names (the `Params` names).
    pub names: Vec<String>,
    /// Layer shapes.
    pub shapes: Vec<Vec<usize>>,
    /// Row-major values of each layer.
    pub layers: Vec<Vec<f64>>,
}

/// One client's result for a round: its parameters after local training and how many
/// examples it trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientUpdate {
    /// The client's parameters (full weights, not deltas).
    pub weights: Weights,
    /// Local examples (the FedAvg weight).
    pub num_examples: u64,
}

impl Weights {
    /// The values of `params`, in its order, as f64.
    pub fn from_params(params: &Params) -> Result<Weights> {
        let mut w = Weights {
            names: Vec::with_capacity(params.len()),
            shapes: Vec::with_capacity(params.len()),
            layers: Vec::with_capacity(params.len()),
        };
        for (n, t) in params.iter() {
            w.names.push(n.to_string());
            w.shapes.push(t.dims().to_vec());
            w.layers
                .push(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?);
        }
        Ok(w)
    }

    /// Back to tensors of `dtype` on `device`.
    pub fn to_params(&self, dtype: DType, device: &Device) -> Result<Params> {
        let mut p = Params::new();
        for ((n, s), l) in self.names.iter().zip(&self.shapes).zip(&self.layers) {
            p.insert(
                n.clone(),
                Tensor::from_slice(l, s.as_slice(), device)?.to_dtype(dtype)?,
            );
        }
        Ok(p)
    }

    /// Zeros of the same layout.
    pub fn zeros_like(&self) -> Weights {
        Weights {
            names: self.names.clone(),
            shapes: self.shapes.clone(),
            layers: self.layers.iter().map(|l| vec![0.0; l.len()]).collect(),
        }
    }

    /// Total number of values.
    pub fn len(&self) -> usize {
        self.layers.iter().map(Vec::len).sum()
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All values in order, as one iterator (layers flattened and concatenated).
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.layers.iter().flatten().copied()
    }

    /// `‖self − other‖²` over all layers. An error naming the difference unless `other`
    /// has this layout (names, shapes, value counts).
    pub fn squared_distance(&self, other: &Weights) -> Result<f64> {
        self.check_layout_of(other, "other")?;
        Ok(self
            .values()
            .zip(other.values())
            .map(|(a, b)| (a - b) * (a - b))
            .sum())
    }

    /// A new set with `f(a, b)` applied to matching values. An error naming the difference
    /// unless `other` has this layout (names, shapes, value counts).
    pub fn zip_map(&self, other: &Weights, f: impl Fn(f64, f64) -> f64) -> Result<Weights> {
        self.check_layout_of(other, "other")?;
        Ok(Weights {
            names: self.names.clone(),
            shapes: self.shapes.clone(),
            layers: self
                .layers
                .iter()
                .zip(&other.layers)
                .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect())
                .collect(),
        })
    }

    /// Errors, naming `what`, unless `other` has the same names, shapes and value counts.
    fn check_layout_of(&self, other: &Weights, what: &str) -> Result<()> {
        let counts = |w: &Weights| w.layers.iter().map(Vec::len).collect::<Vec<_>>();
        if self.names != other.names || self.shapes != other.shapes || counts(self) != counts(other)
        {
            return Err(Error::config(
                what,
                format!(
                    "layout {:?} {:?} ({:?} values) differs from {:?} {:?} ({:?} values)",
                    other.names,
                    other.shapes,
                    counts(other),
                    self.names,
                    self.shapes,
                    counts(self)
                ),
            ));
        }
        Ok(())
    }

    /// Errors unless `other` has this layout (names and shapes) and finite values; `client`
    /// names it.
    pub fn check_same_layout(&self, other: &Weights, client: usize) -> Result<()> {
        if self.names != other.names {
            return Err(Error::Client {
                client,
                reason: format!(
                    "parameter names {:?} differ from the model's {:?}",
                    other.names, self.names
                ),
            });
        }
        if self.shapes != other.shapes {
            return Err(Error::Client {
                client,
                reason: format!(
                    "layer shapes {:?} differ from the model's {:?}",
                    other.shapes, self.shapes
                ),
            });
        }
        // In parallel: this pass reads every value of every client.
        if let Some(i) = other
            .layers
            .iter()
            .position(|l| l.par_iter().any(|v| !v.is_finite()))
        {
            return Err(Error::Client {
                client,
                reason: format!("layer {} (`{}`) holds NaN or infinity", i, other.names[i]),
            });
        }
        Ok(())
    }
}

/// Splits a round's results into those that fit `model` (names, shapes, finite values) and
/// the errors of those that do not, each naming its client (the index in `results`), so the
/// round can go on without them.
pub fn screen(model: &Weights, results: Vec<ClientUpdate>) -> (Vec<ClientUpdate>, Vec<Error>) {
    let (mut kept, mut rejected) = (Vec::with_capacity(results.len()), Vec::new());
    for (i, r) in results.into_iter().enumerate() {
        match model.check_same_layout(&r.weights, i) {
            Ok(()) => kept.push(r),
            Err(e) => rejected.push(e),
        }
    }
    (kept, rejected)
}

/// Checks a round's results: at least one, all of the first one's layout, finite, and a
/// positive total example count.
pub(crate) fn check_round(results: &[ClientUpdate]) -> Result<&Weights> {
    let first = &results
        .first()
        .ok_or_else(|| Error::config("results", "no client results in this round"))?
        .weights;
    for (i, r) in results.iter().enumerate() {
        first.check_same_layout(&r.weights, i)?;
    }
    if results.iter().map(|r| r.num_examples).sum::<u64>() == 0 {
        return Err(Error::config(
            "num_examples",
            "the clients report 0 examples in total",
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(names: &[&str], layers: Vec<Vec<f64>>) -> Weights {
        Weights {
            names: names.iter().map(|n| n.to_string()).collect(),
            shapes: layers.iter().map(|l| vec![l.len()]).collect(),
            layers,
        }
    }

    #[test]
    fn layout_mismatches_are_errors_not_truncations() {
        let a = w(&["x", "y"], vec![vec![1.0, 2.0], vec![3.0]]);
        let b = w(&["x", "y"], vec![vec![0.0, 0.0], vec![1.0]]);
        assert_eq!(a.squared_distance(&b).unwrap(), 1.0 + 4.0 + 4.0);
        assert_eq!(a.zip_map(&b, |p, q| p - q).unwrap().layers[1], vec![2.0]);
        // One value short, a missing layer, another name: each is refused by both.
        for other in [
            w(&["x", "y"], vec![vec![0.0], vec![1.0]]),
            w(&["x"], vec![vec![0.0, 0.0]]),
            w(&["x", "z"], vec![vec![0.0, 0.0], vec![1.0]]),
        ] {
            let e = a.squared_distance(&other).unwrap_err().to_string();
            assert!(e.contains("differs"), "{e}");
            assert!(a.zip_map(&other, |p, q| p + q).is_err());
        }
        // Shapes that agree but layers that hold fewer values than they claim.
        let mut short = b.clone();
        short.layers[0].pop();
        assert!(a.squared_distance(&short).is_err());
    }
}
