//! Watching backprop happen: a step-by-step trace of the backward pass, tensor summaries, and
//! the tape as a Graphviz graph.
//!
//! Ask for a trace with `BackwardOptions { trace: true, .. }`; `grads.trace()` then holds one
//! step per node, in the order backward visited it: the op and its derivative rule, the shapes,
//! the upstream gradient (marked when it is the sum of several paths, as at a residual join),
//! and the gradient sent to each input.

use crate::shape::Shape;
use crate::tape::{NodeId, NodeKind, Op, Tape};
use crate::tensor::Tensor;
use std::fmt;

/// Tensors with at most this many elements are printed in full; larger ones are summarised.
pub const FULL_PRINT_LIMIT: usize = 16;

/// One node's visit by the backward pass.
#[derive(Clone, Debug)]
pub struct TraceStep {
    pub node: NodeId,
    pub op: Op,
    pub kind: NodeKind,
    pub label: Option<String>,
    pub inputs: Vec<NodeId>,
    pub input_shapes: Vec<Shape>,
    pub output_shape: Shape,
    /// dL/d(result), after summing every path.
    pub grad: Tensor,
    /// How many consumers' gradients were summed into `grad` (more than 1 at a fan-out).
    pub paths: usize,
    /// The gradient sent to each input (`None` where none flows).
    pub sent: Vec<Option<Tensor>>,
}

impl TraceStep {
    pub(crate) fn new(tape: &Tape, node: NodeId, grad: Tensor, paths: usize) -> TraceStep {
        let info = tape.node_info(node);
        let input_shapes = info
            .inputs
            .iter()
            .map(|&i| tape.node_info(i).shape)
            .collect();
        TraceStep {
            node,
            op: info.op,
            kind: info.kind,
            label: info.label,
            inputs: info.inputs,
            input_shapes,
            output_shape: info.shape,
            grad,
            paths,
            sent: Vec::new(),
        }
    }

    /// Whether this node's gradient is a sum over several paths (a join of the backward pass).
    pub fn is_join(&self) -> bool {
        self.paths > 1
    }
}

/// The backward pass, step by step.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub steps: Vec<TraceStep>,
}

impl Trace {
    /// The step of a node, if backward reached it.
    pub fn step(&self, node: NodeId) -> Option<&TraceStep> {
        self.steps.iter().find(|s| s.node == node)
    }

    /// The steps where gradients of several paths were summed.
    pub fn joins(&self) -> impl Iterator<Item = &TraceStep> {
        self.steps.iter().filter(|s| s.is_join())
    }
}

/// A tensor in full when small, else its statistics. Values print as tensors do: in scientific
/// notation when one of them would otherwise read as zero (a gradient of 2e-6).
pub fn show(t: &Tensor) -> String {
    if t.numel() <= FULL_PRINT_LIMIT {
        let sci = crate::tensor::display::needs_scientific(t.data());
        let v: Vec<String> = t
            .data()
            .iter()
            .map(|&x| crate::tensor::display::format_value(x, sci))
            .collect();
        format!("{} [{}]", t.shape(), v.join(", "))
    } else {
        summary(t)
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let name = match &s.label {
                Some(l) => format!("{} '{l}'", s.op.name),
                None => s.op.name.to_string(),
            };
            let ins: Vec<String> = s
                .inputs
                .iter()
                .zip(&s.input_shapes)
                .map(|(i, sh)| format!("#{} {sh}", i.index()))
                .collect();
            write!(f, "#{} {name} {}", s.node.index(), s.output_shape)?;
            if !ins.is_empty() {
                write!(f, " <- {}", ins.join(", "))?;
            }
            writeln!(f)?;
            if !s.op.formula.is_empty() {
                writeln!(f, "    rule: {}", s.op.formula)?;
            }
            if s.is_join() {
                writeln!(f, "    grad (sum of {} paths): {}", s.paths, show(&s.grad))?;
            } else {
                writeln!(f, "    grad: {}", show(&s.grad))?;
            }
            for (i, g) in s.inputs.iter().zip(&s.sent) {
                if let Some(g) = g {
                    writeln!(f, "    -> #{}: {}", i.index(), show(g))?;
                }
            }
        }
        Ok(())
    }
}

/// Statistics of a tensor: `shape [2, 3], mean 0.1, std 1.2, min -2, max 3, norm 4.1`
/// (NaN and infinities are counted, not averaged).
pub fn summary(t: &Tensor) -> String {
    let d = t.data();
    let finite: Vec<f64> = d
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| x as f64)
        .collect();
    let nan = d.iter().filter(|x| x.is_nan()).count();
    let inf = d.iter().filter(|x| x.is_infinite()).count();
    let n = finite.len().max(1) as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let var = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let min = finite.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let norm = finite.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut s = format!(
        "shape {}, mean {mean:.4e}, std {:.4e}, min {min:.4e}, max {max:.4e}, norm {norm:.4e}",
        t.shape(),
        var.sqrt()
    );
    if nan + inf > 0 {
        s.push_str(&format!(", {nan} NaN, {inf} inf"));
    }
    s
}

/// The tape as a Graphviz DOT graph: one box per node (op, shape, label), an edge per input;
/// with a trace, each edge carries the norm of the gradient that flowed along it.
pub fn to_dot(tape: &Tape, trace: Option<&Trace>) -> String {
    let mut out = String::from(
        "digraph tape {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
    );
    for i in 0..tape.len() {
        let id = NodeId(i as u32);
        let info = tape.node_info(id);
        let (color, title) = match info.kind {
            NodeKind::Param(_) => (
                "lightblue",
                info.label.clone().unwrap_or_else(|| "param".into()),
            ),
            NodeKind::Variable => (
                "lightyellow",
                info.label.clone().unwrap_or_else(|| "var".into()),
            ),
            NodeKind::Constant if info.inputs.is_empty() && info.op.name == "input" => (
                "white",
                info.label.clone().unwrap_or_else(|| "input".into()),
            ),
            _ => (
                "whitesmoke",
                match &info.label {
                    Some(l) => format!("{} '{l}'", info.op.name),
                    None => info.op.name.to_string(),
                },
            ),
        };
        out.push_str(&format!(
            "  n{i} [label=\"#{i} {}\\n{}\", style=filled, fillcolor={color}];\n",
            title.replace('"', "'"),
            info.shape
        ));
        for (k, input) in info.inputs.iter().enumerate() {
            let norm = trace
                .and_then(|t| t.step(id))
                .and_then(|s| s.sent.get(k).cloned().flatten())
                .map(|g| {
                    let n: f64 = g.data().iter().map(|&x| (x as f64) * (x as f64)).sum();
                    format!(" [label=\"|g| {:.3e}\"]", n.sqrt())
                })
                .unwrap_or_default();
            out.push_str(&format!("  n{} -> n{i}{norm};\n", input.index()));
        }
    }
    out.push_str("}\n");
    out
}
