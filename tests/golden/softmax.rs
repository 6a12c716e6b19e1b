//! softmax.json: `F.softmax(x, dim)` and `F.log_softmax(x, dim)`.

use super::case::{Case, Outputs, Result};
use super::graph::unary;
use super::registry::OpFn;

pub const OPS: &[(&str, OpFn)] = &[("softmax", softmax), ("log_softmax", log_softmax)];

fn softmax(case: &Case) -> Result<Outputs> {
    let dim = case.param_isize("dim")?;
    unary(case, |x| Ok(x.softmax(dim)?))
}

fn log_softmax(case: &Case) -> Result<Outputs> {
    let dim = case.param_isize("dim")?;
    unary(case, |x| Ok(x.log_softmax(dim)?))
}
