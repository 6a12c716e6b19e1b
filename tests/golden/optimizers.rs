//! optimizers.json (the Steps layout): starting from `initial_param`, apply `grads[t]` with one
//! optimiser step each and return the parameter after every step as `steps[t]`
//! (`case.tensor("initial_param")`, `case.tensor_list("grads")`).
//!
//! Ops and params: `sgd` (lr, momentum, weight_decay, nesterov), `rmsprop` (lr, alpha, eps,
//! momentum), `adam` and `adamw` (lr, betas, eps, weight_decay). Update rules: the golden
//! README.

use super::case::{Case, Outputs, Result};
use super::registry::{not_implemented, OpFn};

pub const OPS: &[(&str, OpFn)] = &[
    ("sgd", sgd),
    ("rmsprop", rmsprop),
    ("adam", adam),
    ("adamw", adamw),
];

fn sgd(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("sgd"))
}

fn rmsprop(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("rmsprop"))
}

fn adam(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("adam"))
}

fn adamw(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("adamw"))
}
