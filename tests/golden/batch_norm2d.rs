//! batch_norm2d.json: `F.batch_norm(x, running_mean, running_var, weight, bias, training,
//! momentum, eps)`; in training the updated running statistics are extra outputs.

use super::case::{Case, Outputs, Result};
use super::graph::Graph;
use super::registry::OpFn;
use tapegrad_autograd::{RunningStats, Tape};

pub const OPS: &[(&str, OpFn)] = &[("batch_norm2d", batch_norm2d)];

fn batch_norm2d(case: &Case) -> Result<Outputs> {
    let training = case.param_bool("training")?;
    let momentum = case.param_f32("momentum")?;
    let eps = case.param_f32("eps")?;
    let affine = case.param_bool("affine")?;
    let tape = Tape::new();
    let mut g = Graph::new(&tape, case)?;
    let (weight, bias) = (g.optional("weight"), g.optional("bias"));
    if affine != (weight.is_some() && bias.is_some()) {
        return Err("param affine disagrees with the weight and bias inputs".into());
    }
    let mut mean = g.input("running_mean")?.value();
    let mut var = g.input("running_var")?.value();
    let stats = RunningStats {
        mean: &mut mean,
        var: &mut var,
        momentum,
    };
    let y = g
        .input("x")?
        .batch_norm(Some(stats), weight, bias, training, eps)?;
    if training {
        g.extra("running_mean", mean);
        g.extra("running_var", var);
    }
    g.finish(y)
}
