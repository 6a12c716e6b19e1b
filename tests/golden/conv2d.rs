//! conv2d.json: `F.conv2d(x, weight, bias, stride, padding, dilation, groups)`.
//!
//! Inputs `x` `[N, C, H, W]`, `weight` `[out_c, in_c/groups, kh, kw]`, optional `bias` `[out_c]`;
//! params `stride`, `padding`, `dilation` (`[h, w]`), `groups`, and `bias` (whether the bias
//! input is present). Grads for x, weight and bias.

use super::case::{Case, Outputs, Result};
use super::graph::Graph;
use super::registry::OpFn;
use tapegrad_autograd::{Conv2dOptions, Tape};

pub const OPS: &[(&str, OpFn)] = &[("conv2d", conv2d)];

fn pair(case: &Case, key: &str) -> Result<(usize, usize)> {
    let [a, b] = case.param_pair(key)?;
    Ok((a, b))
}

fn conv2d(case: &Case) -> Result<Outputs> {
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let bias = g.optional("bias");
    if case.param_bool("bias")? != bias.is_some() {
        return Err("param bias disagrees with the presence of the bias input".into());
    }
    let o = Conv2dOptions {
        stride: pair(case, "stride")?,
        padding: pair(case, "padding")?,
        dilation: pair(case, "dilation")?,
        groups: case.param_usize("groups")?,
    };
    let y = g.input("x")?.conv2d(g.input("weight")?, bias, o)?;
    g.finish(y)
}
