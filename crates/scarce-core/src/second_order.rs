//! The second-order guard.
//!
//! candle computes grad-of-grad only when `CANDLE_GRAD_DO_NOT_DETACH=1` is set, and reads
//! that variable once per thread, lazily, at the thread's first `backward`. Without it the
//! result is silently partial. Code that needs second order calls [`ensure`] and gets an
//! error instead of a first-order answer.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};

/// True when grad-of-grad is live on this thread: checks `d²((x²)²)/dx² = 12x² = 48` at
/// `x = 2`. The function is a chain on purpose: with grad-of-grad off, candle detaches the
/// gradient flowing between ops but not the op's own inputs, so a single op (`x³`) still
/// gives the right second derivative and would not tell (here it would give 16).
pub fn is_live() -> Result<bool> {
    let x = Var::from_tensor(&Tensor::new(2f64, &Device::Cpu)?)?;
    let y = x.as_tensor().sqr()?.sqr()?;
    let Some(g) = y.backward()?.get(x.as_tensor()).cloned() else {
        return Ok(false);
    };
    let gg = g
        .backward()?
        .get(x.as_tensor())
        .map(|t| t.to_dtype(DType::F64)?.to_scalar::<f64>())
        .transpose()?;
    Ok(matches!(gg, Some(v) if (v - 48.0).abs() < 1e-9))
}

thread_local! {
    /// Set once [`ensure`] has seen grad-of-grad live on this thread; candle never changes
    /// its per-thread setting after the first backward, so a success holds for good.
    static LIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `Ok(())` when second-order gradients are live on this thread, else an error that says
/// how to turn them on. A success is remembered per thread, so hot loops may call it.
pub fn ensure() -> Result<()> {
    if LIVE.with(std::cell::Cell::get) || is_live()? {
        LIVE.with(|c| c.set(true));
        return Ok(());
    }
    let set = std::env::var("CANDLE_GRAD_DO_NOT_DETACH").unwrap_or_default();
    Err(Error::SecondOrderOff(format!(
        "CANDLE_GRAD_DO_NOT_DETACH is {:?} for this thread; set CANDLE_GRAD_DO_NOT_DETACH=1 in the \
         environment before the process starts (candle reads it once per thread, at that thread's \
         first backward), or call scarce_core::second_order::enable() at the top of main",
        set
    )))
}

/// Sets `CANDLE_GRAD_DO_NOT_DETACH=1` for threads that have not yet run a backward, then
/// checks this thread with [`ensure`]. Call it first thing in `main`, before other threads
/// start (changing the environment while other threads read it is a data race on some
/// platforms).
pub fn enable() -> Result<()> {
    if std::env::var("CANDLE_GRAD_DO_NOT_DETACH").as_deref() != Ok("1") {
        std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    }
    ensure()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fresh_thread_reports_what_candle_does() {
        // A fresh thread reads the variable at its first backward: live exactly when it is
        // "1", and when off the error says how to turn it on.
        let live_env = std::env::var("CANDLE_GRAD_DO_NOT_DETACH").as_deref() == Ok("1");
        let (live, err) = std::thread::spawn(|| {
            (
                super::is_live().unwrap(),
                super::ensure().err().map(|e| e.to_string()),
            )
        })
        .join()
        .unwrap();
        assert_eq!(live, live_env);
        if !live {
            assert!(err.unwrap().contains("CANDLE_GRAD_DO_NOT_DETACH=1"));
        }
    }
}
