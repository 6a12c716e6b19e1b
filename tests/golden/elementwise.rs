//! elementwise.json: `torch.add/sub/mul/div(a, b)` with NumPy broadcasting.

use super::case::{Case, Outputs, Result};
use super::graph::binary;
use super::registry::OpFn;

pub const OPS: &[(&str, OpFn)] = &[("add", add), ("sub", sub), ("mul", mul), ("div", div)];

fn add(case: &Case) -> Result<Outputs> {
    binary(case, |a, b| a.add(b))
}

fn sub(case: &Case) -> Result<Outputs> {
    binary(case, |a, b| a.sub(b))
}

fn mul(case: &Case) -> Result<Outputs> {
    binary(case, |a, b| a.mul(b))
}

fn div(case: &Case) -> Result<Outputs> {
    binary(case, |a, b| a.div(b))
}
