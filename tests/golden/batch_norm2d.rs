//! batch_norm2d.json: `F.batch_norm(x, running_mean, running_var, weight, bias, training,
//! momentum, eps)`.
//!
//! Inputs `x` `[N, C, H, W]`, `weight` and `bias` `[C]` (absent with `affine: false`),
//! `running_mean` and `running_var` `[C]` (constants: `Graph` records inputs without an entry in
//! `grads` as such); params `training`, `momentum`, `eps`, `affine`. Grads for x, weight, bias;
//! in training, extra outputs `running_mean` and `running_var` after the update.

use super::case::{Case, Outputs, Result};
use super::registry::{not_implemented, OpFn};

pub const OPS: &[(&str, OpFn)] = &[("batch_norm2d", batch_norm2d)];

fn batch_norm2d(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("batch_norm2d"))
}
