//! avg_pool2d.json: `F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode,
//! count_include_pad, divisor_override)` and `F.adaptive_avg_pool2d(x, output_size)`.
//!
//! Input `x` `[N, C, H, W]`; params `kernel_size`, `stride`, `padding` (`[h, w]`), `ceil_mode`,
//! `count_include_pad`, `divisor_override` (null in every case; anything else is unsupported
//! unless implemented), and `output_size` (`[h, w]`) for the adaptive op. Grad for x.

use super::case::{Case, Outputs, Result};
use super::registry::{not_implemented, OpFn};

pub const OPS: &[(&str, OpFn)] = &[
    ("avg_pool2d", avg_pool2d),
    ("adaptive_avg_pool2d", adaptive_avg_pool2d),
];

fn avg_pool2d(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("avg_pool2d"))
}

fn adaptive_avg_pool2d(_case: &Case) -> Result<Outputs> {
    Err(not_implemented("adaptive_avg_pool2d"))
}
