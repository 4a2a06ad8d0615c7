//! Exponential moving averages of weights (BYOL's and DINO's teachers, Mean Teacher) and the
//! cosine schedule of their momentum.

use scarce_core::{Params, Result};

/// `teacher ← m · teacher + (1 − m) · student` for every learnt tensor (lightly's
/// `update_momentum`). Batch-norm running statistics are not learnt tensors: they live in a
/// model's buffers and are not averaged. Names must match.
pub fn update_momentum(teacher: &Params, student: &Params, m: f64) -> Result<Params> {
    teacher.zip(student, |_, t, s| Ok(((t * m)? + (s * (1.0 - m))?)?))
}

/// lightly's `cosine_schedule`: from `start` at step 0 to `end` at step `max_steps − 1`
/// along a half cosine (or, with `period`, a full cosine of that period, repeating).
pub fn cosine_schedule(
    step: usize,
    max_steps: usize,
    start: f64,
    end: f64,
    period: Option<f64>,
) -> f64 {
    let s = step as f64;
    if let Some(period) = period {
        end - (end - start) * ((2.0 * std::f64::consts::PI * s / period).cos() + 1.0) / 2.0
    } else if max_steps <= 1 || step + 1 >= max_steps {
        end
    } else {
        end - (end - start) * ((std::f64::consts::PI * s / (max_steps - 1) as f64).cos() + 1.0)
            / 2.0
    }
}
