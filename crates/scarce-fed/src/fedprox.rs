//! FedProx (Li et al. 2020) lives on the client: its local loss gets the proximal term
//! `μ/2 ‖w − w_global‖²`, which keeps a site with skewed data from drifting far from the
//! global model within a round. The server side is plain FedAvg.

use candle_core::Tensor;
use scarce_core::Params;

use crate::{Error, Result};

/// `μ/2 ‖params − global‖²` over all tensors, a scalar differentiable in `params` (its
/// gradient is `μ (params − global)`). `global` is treated as a constant.
pub fn proximal_term(params: &Params, global: &Params, mu: f64) -> Result<Tensor> {
    if !(mu.is_finite() && mu >= 0.0) {
        return Err(Error::config(
            "mu",
            format!("{mu}: must be finite and non-negative"),
        ));
    }
    let d = params.axpy(-1.0, &global.detach())?;
    Ok((d.dot(&d)? * (mu / 2.0))?)
}
