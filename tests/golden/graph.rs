//! The shared half of every differentiated case: record the inputs on a tape, let the op build
//! its forward pass, then run `backward_with(grad_output)` and collect the output, the gradient
//! of every input the case lists under `grads`, and the op's extra outputs.

use super::case::{Case, Golden, Outputs, Result};
use std::collections::BTreeMap;
use tapegrad_autograd::{Tape, Tensor, Var};

/// The inputs of one case recorded on a tape: those listed under `grads` as differentiable
/// vars, the other float inputs (targets, running statistics) as constants.
pub struct Graph<'c, 't> {
    case: &'c Case,
    leaves: BTreeMap<String, Var<'t>>,
    wanted: Vec<String>,
    extras: Outputs,
}

impl<'c, 't> Graph<'c, 't> {
    pub fn new(tape: &'t Tape, case: &'c Case) -> Result<Self> {
        let inputs = case.tensor_map("inputs")?;
        let wanted: Vec<String> = case.tensor_map("grads")?.into_keys().collect();
        let mut leaves = BTreeMap::new();
        for (name, g) in inputs.iter() {
            let differentiate = wanted.contains(name);
            match g {
                Golden::F32(t) if differentiate => {
                    leaves.insert(name.clone(), tape.var(t.clone()));
                }
                Golden::F32(t) => {
                    leaves.insert(name.clone(), tape.input(t.clone()));
                }
                Golden::I64 { .. } if differentiate => {
                    return Err(format!("grads.{name}: an int64 input has no gradient").into())
                }
                Golden::I64 { .. } => {}
            }
        }
        if let Some(w) = wanted.iter().find(|w| !inputs.contains_key(*w)) {
            return Err(format!("grads.{w} names no input").into());
        }
        Ok(Graph {
            case,
            leaves,
            wanted,
            extras: Outputs::new(),
        })
    }

    /// A float input (required), marked consumed.
    pub fn input(&self, name: &str) -> Result<Var<'t>> {
        self.optional(name)
            .ok_or_else(|| format!("missing float32 input `{name}`").into())
    }

    /// A float input that may be absent (a bias), marked consumed when present.
    pub fn optional(&self, name: &str) -> Option<Var<'t>> {
        let v = self.leaves.get(name).copied();
        if v.is_some() {
            self.case.mark_input(name);
        }
        v
    }

    /// An int64 input as class labels, marked consumed.
    pub fn labels(&self, name: &str) -> Result<Vec<usize>> {
        self.case.labels(name)
    }

    /// Records an extra output (compared with `extra_outputs.<name>`).
    pub fn extra(&mut self, name: &str, value: Tensor) {
        self.extras.insert(format!("extra_outputs.{name}"), value);
    }

    /// Seeds backward with `grad_output` and collects every result of the case.
    pub fn finish(self, output: Var<'t>) -> Result<Outputs> {
        let seed = self.case.tensor("grad_output")?;
        let mut out = self.extras;
        out.insert("output".into(), output.value());
        if self.wanted.is_empty() {
            // Nothing to differentiate (the output depends on constants only).
            return Ok(out);
        }
        let grads = output.backward_with(seed)?;
        for name in &self.wanted {
            let leaf = self.leaves[name];
            out.insert(format!("grads.{name}"), grads.get_or_zeros(leaf));
        }
        Ok(out)
    }
}

/// A one-input op on `x`: the activations, softmax and reductions.
pub fn unary(case: &Case, f: impl for<'t> FnOnce(Var<'t>) -> Result<Var<'t>>) -> Result<Outputs> {
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let y = f(g.input("x")?)?;
    g.finish(y)
}

/// A two-input op on `a` and `b`: elementwise arithmetic and matmul.
pub fn binary(
    case: &Case,
    f: impl for<'t> FnOnce(Var<'t>, Var<'t>) -> tapegrad_autograd::Result<Var<'t>>,
) -> Result<Outputs> {
    let tape = Tape::new();
    let g = Graph::new(&tape, case)?;
    let y = f(g.input("a")?, g.input("b")?)?;
    g.finish(y)
}
