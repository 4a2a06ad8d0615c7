//! DINO's self-distillation loss with its centre (Caron et al. 2021; lightly's `DINOLoss`).

use candle_core::Tensor;
use scarce_core::{ops, Error, Result};

/// DINO's settings (lightly's names and defaults for a 65 536-dimensional head; pick
/// `output_dim` to match the head).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DinoConfig {
    /// Width of the head's output.
    pub output_dim: usize,
    /// Teacher temperature at epoch 0 of the warm-up.
    pub warmup_teacher_temp: f64,
    /// Teacher temperature after the warm-up.
    pub teacher_temp: f64,
    /// Epochs of linear warm-up of the teacher temperature (0 = none).
    pub warmup_teacher_temp_epochs: usize,
    /// Student temperature.
    pub student_temp: f64,
    /// Momentum of the centre's running average.
    pub center_momentum: f64,
}

impl Default for DinoConfig {
    fn default() -> Self {
        DinoConfig {
            output_dim: 65536,
            warmup_teacher_temp: 0.04,
            teacher_temp: 0.04,
            warmup_teacher_temp_epochs: 30,
            student_temp: 0.1,
            center_momentum: 0.9,
        }
    }
}

/// The DINO loss and its centre, which carries from one call to the next.
#[derive(Debug, Clone)]
pub struct Dino {
    /// The settings.
    pub config: DinoConfig,
    /// The running centre of the teacher outputs, `[output_dim]` (zeros at the start).
    pub center: Tensor,
}

impl Dino {
    /// A loss with a zero centre of `like`'s dtype and device.
    pub fn new(config: DinoConfig, like: &Tensor) -> Result<Self> {
        for (name, t) in [
            ("teacher_temp", config.teacher_temp),
            ("warmup_teacher_temp", config.warmup_teacher_temp),
            ("student_temp", config.student_temp),
        ] {
            if t.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(Error::param(name, "must be > 0"));
            }
        }
        if !(0.0..=1.0).contains(&config.center_momentum) {
            return Err(Error::param("center_momentum", "must be in [0, 1]"));
        }
        let center = Tensor::zeros(config.output_dim, like.dtype(), like.device())?;
        Ok(Dino { config, center })
    }

    /// The teacher temperature at `epoch`: `linspace(warmup, teacher, warmup_epochs)[epoch]`
    /// during the warm-up, `teacher_temp` after.
    pub fn teacher_temp(&self, epoch: usize) -> f64 {
        let c = &self.config;
        let n = c.warmup_teacher_temp_epochs;
        if epoch < n {
            if n == 1 {
                return c.warmup_teacher_temp;
            }
            c.warmup_teacher_temp
                + (c.teacher_temp - c.warmup_teacher_temp) * epoch as f64 / (n - 1) as f64
        } else {
            c.teacher_temp
        }
    }

    /// The loss of `student` (`[n_student_views, B, D]`: the global views first, in the
    /// teacher's order, then the local views) against `teacher` (`[n_teacher_views, B, D]`,
    /// detached), skipping the pairs of the same view; then the centre moves towards the
    /// mean teacher output.
    pub fn loss(&mut self, teacher: &Tensor, student: &Tensor, epoch: usize) -> Result<Tensor> {
        let (nt, b, d) = teacher
            .dims3()
            .map_err(|_| Error::shape("teacher", "[views, B, D]", teacher.dims()))?;
        let (ns, bs, ds) = student
            .dims3()
            .map_err(|_| Error::shape("student", "[views, B, D]", student.dims()))?;
        if bs != b || ds != d || d != self.config.output_dim {
            return Err(Error::shape(
                "student",
                format!("[views, {b}, {}]", self.config.output_dim),
                student.dims(),
            ));
        }
        let n_terms = nt * ns - nt.min(ns);
        if n_terms == 0 {
            return Err(Error::param(
                "student",
                "no pair of different views to compare",
            ));
        }
        let teacher = teacher.detach();
        let t = ops::softmax(
            &(teacher.broadcast_sub(&self.center)? / self.teacher_temp(epoch))?,
            2,
        )?;
        let s = ops::log_softmax(&(student / self.config.student_temp)?, 2)?;
        let mut total: Option<Tensor> = None;
        for ti in 0..nt {
            for si in 0..ns {
                if ti == si {
                    continue;
                }
                let term = (t.get(ti)? * s.get(si)?)?.sum_all()?;
                total = Some(match total {
                    None => term,
                    Some(acc) => (acc + term)?,
                });
            }
        }
        let loss = total
            .ok_or_else(|| Error::param("student", "no pair of different views to compare"))?
            .affine(-1.0 / (n_terms * b) as f64, 0.0)?;
        let batch_center = teacher.reshape((nt * b, d))?.mean(0)?;
        let m = self.config.center_momentum;
        self.center = ((&self.center * m)? + (batch_center * (1.0 - m))?)?;
        Ok(loss)
    }
}
