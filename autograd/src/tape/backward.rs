//! The backward pass: the whole algorithm of reverse-mode differentiation, in one place.
//!
//! Nodes sit on the tape in recording order, so walking ids downward from the output visits
//! every node after all of its consumers. For each node that received a gradient, its chain-rule
//! closure turns dL/d(result) into dL/d(input) for each input, and those are *summed* into the
//! inputs' gradients: fan-out (a value used twice, as in a residual join `x + f(x)`) is handled
//! here and nowhere else. A plain pass sums in place (the second gradient into the first), and
//! takes the gradient of a narrowed piece as that slice of the whole's (`Ctx::send_to_slice`),
//! so that a value cut into pieces gets one gradient, not one padded copy per piece.
//!
//! Without `create_graph`, recording is off while closures run: their var ops compute plain
//! values, which are taken as tensors and the temporary nodes dropped straight away; each node's
//! closure (and what it captured) is released once used, and each intermediate gradient once it
//! has been passed on. With `create_graph`, the closures' ops are recorded like any other, so the
//! gradients are vars that can be differentiated again.

use super::profile::Profiler;
use super::{Ctx, Grads, NodeId, NodeKind, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::trace::{Trace, TraceStep};
use std::collections::HashMap;
use std::time::Instant;

/// Options of a backward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackwardOptions {
    /// Record the backward pass, so the gradients can be differentiated again (implies
    /// `retain_graph`).
    pub create_graph: bool,
    /// Keep the chain-rule closures, so backward can run through this graph again.
    pub retain_graph: bool,
    /// Record a [`Trace`] of every step (available from `Grads::trace`).
    pub trace: bool,
    /// Stop after this node's chain rule has run (gradients past it are not computed).
    pub stop_after: Option<NodeId>,
}

/// A node's accumulated gradient: a plain value, or a recorded var with `create_graph`.
enum Acc {
    Value(Tensor),
    Node(NodeId),
}

impl<'t> Var<'t> {
    /// Backward seeded with `grad`, with explicit options.
    pub fn backward_with_options(self, grad: Tensor, opts: BackwardOptions) -> Result<Grads<'t>> {
        let tape = self.tape();
        if grad.shape() != &self.shape() {
            return Err(Error::shape(
                "backward",
                &[&self.shape(), grad.shape()],
                "the seed gradient to have the output's shape",
            ));
        }
        tape.check()?;
        if !self.requires_grad() {
            return Err(Error::invalid(
                "backward",
                "the output does not depend on any var or parameter that requires a gradient (it was computed from constants only, under no_grad, or on an inference tape)",
            ));
        }
        let create = opts.create_graph;
        let retain = opts.retain_graph || create;
        let was_recording = tape.set_recording(create);
        // Taken off the tape while backward runs, so the chain rules' own ops are not counted
        // as forward ops.
        let mut profiler = tape.profiler.borrow_mut().take();
        let result = run(
            tape,
            self.id(),
            grad,
            create,
            retain,
            opts,
            profiler.as_mut(),
        );
        if let Some(p) = profiler.as_mut() {
            p.restart();
        }
        *tape.profiler.borrow_mut() = profiler;
        tape.set_recording(was_recording);
        let grads = result?;
        tape.check()?;
        Ok(grads)
    }
}

fn run<'t>(
    tape: &'t Tape,
    root: NodeId,
    seed: Tensor,
    create: bool,
    retain: bool,
    opts: BackwardOptions,
    profiler: Option<&mut Profiler>,
) -> Result<Grads<'t>> {
    let seed = if create {
        Acc::Node(tape.input(seed).id())
    } else {
        Acc::Value(seed)
    };
    let (kept, _, trace) = propagate(tape, root, seed, 0, create, retain, opts, profiler)?;
    Ok(Grads::new(tape, kept, trace))
}

/// Backward over the nodes from `floor` to `root` only (a recomputed composition): returns the
/// gradients of the leaves recorded there (values) and of the nodes below `floor` it reached
/// (vars, recorded when the tape records).
pub(crate) fn partial<'t>(
    tape: &'t Tape,
    root: NodeId,
    seed: Var<'t>,
    floor: usize,
) -> Result<(HashMap<NodeId, Tensor>, HashMap<NodeId, Var<'t>>)> {
    let create = tape.is_recording();
    let seed = if create {
        Acc::Node(seed.id())
    } else {
        Acc::Value(seed.value())
    };
    let opts = BackwardOptions::default();
    let (kept, left, _) = propagate(tape, root, seed, floor, create, create, opts, None)?;
    let leaves = kept.into_iter().map(|(id, (t, _))| (id, t)).collect();
    let below = left
        .into_iter()
        .map(|(id, a)| {
            let v = match a {
                Acc::Value(t) => tape.input(t),
                Acc::Node(n) => Var::new(tape, n),
            };
            (id, v)
        })
        .collect();
    Ok((leaves, below))
}

type Kept = HashMap<NodeId, (Tensor, Option<NodeId>)>;

#[allow(clippy::too_many_arguments)]
fn propagate(
    tape: &Tape,
    root: NodeId,
    seed: Acc,
    floor: usize,
    create: bool,
    retain: bool,
    opts: BackwardOptions,
    mut profiler: Option<&mut Profiler>,
) -> Result<(Kept, HashMap<NodeId, Acc>, Option<Trace>)> {
    let mut acc: HashMap<NodeId, Acc> = HashMap::new();
    // Number of consumers whose gradients were summed into each node (fan-out), for the trace.
    let mut paths: HashMap<NodeId, usize> = HashMap::from([(root, 1)]);
    let mut trace = opts.trace.then(Trace::default);
    let mut kept: Kept = HashMap::new();
    acc.insert(root, seed);
    for index in (floor..=root.index()).rev() {
        let id = NodeId(index as u32);
        if !retain && index < root.index() {
            // The node after this one has been passed: its consumers' rules and its own have
            // run, so its value, if released, is needed no more.
            free_released(tape, index + 1);
        }
        let Some(grad) = acc.remove(&id) else {
            continue;
        };
        let n_paths = paths.remove(&id).unwrap_or(1);
        let (backward, inputs, keep, op, kind) = {
            let mut nodes = tape.nodes.borrow_mut();
            let n = &mut nodes[index];
            let keep = n.retain_grad || matches!(n.kind, NodeKind::Variable | NodeKind::Param(_));
            let backward = if retain {
                n.backward.clone()
            } else {
                n.backward.take()
            };
            (backward, n.inputs.clone(), keep, n.op, n.kind)
        };
        let started = Instant::now();
        let mark = tape.len();
        let grad_var = match grad {
            Acc::Value(t) => tape.input(t),
            Acc::Node(g) => Var::new(tape, g),
        };
        if keep {
            // A plain backward keeps values only: the var of the gradient is a temporary.
            kept.insert(id, (grad_var.value(), create.then_some(grad_var.id())));
        }
        if let NodeKind::Param(pid) = kind {
            // Taken out while it runs, so that nothing it does can find the tape's cell borrowed.
            let hook = tape.grad_hook.borrow_mut().take();
            if let Some(mut hook) = hook {
                let result = hook(pid, &grad_var.value());
                *tape.grad_hook.borrow_mut() = Some(hook);
                result?;
            }
        }
        let mut step = trace
            .as_ref()
            .map(|_| TraceStep::new(tape, id, grad_var.value(), n_paths));
        let Some(backward) = backward else {
            if let (Some(t), Some(s)) = (trace.as_mut(), step) {
                t.steps.push(s);
            }
            if kind == NodeKind::Op {
                return Err(Error::GraphReleased {
                    node: index,
                    op: op.name,
                });
            }
            if !create {
                tape.truncate(mark);
            }
            continue;
        };
        let ctx = Ctx {
            tape,
            inputs: inputs.clone(),
            result: id,
            grad: grad_var,
            slices: Default::default(),
            // A mutated rule is scaled by its returned gradients: slices would escape it.
            // Anomaly mode checks each returned gradient whole.
            slices_allowed: !create
                && trace.is_none()
                && !tape.anomaly_mode()
                && !cfg!(feature = "rule-mutation"),
        };
        let input_grads = backward(&ctx)?;
        #[cfg(feature = "rule-mutation")]
        let input_grads = super::mutation::apply(op.name, input_grads);
        if let Some(s) = step.as_mut() {
            s.sent = input_grads.iter().map(|g| g.map(|g| g.value())).collect();
        }
        for (&input, g) in inputs.iter().zip(input_grads) {
            let Some(g) = g else { continue };
            // A rule returning a var of another tape (a leaked, `'static` one) is refused: its
            // id would name a different node here.
            tape.check_own(op.name, &[g])?;
            let Some(want) = wanted(tape, input) else {
                continue;
            };
            if g.shape() != want {
                return Err(Error::shape(
                    op.name,
                    &[&want, &g.shape()],
                    "the chain rule to return a gradient shaped like its input",
                ));
            }
            if tape.anomaly_mode() {
                tape.check_finite(op, "backward", &[Var::new(tape, input)], &g.value());
            }
            let summed = match acc.remove(&input) {
                None if create => Acc::Node(g.id()),
                None => Acc::Value(g.value()),
                Some(Acc::Value(mut prev)) => {
                    // In place: the sum is this node's alone (a storage it shares is copied).
                    prev.add_assign(&g.value())?;
                    Acc::Value(prev)
                }
                Some(Acc::Node(prev)) => Acc::Node(Var::new(tape, prev).add(g)?.id()),
            };
            acc.insert(input, summed);
            *paths.entry(input).or_insert(0) += 1;
        }
        for s in ctx.slices.take() {
            let input = inputs[s.input];
            let Some(want) = wanted(tape, input) else {
                continue;
            };
            let mut sum = match acc.remove(&input) {
                Some(Acc::Value(prev)) => prev,
                None => Tensor::try_zeros(want)?,
                Some(Acc::Node(_)) => {
                    return Err(Error::invalid(
                        op.name,
                        "a slice gradient met a recorded one (only passes that record nothing take slices)",
                    ))
                }
            };
            sum.add_to_slice(s.axis, s.start, &s.grad).map_err(|e| {
                Error::invalid(
                    op.name,
                    format!("its rule sent a slice gradient that does not fit: {e}"),
                )
            })?;
            acc.insert(input, Acc::Value(sum));
            *paths.entry(input).or_insert(0) += 1;
        }
        if !create {
            tape.truncate(mark);
        }
        if let Some(p) = profiler.as_deref_mut() {
            p.backward(op, started.elapsed());
        }
        if let (Some(t), Some(s)) = (trace.as_mut(), step) {
            t.steps.push(s);
        }
        if opts.stop_after == Some(id) {
            break;
        }
    }
    Ok((kept, acc, trace))
}

/// The shape of `input`'s gradient, if it wants one.
fn wanted(tape: &Tape, input: NodeId) -> Option<crate::Shape> {
    let nodes = tape.nodes.borrow();
    let n = &nodes[input.index()];
    n.requires_grad.then(|| n.shape.clone())
}

/// Frees node `index`'s value if the user released it ([`Var::release`]).
fn free_released(tape: &Tape, index: usize) {
    let freed = {
        let mut nodes = tape.nodes.borrow_mut();
        let n = &mut nodes[index];
        if n.released {
            n.value.take()
        } else {
            None
        }
    };
    drop(freed);
}
