//! The sinusoid regression family of the MAML paper (Finn et al. 2017, §5.1):
//! `y = A sin(x − φ)` with `A ~ U[0.1, 5]`, `φ ~ U[0, π]`, `x ~ U[−5, 5]`.

use candle_core::{DType, Device, Tensor};
use scarce_core::Stream;

use crate::task::{Task, TaskSource};
use crate::{Error, Result};

/// A task family: task `index` is a pure function of the seed and the index.
#[derive(Debug, Clone)]
pub struct Sinusoid {
    /// Support points per task (K).
    pub k_shot: usize,
    /// Query points per task.
    pub k_query: usize,
    seed: u64,
    dtype: DType,
    device: Device,
}

/// One sinusoid's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wave {
    /// Amplitude `A`.
    pub amplitude: f64,
    /// Phase `φ`.
    pub phase: f64,
}

impl Wave {
    /// `A sin(x − φ)`.
    pub fn at(&self, x: f64) -> f64 {
        self.amplitude * (x - self.phase).sin()
    }
}

impl Sinusoid {
    /// Tasks with `k_shot` support and `k_query` query points, drawn from `seed`, as f32
    /// tensors on the CPU (see [`Sinusoid::on`]).
    pub fn new(k_shot: usize, k_query: usize, seed: u64) -> Result<Self> {
        if k_shot == 0 || k_query == 0 {
            return Err(Error::config(
                "k_shot, k_query",
                "a sinusoid task needs at least one support and one query point",
            ));
        }
        Ok(Sinusoid {
            k_shot,
            k_query,
            seed,
            dtype: DType::F32,
            device: Device::Cpu,
        })
    }

    /// The same family with tensors of `dtype` on `device`.
    pub fn on(mut self, dtype: DType, device: &Device) -> Self {
        self.dtype = dtype;
        self.device = device.clone();
        self
    }

    /// The wave of task `index`.
    pub fn wave(&self, index: u64) -> Wave {
        let r = Stream::new(self.seed, "sinusoid").at(index);
        Wave {
            amplitude: 0.1 + 4.9 * r.child("amplitude").uniform(0),
            phase: std::f64::consts::PI * r.child("phase").uniform(0),
        }
    }

    /// Task `index` as `[K, 1]` tensors.
    pub fn task(&self, index: u64) -> Result<Task> {
        let (dtype, device) = (self.dtype, &self.device);
        let wave = self.wave(index);
        let r = Stream::new(self.seed, "sinusoid").at(index);
        let points = |name: &str, n: usize| -> Result<(Tensor, Tensor)> {
            let x = r.child(name).uniform_vec(n, -5.0, 5.0);
            let y: Vec<f64> = x.iter().map(|&x| wave.at(x)).collect();
            Ok((
                Tensor::from_vec(x, (n, 1), device)?.to_dtype(dtype)?,
                Tensor::from_vec(y, (n, 1), device)?.to_dtype(dtype)?,
            ))
        };
        let (support_x, support_y) = points("support", self.k_shot)?;
        let (query_x, query_y) = points("query", self.k_query)?;
        Ok(Task {
            support_x,
            support_y,
            query_x,
            query_y,
        })
    }
}

impl TaskSource for Sinusoid {
    fn task(&self, index: u64) -> Result<Task> {
        Sinusoid::task(self, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_follow_the_papers_ranges_and_repeat() {
        let s = Sinusoid::new(10, 10, 7)
            .unwrap()
            .on(DType::F64, &Device::Cpu);
        for i in 0..200 {
            let w = s.wave(i);
            assert!((0.1..=5.0).contains(&w.amplitude));
            assert!((0.0..=std::f64::consts::PI).contains(&w.phase));
            let t = s.task(i).unwrap();
            let x = t.support_x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let y = t.support_y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (x, y) in x.iter().zip(&y) {
                assert!((-5.0..=5.0).contains(x));
                assert_eq!(*y, w.at(*x));
            }
        }
        let a = s.task(3).unwrap();
        let b = s.task(3).unwrap();
        assert_eq!(
            a.query_x.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            b.query_x.flatten_all().unwrap().to_vec1::<f64>().unwrap()
        );
        assert!(Sinusoid::new(0, 10, 0).is_err());
    }
}
