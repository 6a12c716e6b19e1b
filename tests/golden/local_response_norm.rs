//! local_response_norm.json: `F.local_response_norm(x, size, alpha, beta, k)`.

use super::case::{Case, Outputs, Result};
use super::graph::unary;
use super::registry::OpFn;

pub const OPS: &[(&str, OpFn)] = &[("local_response_norm", local_response_norm)];

fn local_response_norm(case: &Case) -> Result<Outputs> {
    let size = case.param_usize("size")?;
    let (alpha, beta, k) = (
        case.param_f32("alpha")?,
        case.param_f32("beta")?,
        case.param_f32("k")?,
    );
    unary(case, |x| Ok(x.local_response_norm(size, alpha, beta, k)?))
}
