//! activations.json: `torch.sigmoid`, `torch.tanh`, `F.relu`, `F.leaky_relu(x, negative_slope)`,
//! `F.silu` (swish) and `F.elu(x, alpha)`, each of one input `x`.

use super::case::{Case, Outputs, Result};
use super::graph::unary;
use super::registry::OpFn;

pub const OPS: &[(&str, OpFn)] = &[
    ("sigmoid", sigmoid),
    ("tanh", tanh),
    ("relu", relu),
    ("leaky_relu", leaky_relu),
    ("silu", silu),
    ("elu", elu),
];

fn sigmoid(case: &Case) -> Result<Outputs> {
    unary(case, |x| Ok(x.sigmoid()))
}

fn tanh(case: &Case) -> Result<Outputs> {
    unary(case, |x| Ok(x.tanh()))
}

fn relu(case: &Case) -> Result<Outputs> {
    unary(case, |x| Ok(x.relu()))
}

fn leaky_relu(case: &Case) -> Result<Outputs> {
    let slope = case.param_f32_or("negative_slope", 0.01)?;
    unary(case, |x| Ok(x.leaky_relu(slope)))
}

fn silu(case: &Case) -> Result<Outputs> {
    unary(case, |x| Ok(x.swish()))
}

fn elu(case: &Case) -> Result<Outputs> {
    let alpha = case.param_f32_or("alpha", 1.0)?;
    unary(case, |x| Ok(x.elu(alpha)))
}
