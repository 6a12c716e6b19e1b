//! The tape: an append-only list of nodes (a Wengert list), one per recorded op.
//!
//! A node holds the op, its input ids, its value and its chain-rule closure. Nodes are stored in
//! recording order, so an input always precedes its consumers and walking the list backwards is a
//! topological order: backward needs no graph search. `Var<'t>` is a `Copy` handle (the tape and a
//! `NodeId`); its lifetime ties every graph to the one tape it was recorded on.

mod backward;
mod checkpoint;
mod composite;
mod grad_fn;
mod grads;
#[cfg(feature = "rule-mutation")]
pub mod mutation;
mod param;
mod profile;
mod var;

pub use backward::BackwardOptions;
pub use checkpoint::{Composition, Split};
pub use grad_fn::grad;
pub use grads::Grads;
pub use param::{Param, ParamId};
pub use profile::{OpTime, Profile};
pub use var::{Ctx, InputGrads, Var};

use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Index of a node on its tape, in recording order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// Position on the tape (0 is the first recorded node).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a node computes: the op's name and its derivative rule, written as in PyTorch's
/// derivatives.yaml (in terms of `grad`, the inputs and `result`). The trace prints the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub name: &'static str,
    pub formula: &'static str,
}

impl Op {
    pub const fn new(name: &'static str, formula: &'static str) -> Op {
        Op { name, formula }
    }
}

/// Which values an op's chain rule reads: some of its inputs, its result, or all of them. A
/// value that no rule reads can be freed as soon as the user releases it ([`Var::release`]);
/// the others are kept until backward has passed them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    all_inputs: bool,
    /// Bit `i`: input `i` (inputs past the 64th count only under `all_inputs`).
    inputs: u64,
    result: bool,
}

impl Reads {
    /// Every input and the result (what [`Tape::record`] assumes).
    pub const ALL: Reads = Reads {
        all_inputs: true,
        inputs: 0,
        result: true,
    };
    /// No value: the rule uses the gradient and shapes only (add, reshape, sum, unfold).
    pub const NOTHING: Reads = Reads {
        all_inputs: false,
        inputs: 0,
        result: false,
    };
    /// The result only (exp, relu, sigmoid).
    pub const RESULT: Reads = Reads {
        all_inputs: false,
        inputs: 0,
        result: true,
    };
    /// The inputs at these positions.
    pub const fn inputs(positions: &[usize]) -> Reads {
        let mut bits = 0u64;
        let mut i = 0;
        while i < positions.len() {
            if positions[i] < 64 {
                bits |= 1 << positions[i];
            }
            i += 1;
        }
        Reads {
            all_inputs: false,
            inputs: bits,
            result: false,
        }
    }
    /// Every input, not the result.
    pub const ALL_INPUTS: Reads = Reads {
        all_inputs: true,
        inputs: 0,
        result: false,
    };

    /// These and the result too.
    pub const fn and_result(self) -> Reads {
        Reads {
            result: true,
            ..self
        }
    }

    fn input(&self, i: usize) -> bool {
        self.all_inputs || (i < 64 && self.inputs & (1 << i) != 0)
    }
}

/// How a node came to be on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Data that needs no gradient (`Tape::input`, or any op with recording off).
    Constant,
    /// A leaf whose gradient is wanted (`Tape::var`).
    Variable,
    /// A module parameter (`Tape::param`), found in `Grads` by its `ParamId`.
    Param(ParamId),
    /// The result of a recorded op.
    Op,
}

/// The chain rule of one op: given the context (upstream gradient, inputs, result), the gradient
/// for each input (`None` for inputs that need none).
pub type BackwardFn = dyn for<'a> Fn(&Ctx<'a>) -> crate::Result<InputGrads<'a>>;

pub(crate) struct Node {
    pub(crate) op: Op,
    pub(crate) kind: NodeKind,
    pub(crate) inputs: SmallVec<[NodeId; 3]>,
    /// The op's result; `None` once released (see [`Var::release`]).
    pub(crate) value: Option<Tensor>,
    pub(crate) shape: crate::Shape,
    /// Some recorded chain rule reads this value (see [`Reads`]).
    pub(crate) saved: bool,
    /// The user reads this value no more: freed now if no rule reads it, else once backward
    /// has passed it.
    pub(crate) released: bool,
    /// Computes the value again from the inputs' values (see [`Var::recomputable`]).
    pub(crate) recompute: Option<Rc<Recompute>>,
    pub(crate) backward: Option<Rc<BackwardFn>>,
    pub(crate) requires_grad: bool,
    pub(crate) retain_grad: bool,
    pub(crate) label: Option<Rc<str>>,
}

/// Computes a node's value from its inputs' values.
pub type Recompute = dyn Fn(&[Tensor]) -> crate::Result<Tensor>;

/// Leaves are recorded under these pseudo-ops.
pub(crate) const INPUT: Op = Op::new("input", "");
pub(crate) const VARIABLE: Op = Op::new("variable", "");
pub(crate) const PARAM: Op = Op::new("param", "");

/// Records ops as they run, for reverse-mode differentiation. See the crate docs for the life of
/// a training step. A tape is single-threaded (the kernels inside each op use all cores).
pub struct Tape {
    pub(crate) nodes: RefCell<Vec<Node>>,
    recording: Cell<bool>,
    params: RefCell<HashMap<ParamId, NodeId>>,
    pub(crate) anomaly: RefCell<Option<crate::Error>>,
    detect_anomaly: Cell<bool>,
    pub(crate) profiler: RefCell<Option<profile::Profiler>>,
    pub(crate) grad_hook: RefCell<Option<ParamGradHook>>,
    pub(crate) recompute_from: Cell<usize>,
}

/// See [`Tape::set_recompute_from`].
const RECOMPUTE_FROM: usize = 8 << 20;

/// Called by backward with each parameter's gradient as soon as it is final; see
/// [`Tape::on_param_grad`].
pub type ParamGradHook = Box<dyn FnMut(ParamId, &Tensor) -> crate::Result<()>>;

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Tape {
    /// A tape that records ops for backward.
    pub fn new() -> Tape {
        Tape {
            nodes: RefCell::new(Vec::new()),
            recording: Cell::new(true),
            params: RefCell::new(HashMap::new()),
            anomaly: RefCell::new(None),
            detect_anomaly: Cell::new(false),
            profiler: RefCell::new(None),
            grad_hook: RefCell::new(None),
            recompute_from: Cell::new(RECOMPUTE_FROM),
        }
    }

    /// Released recomputable values ([`Var::recomputable`]) of at least `bytes` are freed and
    /// rebuilt when backward reads them; smaller ones are kept until then (default 8 MiB; 0
    /// rebuilds every one). Rebuilding trades time for memory, which pays for VGG's unfolded
    /// inputs (hundreds of MB) but not for a small network's: keeping those made LeNet-5
    /// training steps 11-15% faster (five interleaved runs) and the small VGG's up to 10%,
    /// for 4-7 MiB more.
    pub fn set_recompute_from(&self, bytes: usize) {
        self.recompute_from.set(bytes);
    }

    /// A tape for inference: ops compute values but record no closures and save nothing for a
    /// backward pass; a composite op (convolution, pooling, normalisation) leaves only its result
    /// on it. The tape holds every op's result until it is dropped, or until the var is released
    /// ([`Var::release`]; containers release each layer's output once the next has read it).
    pub fn inference() -> Tape {
        let t = Tape::new();
        t.recording.set(false);
        t
    }

    /// Whether ops are being recorded for backward.
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    /// Runs `f` with recording off (PyTorch's `torch.no_grad()`), then restores the previous mode.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        let prev = self.recording.replace(false);
        let r = f();
        self.recording.set(prev);
        r
    }

    pub(crate) fn set_recording(&self, on: bool) -> bool {
        self.recording.replace(on)
    }

    /// Anomaly mode: every op checks its result (and backward every gradient) for NaN and
    /// infinity; the first one found is reported by `backward` (and by [`Tape::check`]) naming
    /// the op and its inputs' statistics.
    pub fn detect_anomaly(&self, on: bool) {
        self.detect_anomaly.set(on);
    }

    pub(crate) fn anomaly_mode(&self) -> bool {
        self.detect_anomaly.get()
    }

    /// Has backward call `hook` with each parameter's gradient as soon as it is final: when
    /// the reverse walk reaches the parameter's node, every consumer has passed its part on.
    /// Parameters come in the order backward finishes them (the last layer's first), so
    /// data-parallel training can start averaging a bucket of gradients while backward goes on
    /// with earlier layers. An error from the hook stops the backward pass and is returned by
    /// it. One hook per tape: a new one replaces the old.
    pub fn on_param_grad(&self, hook: impl FnMut(ParamId, &Tensor) -> crate::Result<()> + 'static) {
        *self.grad_hook.borrow_mut() = Some(Box::new(hook));
    }

    /// Profiling: with it on, every recorded node and every chain rule run by backward is timed;
    /// [`Tape::profile`] gives the times per op. Turning it on starts the tallies afresh.
    pub fn set_profiling(&self, on: bool) {
        *self.profiler.borrow_mut() = on.then(profile::Profiler::new);
    }

    /// Forward and backward time per op since profiling was turned on (`None` when it is off).
    pub fn profile(&self) -> Option<Profile> {
        self.profiler
            .borrow()
            .as_ref()
            .map(profile::Profiler::profile)
    }

    /// The first anomaly found in anomaly mode, if any.
    pub fn check(&self) -> crate::Result<()> {
        match self.anomaly.borrow().as_ref() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Data that needs no gradient (images, labels, masks).
    pub fn input(&self, value: Tensor) -> Var<'_> {
        self.push_leaf(INPUT, NodeKind::Constant, value, false)
    }

    /// A leaf whose gradient `backward` computes (recording permitting).
    pub fn var(&self, value: Tensor) -> Var<'_> {
        let rg = self.is_recording();
        self.push_leaf(VARIABLE, NodeKind::Variable, value, rg)
    }

    /// Records a parameter: shares its storage (no copy). Recording the same parameter twice on
    /// one tape returns the same var, so shared weights sum their gradients.
    pub fn param(&self, p: &Param) -> Var<'_> {
        if let Some(&id) = self.params.borrow().get(&p.id()) {
            return Var::new(self, id);
        }
        let rg = self.is_recording() && p.requires_grad();
        let v = self.push_leaf(PARAM, NodeKind::Param(p.id()), p.value().clone(), rg);
        if let Some(name) = p.name() {
            self.nodes.borrow_mut()[v.id().index()].label = Some(name.into());
        }
        self.params.borrow_mut().insert(p.id(), v.id());
        v
    }

    /// The node of a parameter recorded on this tape.
    pub fn param_node(&self, id: ParamId) -> Option<NodeId> {
        self.params.borrow().get(&id).copied()
    }

    fn push_leaf(&self, op: Op, kind: NodeKind, value: Tensor, requires_grad: bool) -> Var<'_> {
        self.push(Node {
            op,
            kind,
            inputs: SmallVec::new(),
            shape: value.shape().clone(),
            value: Some(value),
            saved: false,
            released: false,
            recompute: None,
            backward: None,
            requires_grad,
            retain_grad: false,
            label: None,
        })
    }

    pub(crate) fn push(&self, node: Node) -> Var<'_> {
        let mut nodes = self.nodes.borrow_mut();
        let id = NodeId(u32::try_from(nodes.len()).expect("a tape holds at most 2^32 nodes"));
        if let Some(p) = self.profiler.borrow_mut().as_mut() {
            p.recorded(node.op);
        }
        nodes.push(node);
        Var::new(self, id)
    }

    /// Records the result of an op. If recording is on and any input requires a gradient, the
    /// node keeps its inputs and the chain-rule closure `backward`; otherwise it is a constant
    /// and the closure is dropped unused. This is how a custom primitive is added: compute the
    /// value with tensor kernels, then record it with its derivative rule written in var ops.
    /// The rule may read every input and the result; [`Tape::record_reading`] says which it
    /// reads, so that the others can be freed early.
    ///
    /// Fails with [`crate::Error::ForeignTape`] naming `op` if an input was recorded on another
    /// tape: a node keeps its inputs' ids, which only mean something on its own tape, so a
    /// foreign input would send its gradient to whatever node has that id here.
    pub fn record<'t, F>(
        &'t self,
        op: Op,
        inputs: &[Var<'t>],
        value: Tensor,
        backward: F,
    ) -> crate::Result<Var<'t>>
    where
        F: for<'a> Fn(&Ctx<'a>) -> crate::Result<InputGrads<'a>> + 'static,
    {
        self.record_reading(op, inputs, value, Reads::ALL, backward)
    }

    /// [`Tape::record`] for a rule that reads only the values `reads` names (through
    /// `Ctx::input(i).value()` or `Ctx::result().value()`; shapes are always available).
    pub fn record_reading<'t, F>(
        &'t self,
        op: Op,
        inputs: &[Var<'t>],
        value: Tensor,
        reads: Reads,
        backward: F,
    ) -> crate::Result<Var<'t>>
    where
        F: for<'a> Fn(&Ctx<'a>) -> crate::Result<InputGrads<'a>> + 'static,
    {
        self.check_own(op.name, inputs)?;
        if self.anomaly_mode() && self.anomaly.borrow().is_none() {
            self.check_finite(op, "forward", inputs, &value);
        }
        let requires_grad = self.is_recording() && inputs.iter().any(|v| v.requires_grad());
        if !requires_grad {
            return Ok(self.push_leaf(op, NodeKind::Constant, value, false));
        }
        {
            let mut nodes = self.nodes.borrow_mut();
            for (i, v) in inputs.iter().enumerate() {
                if reads.input(i) {
                    nodes[v.id().index()].saved = true;
                }
            }
        }
        Ok(self.push(Node {
            op,
            kind: NodeKind::Op,
            inputs: inputs.iter().map(|v| v.id()).collect(),
            shape: value.shape().clone(),
            value: Some(value),
            saved: reads.result,
            released: false,
            recompute: None,
            backward: Some(Rc::new(backward)),
            requires_grad: true,
            retain_grad: false,
            label: None,
        }))
    }

    /// The same-tape invariant, checked here for every op (by `record`, `composite` and the
    /// ops that record a constant computed from vars): every input was recorded on this tape.
    /// Vars hold a reference to their tape, and two tapes alive at once have distinct
    /// addresses, so comparing the references compares the tapes.
    pub(crate) fn check_own(&self, op: &'static str, inputs: &[Var<'_>]) -> crate::Result<()> {
        if inputs.iter().all(|v| std::ptr::eq(v.tape(), self)) {
            Ok(())
        } else {
            Err(crate::Error::ForeignTape { op })
        }
    }

    pub(crate) fn check_finite(
        &self,
        op: Op,
        pass: &'static str,
        inputs: &[Var<'_>],
        value: &Tensor,
    ) {
        if value.data().iter().all(|x| x.is_finite()) {
            return;
        }
        let stats: Vec<String> = inputs
            .iter()
            .map(|v| crate::trace::summary(&v.value()))
            .collect();
        *self.anomaly.borrow_mut() = Some(crate::Error::NonFinite {
            op: op.name,
            pass,
            inputs: stats.join("; "),
        });
    }

    /// Drops every node recorded after the first `len` (temporaries of a backward step).
    pub(crate) fn truncate(&self, len: usize) {
        let dropped: Vec<Node> = self.nodes.borrow_mut().drain(len..).collect();
        drop(dropped);
    }

    /// Op, kind, input ids and label of a node, for traces and graph export.
    pub fn node_info(&self, id: NodeId) -> NodeInfo {
        let nodes = self.nodes.borrow();
        let n = &nodes[id.index()];
        NodeInfo {
            op: n.op,
            kind: n.kind,
            inputs: n.inputs.to_vec(),
            shape: n.shape.clone(),
            requires_grad: n.requires_grad,
            label: n.label.as_deref().map(str::to_owned),
        }
    }
}

/// A node's description (no value), for traces and graph export.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub op: Op,
    pub kind: NodeKind,
    pub inputs: Vec<NodeId>,
    pub shape: crate::Shape,
    pub requires_grad: bool,
    pub label: Option<String>,
}
