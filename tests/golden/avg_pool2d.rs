//! avg_pool2d.json: `F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode,
//! count_include_pad, divisor_override=None)` and `F.adaptive_avg_pool2d(x, output_size)`.

use super::case::{Case, Outputs, Result};
use super::graph::unary;
use super::max_pool2d::pool_options;
use super::registry::OpFn;

pub const OPS: &[(&str, OpFn)] = &[
    ("avg_pool2d", avg_pool2d),
    ("adaptive_avg_pool2d", adaptive_avg_pool2d),
];

fn avg_pool2d(case: &Case) -> Result<Outputs> {
    if !case.param("divisor_override")?.is_null() {
        return Err("divisor_override is not supported (only null)".into());
    }
    let o = pool_options(case, false)?;
    let include = case.param_bool("count_include_pad")?;
    unary(case, |x| Ok(x.avg_pool2d(o, include)?))
}

fn adaptive_avg_pool2d(case: &Case) -> Result<Outputs> {
    let [h, w] = case.param_pair("output_size")?;
    unary(case, |x| Ok(x.adaptive_avg_pool2d((h, w))?))
}
