//! conv2d.json: `F.conv2d(x, weight, bias, stride, padding, dilation, groups)`.
//!
//! Inputs `x` `[N, C, H, W]`, `weight` `[out_c, in_c/groups, kh, kw]`, optional `bias` `[out_c]`;
//! params `stride`, `padding`, `dilation` (`[h, w]`), `groups`, and `bias` (whether the bias
//! input is present). Grads for x, weight and bias. Read params with `case.param_pair` /
//! `param_usize`, inputs through `Graph` (see linear.rs for the bias check).

use super::case::{Case, Outputs, Result};
use super::registry::{not_implemented, OpFn};

pub const OPS: &[(&str, OpFn)] = &[("conv2d", conv2d)];

fn conv2d(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("conv2d"))
}
