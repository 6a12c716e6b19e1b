//! `Var<'t>`: a handle to a node on a tape, the thing users compute with.

use super::{BackwardOptions, Grads, NodeId, NodeKind, Tape};
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::fmt;

/// A value recorded on a tape: a `Copy` handle (the tape and a node id). Ops on vars record
/// nodes; the lifetime keeps a var from outliving, or straying from, its tape.
#[derive(Clone, Copy)]
pub struct Var<'t> {
    tape: &'t Tape,
    id: NodeId,
}

/// The gradients a chain-rule closure returns, one per input (`None`: no gradient flows there).
pub type InputGrads<'t> = SmallVec<[Option<Var<'t>>; 3]>;

/// What a chain-rule closure sees: the upstream gradient, the op's inputs and its result, all as
/// vars, so the rule is written with differentiable ops (and can itself be differentiated).
pub struct Ctx<'t> {
    pub(crate) tape: &'t Tape,
    pub(crate) inputs: SmallVec<[NodeId; 3]>,
    pub(crate) result: NodeId,
    pub(crate) grad: Var<'t>,
    /// Gradients sent to slices of inputs ([`Ctx::send_to_slice`]), and whether the pass takes
    /// them.
    pub(crate) slices: std::cell::RefCell<Vec<SliceGrad>>,
    pub(crate) slices_allowed: bool,
}

/// The gradient of a slice of input `input` along `axis` from `start`, to be summed in place.
pub(crate) struct SliceGrad {
    pub(crate) input: usize,
    pub(crate) axis: usize,
    pub(crate) start: usize,
    pub(crate) grad: Tensor,
}

impl<'t> Ctx<'t> {
    /// dL/d(result), the gradient flowing in from the op's consumers.
    pub fn grad(&self) -> Var<'t> {
        self.grad
    }
    /// The op's `i`-th input.
    pub fn input(&self, i: usize) -> Var<'t> {
        Var::new(self.tape, self.inputs[i])
    }
    /// The op's output value.
    pub fn result(&self) -> Var<'t> {
        Var::new(self.tape, self.result)
    }
    /// The tape, for recording constants in a rule.
    pub fn tape(&self) -> &'t Tape {
        self.tape
    }
    /// Whether the `i`-th input wants a gradient (rules may skip work for the others).
    pub fn needs(&self, i: usize) -> bool {
        self.input(i).requires_grad()
    }

    /// Sends `g`, the gradient of a slice of input `i` (from `start` along `axis`, as long as
    /// `g` is there), to be added into that slice of the input's gradient in place instead of
    /// being padded with zeros to the input's shape first: `narrow`'s rule, so that the pieces
    /// of a batch cost one input's worth of gradient, not one each. Returns false when this pass
    /// records its gradients (they must stay vars) or traces them (each rule's are shown whole):
    /// the rule then pads.
    pub(crate) fn send_to_slice(&self, i: usize, axis: usize, start: usize, g: Var<'t>) -> bool {
        if !self.slices_allowed {
            return false;
        }
        self.slices.borrow_mut().push(SliceGrad {
            input: i,
            axis,
            start,
            grad: g.value(),
        });
        true
    }
}

impl Tape {
    /// Bytes of tensor storage the tape's values hold now, each storage once (a reshape
    /// shares its input's): what released values, recomputation and composites save can be
    /// seen here.
    pub fn held_bytes(&self) -> usize {
        let nodes = self.nodes.borrow();
        let mut seen = std::collections::HashSet::new();
        nodes
            .iter()
            .filter_map(|n| n.value.as_ref())
            .filter(|v| seen.insert(v.data().as_ptr()))
            .map(|v| v.numel() * std::mem::size_of::<f32>())
            .sum()
    }

    /// [`Var::release`] of node `id`.
    pub(crate) fn release_node(&self, id: NodeId) {
        let mut nodes = self.nodes.borrow_mut();
        let n = &mut nodes[id.index()];
        n.released = true;
        let bytes = n.value.as_ref().map_or(0, |v| v.numel() * 4);
        let rebuild = n.recompute.is_some() && bytes >= self.recompute_from.get();
        if !n.saved || rebuild {
            n.value = None;
        }
    }
}

impl<'t> Var<'t> {
    pub(crate) fn new(tape: &'t Tape, id: NodeId) -> Var<'t> {
        Var { tape, id }
    }

    pub fn id(self) -> NodeId {
        self.id
    }

    pub fn tape(self) -> &'t Tape {
        self.tape
    }

    /// The value (shares storage, no copy). A released value ([`Var::release`]) reads as NaN.
    /// A released value that is recomputable ([`Var::recomputable`]) is computed again.
    pub fn value(self) -> Tensor {
        let (recompute, inputs, shape) = {
            let nodes = self.tape.nodes.borrow();
            let n = &nodes[self.id.index()];
            if let Some(v) = &n.value {
                return v.clone();
            }
            (n.recompute.clone(), n.inputs.clone(), n.shape.clone())
        };
        let again = recompute.and_then(|f| {
            let xs: Vec<Tensor> = inputs
                .iter()
                .map(|&i| Var::new(self.tape, i).value())
                .collect();
            f(&xs).ok().filter(|v| v.shape() == &shape)
        });
        again.unwrap_or_else(|| Tensor::full(shape, f32::NAN))
    }

    /// Declares that this op's value can be computed again from its inputs' values by `f`
    /// (cheaply: an unfold, a slice), so that [`Var::release`] frees it even if a chain rule
    /// reads it; a rule (or anyone) reading it then gets it recomputed. The inputs are kept
    /// for this. This is rematerialisation, as activation checkpointing does, for one node: a
    /// convolution's unfolded input (`kh kw` times its input) is held while its product is
    /// computed, forward and backward, and never in between. No effect on a constant.
    pub fn recomputable(self, f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static) -> Var<'t> {
        let mut nodes = self.tape.nodes.borrow_mut();
        if nodes[self.id.index()].kind != NodeKind::Op {
            return self;
        }
        let inputs = nodes[self.id.index()].inputs.clone();
        for i in inputs {
            nodes[i.index()].saved = true;
        }
        nodes[self.id.index()].recompute = Some(std::rc::Rc::new(f));
        self
    }

    pub fn shape(self) -> Shape {
        self.tape.nodes.borrow()[self.id.index()].shape.clone()
    }

    /// Declares that the caller reads this var's value no more: the tape frees it now if no
    /// recorded chain rule reads it (as with the output of a convolution followed by ReLU, or of
    /// any layer on an inference tape), or else as soon as backward has passed this node. Its
    /// shape stays known; its value reads as NaN afterwards (a recomputable one is rebuilt; see
    /// [`Tape::set_recompute_from`] for which are). Containers release each layer's
    /// output once the next layer has read it, so a pass holds what backward needs and no more.
    pub fn release(self) {
        self.tape.release_node(self.id);
    }

    /// Whether the value was freed by [`Var::release`] (a recomputable one still reads right).
    pub fn is_released(self) -> bool {
        self.tape.nodes.borrow()[self.id.index()].value.is_none()
    }

    pub fn dims(self) -> Vec<usize> {
        self.shape().dims().to_vec()
    }

    pub fn rank(self) -> usize {
        self.shape().rank()
    }

    /// Whether a gradient flows to this var in backward.
    pub fn requires_grad(self) -> bool {
        self.tape.nodes.borrow()[self.id.index()].requires_grad
    }

    /// The value of a one-element var.
    pub fn item(self) -> Result<f32> {
        self.value().item()
    }

    pub fn kind(self) -> NodeKind {
        self.tape.nodes.borrow()[self.id.index()].kind
    }

    /// The same value as a constant: gradients stop here.
    pub fn detach(self) -> Var<'t> {
        self.tape.input(self.value())
    }

    /// Keeps this intermediate var's gradient in the `Grads` of the next backward (leaves'
    /// gradients are always kept).
    pub fn retain_grad(self) -> Var<'t> {
        self.tape.nodes.borrow_mut()[self.id.index()].retain_grad = true;
        self
    }

    /// Names the var in traces and graphs.
    pub fn label(self, name: &str) -> Var<'t> {
        self.tape.nodes.borrow_mut()[self.id.index()].label = Some(name.into());
        self
    }

    /// Fails unless `other` is on the same tape, naming `op`: a composition calls it first so
    /// that mixing tapes is reported under its own name rather than an inner primitive's
    /// (`Tape::record` checks every op's inputs either way).
    pub fn same_tape(self, op: &'static str, other: Var<'t>) -> Result<()> {
        self.tape.check_own(op, &[self, other])
    }

    /// A constant on this var's tape.
    pub fn constant(self, value: Tensor) -> Var<'t> {
        self.tape.input(value)
    }

    /// Reverse-mode differentiation from a one-element output, seeded with 1.
    pub fn backward(self) -> Result<Grads<'t>> {
        let shape = self.shape();
        if shape.numel() != 1 {
            return Err(Error::NotScalar(shape));
        }
        self.backward_with_options(Tensor::ones(shape), BackwardOptions::default())
    }

    /// [`Var::backward`] with options (`create_graph`, `retain_graph`, `trace`...): from a
    /// one-element output, seeded with 1.
    pub fn backward_with_opts(self, opts: BackwardOptions) -> Result<Grads<'t>> {
        let shape = self.shape();
        if shape.numel() != 1 {
            return Err(Error::NotScalar(shape));
        }
        self.backward_with_options(Tensor::ones(shape), opts)
    }

    /// Reverse-mode differentiation seeded with `grad` (dL/d self), for any output shape.
    pub fn backward_with(self, grad: Tensor) -> Result<Grads<'t>> {
        self.backward_with_options(grad, BackwardOptions::default())
    }
}

impl fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.tape.nodes.borrow()[self.id.index()];
        match &n.value {
            Some(v) => write!(f, "Var#{}({}, {v})", self.id.0, n.op.name),
            None => write!(f, "Var#{}({}, released {})", self.id.0, n.op.name, n.shape),
        }
    }
}

impl fmt::Display for Var<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}
