//! matmul.json: `torch.matmul(a, b)`, batched with broadcast batch dimensions.

use super::case::{Case, Outputs, Result};
use super::graph::binary;
use super::registry::OpFn;

pub const OPS: &[(&str, OpFn)] = &[("matmul", matmul)];

fn matmul(case: &Case) -> Result<Outputs> {
    binary(case, |a, b| a.matmul(b))
}
