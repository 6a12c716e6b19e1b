//! losses.json: `F.cross_entropy(input, target, reduction, label_smoothing)`,
//! `F.nll_loss(input, target, reduction)` and `F.mse_loss(input, target, reduction)`; `target`
//! is int64 class labels for the first two.

use super::case::{Case, Outputs, Result};
use super::graph::Graph;
use super::registry::OpFn;
use tapegrad_autograd::Tape;
use tapegrad_nn::loss::{Reduction, VarLosses};

pub const OPS: &[(&str, OpFn)] = &[
    ("cross_entropy", cross_entropy),
    ("nll_loss", nll_loss),
    ("mse_loss", mse_loss),
];

/// PyTorch's `reduction` keyword (default "mean").
fn reduction(case: &Case) -> Result<Reduction> {
    match case.param_str_or("reduction", "mean")? {
        "mean" => Ok(Reduction::Mean),
        "sum" => Ok(Reduction::Sum),
        "none" => Ok(Reduction::None),
        other => Err(format!("unsupported reduction {other:?}").into()),
    }
}

fn cross_entropy(case: &Case) -> Result<Outputs> {
    let eps = case.param_f32_or("label_smoothing", 0.0)?;
    let r = reduction(case)?;
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let labels = g.labels("target")?;
    let loss = g.input("input")?.cross_entropy_with(&labels, eps, r)?;
    g.finish(loss)
}

fn nll_loss(case: &Case) -> Result<Outputs> {
    let r = reduction(case)?;
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let labels = g.labels("target")?;
    let loss = g.input("input")?.nll_loss(&labels, r)?;
    g.finish(loss)
}

fn mse_loss(case: &Case) -> Result<Outputs> {
    let r = reduction(case)?;
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let loss = g.input("input")?.mse_with(g.input("target")?, r)?;
    g.finish(loss)
}
