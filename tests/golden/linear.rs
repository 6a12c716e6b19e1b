//! linear.json: `F.linear(x, weight, bias)`, weight `[out, in]`, `x` `[..., in]`; the `bias`
//! param says whether the bias input is present.

use super::case::{Case, Outputs, Result};
use super::graph::Graph;
use super::registry::OpFn;
use tapegrad_autograd::Tape;

pub const OPS: &[(&str, OpFn)] = &[("linear", linear)];

fn linear(case: &Case) -> Result<Outputs> {
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let bias = g.optional("bias");
    let declared = case.param_bool_or("bias", bias.is_some())?;
    if declared != bias.is_some() {
        return Err(format!(
            "param bias = {declared}, but the bias input is {}",
            if bias.is_some() { "present" } else { "absent" }
        )
        .into());
    }
    let y = g.input("x")?.linear(g.input("weight")?, bias)?;
    g.finish(y)
}
