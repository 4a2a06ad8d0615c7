//! `Params`: the ordered name → tensor map that every learner shares.
//!
//! MAML adapts it functionally (`p - lr * g` as new tensors), federated aggregation flattens
//! it to one vector, optimisers update it, checkpoints save it. Order is insertion order, so
//! a model's parameters keep the order its layers were declared in (PyTorch's `state_dict`
//! order for the backbones here).

use crate::{Error, Result};
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use std::collections::HashMap;

/// An ordered map from parameter name to tensor.
#[derive(Debug, Clone, Default)]
pub struct Params {
    names: Vec<String>,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl Params {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces `name`. A new name goes last; a replaced one keeps its place.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.tensors[i] = t,
            None => {
                self.index.insert(name.clone(), self.names.len());
                self.names.push(name);
                self.tensors.push(t);
            }
        }
    }

    /// The tensor called `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor called `name`, or [`Error::Missing`] naming it.
    pub fn require(&self, name: &str) -> Result<&Tensor> {
        self.get(name).ok_or_else(|| Error::Missing {
            name: name.into(),
            what: "params".into(),
        })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Total number of scalar elements.
    pub fn elem_count(&self) -> usize {
        self.tensors.iter().map(|t| t.elem_count()).sum()
    }

    /// Names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Tensors in order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// `(name, tensor)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.tensors.iter())
    }

    /// Inserts every tensor of `other` under `prefix` + its name (several sets in one file or
    /// one optimiser: `backbone.*`, `head.*`, …).
    pub fn insert_prefixed(&mut self, prefix: &str, other: &Params) {
        for (n, t) in other.iter() {
            self.insert(format!("{prefix}{n}"), t.clone());
        }
    }

    /// The tensors whose names start with `prefix`, with the prefix removed (the inverse of
    /// [`Params::insert_prefixed`]).
    pub fn strip_prefix(&self, prefix: &str) -> Params {
        self.iter()
            .filter_map(|(n, t)| n.strip_prefix(prefix).map(|s| (s.to_string(), t.clone())))
            .collect()
    }

    /// A new map with `f` applied to every tensor.
    pub fn map(&self, mut f: impl FnMut(&str, &Tensor) -> Result<Tensor>) -> Result<Params> {
        let mut out = Params::new();
        for (n, t) in self.iter() {
            out.insert(n, f(n, t)?);
        }
        Ok(out)
    }

    /// A new map with `f` applied to matching pairs; `other` must have the same names.
    pub fn zip(
        &self,
        other: &Params,
        mut f: impl FnMut(&str, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Params> {
        self.check_same_names(other)?;
        self.map(|n, a| f(n, a, other.require(n)?))
    }

    fn check_same_names(&self, other: &Params) -> Result<()> {
        if self.len() != other.len() {
            return Err(Error::param(
                "other",
                format!("has {} tensors, expected {}", other.len(), self.len()),
            ));
        }
        for n in &self.names {
            other.require(n)?;
        }
        Ok(())
    }

    /// `self + alpha * other`, as new tensors (differentiable in both).
    pub fn axpy(&self, alpha: f64, other: &Params) -> Result<Params> {
        self.zip(other, |_, a, b| Ok((a + (b * alpha)?)?))
    }

    /// `alpha * self`.
    pub fn scale(&self, alpha: f64) -> Result<Params> {
        self.map(|_, t| Ok((t * alpha)?))
    }

    /// The inner product `Σ ⟨self_i, other_i⟩` as a scalar tensor (differentiable).
    pub fn dot(&self, other: &Params) -> Result<Tensor> {
        self.check_same_names(other)?;
        let mut acc: Option<Tensor> = None;
        for (n, a) in self.iter() {
            let d = (a * other.require(n)?)?.sum_all()?;
            acc = Some(match acc {
                None => d,
                Some(s) => (s + d)?,
            });
        }
        acc.ok_or_else(|| Error::param("params", "dot product of an empty Params"))
    }

    /// The L2 norm of all tensors together, as a scalar tensor.
    pub fn l2_norm(&self) -> Result<Tensor> {
        Ok(self.dot(self)?.sqrt()?)
    }

    /// The same values cut off from the autodiff graph.
    pub fn detach(&self) -> Params {
        Params {
            names: self.names.clone(),
            tensors: self.tensors.iter().map(Tensor::detach).collect(),
            index: self.index.clone(),
        }
    }

    /// Copies every tensor into a fresh candle `Var`, so that `backward` reports gradients for
    /// them. Use this on the leaves you differentiate with respect to.
    pub fn to_vars(&self) -> Result<Params> {
        self.map(|_, t| Ok(Var::from_tensor(&t.detach())?.as_tensor().clone()))
    }

    /// Gradients from a `backward` pass, by name. A parameter the loss did not reach gets a
    /// zero gradient.
    pub fn grads(&self, store: &GradStore) -> Result<Params> {
        self.map(|_, t| match store.get(t) {
            Some(g) => Ok(g.clone()),
            None => Ok(t.zeros_like()?),
        })
    }

    /// Converts every tensor to `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Params> {
        self.map(|_, t| Ok(t.to_dtype(dtype)?))
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Params> {
        self.map(|_, t| Ok(t.to_device(device)?))
    }

    /// All tensors flattened and concatenated in order into one vector (differentiable).
    pub fn flatten(&self) -> Result<Tensor> {
        let parts = self
            .tensors
            .iter()
            .map(|t| t.flatten_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Err(Error::param("params", "cannot flatten an empty Params"));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// The inverse of [`Params::flatten`]: splits `flat` into tensors with this map's names
    /// and shapes.
    pub fn unflatten(&self, flat: &Tensor) -> Result<Params> {
        let n = self.elem_count();
        if flat.dims() != [n] {
            return Err(Error::shape("flat", format!("[{n}]"), flat.dims()));
        }
        let mut offset = 0;
        self.map(|_, t| {
            let len = t.elem_count();
            let part = flat.narrow(0, offset, len)?.reshape(t.shape())?;
            offset += len;
            Ok(part)
        })
    }

    /// Copies into a candle-nn `VarMap` (names kept), for code written against `VarBuilder`.
    pub fn to_varmap(&self) -> Result<candle_nn::VarMap> {
        let vm = candle_nn::VarMap::new();
        {
            let mut data = vm
                .data()
                .lock()
                .map_err(|_| Error::param("varmap", "lock poisoned"))?;
            for (n, t) in self.iter() {
                data.insert(n.to_string(), Var::from_tensor(t)?);
            }
        }
        Ok(vm)
    }

    /// Reads a candle-nn `VarMap`, in name order (a `VarMap` has no order of its own). The
    /// tensors are the map's variables themselves, so gradients reach them.
    pub fn from_varmap(vm: &candle_nn::VarMap) -> Result<Params> {
        let data = vm
            .data()
            .lock()
            .map_err(|_| Error::param("varmap", "lock poisoned"))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut p = Params::new();
        for n in names {
            p.insert(n.clone(), data[n].as_tensor().clone());
        }
        Ok(p)
    }
}

impl FromIterator<(String, Tensor)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        let mut p = Params::new();
        for (n, t) in iter {
            p.insert(n, t);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Params {
        let d = Device::Cpu;
        let mut p = Params::new();
        p.insert(
            "b.weight",
            Tensor::new(&[[1f64, 2.], [3., 4.]], &d).unwrap(),
        );
        p.insert("a.bias", Tensor::new(&[5f64, 6.], &d).unwrap());
        p
    }

    #[test]
    fn order_arithmetic_and_flatten() {
        let p = sample();
        assert_eq!(p.names(), ["b.weight", "a.bias"]);
        let flat = p.flatten().unwrap();
        assert_eq!(flat.to_vec1::<f64>().unwrap(), [1., 2., 3., 4., 5., 6.]);
        let back = p.unflatten(&(flat * 2.).unwrap()).unwrap();
        assert_eq!(
            back.require("a.bias").unwrap().to_vec1::<f64>().unwrap(),
            [10., 12.]
        );
        assert_eq!(back.require("b.weight").unwrap().dims(), [2, 2]);
        let q = p.axpy(-0.5, &back).unwrap();
        assert_eq!(q.flatten().unwrap().to_vec1::<f64>().unwrap(), [0.; 6]);
        // 1+4+9+16+25+36 = 91
        assert_eq!(p.dot(&p).unwrap().to_scalar::<f64>().unwrap(), 91.0);
        assert!((p.l2_norm().unwrap().to_scalar::<f64>().unwrap() - 91f64.sqrt()).abs() < 1e-15);
        assert!(p
            .unflatten(&Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap())
            .is_err());
    }

    #[test]
    fn grads_and_varmap_roundtrip() {
        let p = sample().to_vars().unwrap();
        let loss = p
            .require("b.weight")
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let g = p.grads(&loss.backward().unwrap()).unwrap();
        assert_eq!(
            g.require("b.weight").unwrap().to_vec2::<f64>().unwrap(),
            [[2., 4.], [6., 8.]]
        );
        assert_eq!(
            g.require("a.bias").unwrap().to_vec1::<f64>().unwrap(),
            [0., 0.]
        );
        let vm = p.to_varmap().unwrap();
        let back = Params::from_varmap(&vm).unwrap();
        assert_eq!(back.names(), ["a.bias", "b.weight"]);
    }
}
