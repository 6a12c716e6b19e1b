//! The tape as a picture: a model's forward and backward pass exported as a Graphviz DOT graph
//! (one box per recorded op, an edge per input, each edge labelled with the norm of the gradient
//! that flowed back along it), a minimal syntax check of such a file, and rendering to SVG with
//! Graphviz's `dot` when it is installed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tapegrad_autograd::trace::to_dot;
use tapegrad_autograd::{BackwardOptions, Error, Result, Tape, Tensor};
use tapegrad_nn::loss::VarLosses;
use tapegrad_nn::Module;

/// A model's tape after one training step's backward pass.
#[derive(Clone, Debug)]
pub struct TapeGraph {
    pub dot: String,
    /// Nodes recorded on the tape (inputs, parameters and ops).
    pub nodes: usize,
    /// Nodes the backward pass visited.
    pub traced_steps: usize,
    pub loss: f32,
}

/// Runs `model` on `input`, a cross-entropy loss against `labels` and a traced backward pass,
/// and exports the tape with the gradient norms and the parameters' dotted names.
pub fn model_dot(model: &mut dyn Module, input: Tensor, labels: &[usize]) -> Result<TapeGraph> {
    model.name_parameters();
    let tape = Tape::new();
    let loss = model.forward(tape.input(input))?.cross_entropy(labels)?;
    let grads = loss.backward_with_options(
        Tensor::scalar(1.0),
        BackwardOptions {
            trace: true,
            ..BackwardOptions::default()
        },
    )?;
    let trace = grads.trace();
    Ok(TapeGraph {
        dot: to_dot(&tape, trace),
        nodes: tape.len(),
        traced_steps: trace.map_or(0, |t| t.steps.len()),
        loss: loss.item()?,
    })
}

/// What [`check_dot`] counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DotCheck {
    pub nodes: usize,
    pub edges: usize,
    /// Edges carrying a label (the gradient norms).
    pub labelled_edges: usize,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Format {
        what: "DOT graph".into(),
        msg: msg.into(),
    }
}

/// The part of a line outside double-quoted strings (escapes `\"` honoured), or an error if a
/// string is left open.
fn unquoted(line: &str) -> Result<String> {
    let (mut out, mut in_str, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        if in_str {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => escaped = false,
            }
        } else if c == '"' {
            in_str = true;
            out.push_str("\"\"");
        } else {
            out.push(c);
        }
    }
    if in_str {
        return Err(bad(format!("unterminated string in `{line}`")));
    }
    Ok(out)
}

fn is_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A minimal check of a DOT digraph written one statement per line, as
/// [`to_dot`] writes it: `digraph NAME {` ... `}`, every
/// statement ending in `;`, brackets balanced outside strings, identifiers well formed, and every
/// edge joining declared nodes.
pub fn check_dot(dot: &str) -> Result<DotCheck> {
    let lines: Vec<&str> = dot
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return Err(bad("empty"));
    };
    let head: Vec<&str> = first.split_whitespace().collect();
    if head.len() != 3 || head[0] != "digraph" || !is_id(head[1]) || head[2] != "{" {
        return Err(bad(format!("expected `digraph NAME {{`, got `{first}`")));
    }
    if *last != "}" || lines.len() < 2 {
        return Err(bad(format!("expected a closing `}}`, got `{last}`")));
    }
    let (mut declared, mut edges) = (HashSet::new(), Vec::new());
    let mut labelled = 0;
    for line in &lines[1..lines.len() - 1] {
        let code = unquoted(line)?;
        let Some(stmt) = code.strip_suffix(';') else {
            return Err(bad(format!("statement without `;`: `{line}`")));
        };
        let (body, attrs) = match stmt.find('[') {
            Some(i) => (&stmt[..i], Some(&stmt[i..])),
            None => (stmt, None),
        };
        if let Some(a) = attrs {
            if !a.trim_end().ends_with(']') || a.matches('[').count() != a.matches(']').count() {
                return Err(bad(format!("unbalanced attribute list in `{line}`")));
            }
        }
        if stmt.contains('{') || stmt.contains('}') {
            return Err(bad(format!("unexpected brace in `{line}`")));
        }
        let body = body.trim();
        if let Some((a, b)) = body.split_once("->") {
            let (a, b) = (a.trim(), b.trim());
            if !is_id(a) || !is_id(b) {
                return Err(bad(format!("malformed edge `{line}`")));
            }
            if attrs.is_some_and(|a| a.contains("label")) {
                labelled += 1;
            }
            edges.push((a.to_string(), b.to_string()));
        } else if ["graph", "node", "edge"].contains(&body) || body.contains('=') {
            // An attribute statement: `node [...]` or `rankdir=TB`.
        } else if is_id(body) {
            declared.insert(body.to_string());
        } else {
            return Err(bad(format!("malformed statement `{line}`")));
        }
    }
    if let Some((a, b)) = edges
        .iter()
        .find(|(a, b)| !declared.contains(a) || !declared.contains(b))
    {
        return Err(bad(format!("edge {a} -> {b} joins an undeclared node")));
    }
    Ok(DotCheck {
        nodes: declared.len(),
        edges: edges.len(),
        labelled_edges: labelled,
    })
}

/// Graphviz's `dot` on the `PATH` (as `which dot` finds it), if installed.
pub fn find_dot() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("dot"))
        .find(|p| p.is_file())
}

/// Renders `dot_file` to `svg_file` with `dot -Tsvg`. `Ok(false)` when `dot` is not installed;
/// an error when it fails.
pub fn render_svg(dot_file: &Path, svg_file: &Path) -> Result<bool> {
    let Some(dot) = find_dot() else {
        return Ok(false);
    };
    let out = Command::new(&dot)
        .arg("-Tsvg")
        .arg(dot_file)
        .arg("-o")
        .arg(svg_file)
        .output()
        .map_err(|e| Error::io(&dot, "cannot run Graphviz's dot", e))?;
    if !out.status.success() {
        return Err(Error::Format {
            what: dot_file.display().to_string(),
            msg: format!(
                "dot -Tsvg failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(true)
}
