//! local_response_norm.json: `F.local_response_norm(x, size, alpha, beta, k)` (alpha divided by
//! `size`, as PyTorch). Input `x` `[N, C, H, W]`; params `size`, `alpha`, `beta`, `k`. Grad for x.

use super::case::{Case, Outputs, Result};
use super::registry::{not_implemented, OpFn};

pub const OPS: &[(&str, OpFn)] = &[("local_response_norm", local_response_norm)];

fn local_response_norm(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("local_response_norm"))
}
