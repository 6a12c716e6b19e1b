//! `Grads`: the result of a backward pass, looked up by var or by parameter.

use super::{NodeId, Param, Tape, Var};
use crate::tensor::Tensor;
use crate::trace::Trace;
use std::collections::HashMap;

/// Gradients of the output of a backward pass with respect to the leaves (vars and parameters)
/// it reached, and to the intermediates marked with `retain_grad`.
///
/// A `Grads` is fresh from each backward: there is nothing to zero between training steps.
pub struct Grads<'t> {
    tape: &'t Tape,
    kept: HashMap<NodeId, (Tensor, Option<NodeId>)>,
    trace: Option<Trace>,
}

impl std::fmt::Debug for Grads<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut nodes: Vec<usize> = self.kept.keys().map(|id| id.index()).collect();
        nodes.sort_unstable();
        f.debug_struct("Grads")
            .field("nodes", &nodes)
            .field("traced", &self.trace.is_some())
            .finish()
    }
}

impl<'t> Grads<'t> {
    pub(crate) fn new(
        tape: &'t Tape,
        kept: HashMap<NodeId, (Tensor, Option<NodeId>)>,
        trace: Option<Trace>,
    ) -> Self {
        Grads { tape, kept, trace }
    }

    /// The step-by-step record of the backward pass, when it was asked for
    /// (`BackwardOptions::trace`).
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// dL/d`v`, or `None` if no path led from `v` to the output (as for a var of another tape:
    /// its id names some other node here).
    pub fn get(&self, v: Var<'t>) -> Option<Tensor> {
        self.kept_of(v).map(|(t, _)| t.clone())
    }

    /// The entry of `v`, if `v` is on this tape.
    fn kept_of(&self, v: Var<'t>) -> Option<&(Tensor, Option<NodeId>)> {
        if !std::ptr::eq(v.tape(), self.tape) {
            return None;
        }
        self.kept.get(&v.id())
    }

    /// dL/d`v`, zeros of `v`'s shape if no path led from `v` to the output.
    pub fn get_or_zeros(&self, v: Var<'t>) -> Tensor {
        self.get(v).unwrap_or_else(|| Tensor::zeros(v.shape()))
    }

    /// dL/d`v` as a var. After `backward` with `create_graph` it carries the recorded backward
    /// pass and can be differentiated again; otherwise it is a constant.
    pub fn var(&self, v: Var<'t>) -> Option<Var<'t>> {
        let (t, node) = self.kept_of(v)?;
        Some(match node {
            Some(id) => Var::new(self.tape, *id),
            None => self.tape.input(t.clone()),
        })
    }

    /// The gradient of a parameter recorded on the tape with [`Tape::param`].
    pub fn param(&self, p: &Param) -> Option<Tensor> {
        let id = self.tape.param_node(p.id())?;
        self.kept.get(&id).map(|(t, _)| t.clone())
    }

    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}
