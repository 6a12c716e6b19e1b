//! max_pool2d.json: `F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode,
//! return_indices=True)`.
//!
//! Input `x` `[N, C, H, W]`; params `kernel_size`, `stride`, `padding`, `dilation` (`[h, w]`),
//! `ceil_mode`. Grad for x; extra output `indices` (flat `h*W + w` inside each (n, c) plane),
//! recorded with `Graph::extra("indices", ..)`.

use super::case::{Case, Outputs, Result};
use super::registry::{not_implemented, OpFn};

pub const OPS: &[(&str, OpFn)] = &[("max_pool2d", max_pool2d)];

fn max_pool2d(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("max_pool2d"))
}
