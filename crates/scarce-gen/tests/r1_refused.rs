//! The R1 penalty needs second-order gradients: without CANDLE_GRAD_DO_NOT_DETACH=1 a GAN
//! with `r1_gamma > 0` is refused with an error that says how to turn them on, instead of
//! training on a silently partial gradient. (Own test binary: the variable is removed before
//! any thread's first backward.)

use scarce_gen::{Gan, GanConfig};

#[test]
fn r1_without_second_order_is_refused() {
    std::env::remove_var("CANDLE_GRAD_DO_NOT_DETACH");
    let e = std::thread::spawn(|| {
        Gan::new(GanConfig {
            r1_gamma: 1.0,
            ..Default::default()
        })
        .map(|_| ())
    })
    .join()
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(e.contains("CANDLE_GRAD_DO_NOT_DETACH"), "{e}");
    // Without R1 the same GAN is fine.
    assert!(Gan::new(GanConfig::default()).is_ok());
}
