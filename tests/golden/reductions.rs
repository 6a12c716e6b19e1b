//! reductions.json: `torch.sum/mean/amax(x, dim, keepdim)`. `dim: null` reduces everything to a
//! scalar (keepdim does not apply, as `torch.sum(x)`); over a single dim, `max` also returns the
//! `indices` of `torch.max(x, dim, keepdim)`.

use super::case::{Case, Outputs, Result};
use super::graph::Graph;
use super::registry::OpFn;
use tapegrad_autograd::Tape;

pub const OPS: &[(&str, OpFn)] = &[("sum", sum), ("mean", mean), ("max", max)];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Sum,
    Mean,
    Max,
}

fn sum(case: &Case) -> Result<Outputs> {
    reduce(case, Kind::Sum)
}

fn mean(case: &Case) -> Result<Outputs> {
    reduce(case, Kind::Mean)
}

fn max(case: &Case) -> Result<Outputs> {
    reduce(case, Kind::Max)
}

fn reduce(case: &Case, kind: Kind) -> Result<Outputs> {
    let dims = case.param_axes("dim")?;
    let keepdim = case.param_bool_or("keepdim", false)?;
    let (axes, keepdim) = match &dims {
        None => (Vec::new(), false),
        Some(d) => (d.clone(), keepdim),
    };
    let tape = Tape::new();
    let mut g = Graph::new(&tape, case)?;
    let x = g.input("x")?;
    let y = match kind {
        Kind::Sum => x.sum(&axes, keepdim)?,
        Kind::Mean => x.mean(&axes, keepdim)?,
        Kind::Max => x.max(&axes, keepdim)?,
    };
    if let (Kind::Max, [axis]) = (kind, axes.as_slice()) {
        g.extra("indices", x.value().argmax(*axis, keepdim)?);
    }
    g.finish(y)
}
