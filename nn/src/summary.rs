//! `summary(model, input_shape)`: one row per layer with its output shape, parameters,
//! multiply-accumulates, receptive field and effective stride (the lecture's design figures).
//!
//! Every module's forward reports its entry and exit to the recorder of its tape (see
//! [`scope`]); the summary names each module it sees run (dotted, as the state dict) from a
//! walk over the model, so a child called directly is seen as well. The receptive field is
//! followed through the tape, per axis, as (field, jump, extent): a windowed layer grows the
//! field by `(k - 1) * dilation * jump` and multiplies the jump (the effective stride) by its
//! stride; adaptive pooling does the same with its largest window (global pooling: the whole
//! map, `k` = its size); a fully connected layer mixes every position of its input, so its field
//! is the union of them all, `field + (extent - 1) * jump`, where the extent is the spatial size
//! of the last 4-d map before a flatten. Any other op passes on the largest field among its
//! inputs (a residual join, a concat of inception branches). Fields count padding, as is usual:
//! they may exceed the input; from global pooling or a fully connected layer on, they cover at
//! least the whole input.

pub mod scope;

use crate::module::{LayerInfo, Module};
use scope::{scoped_as, ModuleId, Recording};
use std::collections::HashMap;
use std::fmt;
use tapegrad_autograd::{NodeId, Result, Shape, Tape, Tensor, Var};

/// One layer of a summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Dotted path, as in the state_dict (`layer1.0.conv1`).
    pub name: String,
    pub type_name: &'static str,
    pub depth: usize,
    pub input_shape: Shape,
    pub output_shape: Shape,
    /// Parameters held by this module and its children.
    pub params: usize,
    /// Multiply-accumulates of one forward pass (for the given input, whole batch).
    pub macs: u64,
    /// Input pixels (per side) that one output element sees.
    pub receptive_field: (usize, usize),
    /// Input pixels between neighbouring output elements.
    pub effective_stride: (usize, usize),
    /// Whether no other module ran inside this one.
    pub leaf: bool,
}

/// A model's summary: every recorded module call, in order, and totals.
#[derive(Clone, Debug)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    pub input_shape: Shape,
    pub output_shape: Shape,
    pub total_params: usize,
    /// Sum over leaf rows.
    pub total_macs: u64,
}

impl Summary {
    /// The leaf rows (layers), the ones the table prints.
    pub fn layers(&self) -> impl Iterator<Item = &SummaryRow> {
        self.rows.iter().filter(|r| r.leaf)
    }

    /// The row of the module with this dotted name.
    pub fn row(&self, name: &str) -> Option<&SummaryRow> {
        self.rows.iter().find(|r| r.name == name)
    }
}

/// A summary being taken: the model's modules by name, the modules running, the rows of those
/// that have returned.
#[derive(Default)]
struct Recorder {
    /// Every module of the model and its dotted name, in the walk's order; and whether a call
    /// has been named after it.
    names: Vec<(String, ModuleId, bool)>,
    frames: Vec<Frame>,
    rows: Vec<SummaryRow>,
    /// Receptive field, jump and spatial extent per node, per axis.
    field: HashMap<NodeId, [Field; 2]>,
}

/// A module that is running.
struct Frame {
    id: ModuleId,
    name: String,
    type_name: &'static str,
    first_row: usize,
}

impl Recorder {
    /// Opens a frame for module `id`, unless it is the one running (a container's
    /// `forward_child` opened it, and now its own forward reports).
    fn enter(&mut self, id: ModuleId, hint: Option<&str>, type_name: &'static str) -> bool {
        let parent = match self.frames.last() {
            Some(f) if f.id == id => return false,
            Some(f) => f.name.clone(),
            None => String::new(),
        };
        let name = self.name_of(id, &parent).unwrap_or_else(|| {
            let own = hint.map_or_else(|| type_name.to_string(), str::to_string);
            if parent.is_empty() {
                own
            } else {
                format!("{parent}.{own}")
            }
        });
        self.frames.push(Frame {
            id,
            name,
            type_name,
            first_row: self.rows.len(),
        });
        true
    }

    /// The name of module `id` running inside `parent`: among the modules of that identity
    /// below `parent`, the shallowest not yet named, first in the walk's order (modules that
    /// share an identity, zero-sized layers, run in order); else any of that identity.
    fn name_of(&mut self, id: ModuleId, parent: &str) -> Option<String> {
        let below = |n: &str| parent.is_empty() || n.starts_with(&format!("{parent}."));
        let pick = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, (n, i, used))| *i == id && !used && below(n))
            .min_by_key(|(k, (n, _, _))| (n.matches('.').count(), *k))
            .map(|(k, _)| k)
            .or_else(|| self.names.iter().position(|(_, i, _)| *i == id))?;
        self.names[pick].2 = true;
        Some(self.names[pick].0.clone())
    }

    /// Closes the running module's frame: its row, from `x` to `y` (none if it failed).
    fn exit<'t>(&mut self, x: Var<'t>, y: Option<Var<'t>>, params: usize, info: LayerInfo) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let Some(y) = y else { return };
        let leaf = self.rows.len() == frame.first_row;
        let row = self.row(frame, x, y, params, info, leaf);
        self.rows.push(row);
    }

    fn row<'t>(
        &mut self,
        frame: Frame,
        x: Var<'t>,
        y: Var<'t>,
        params: usize,
        info: LayerInfo,
        leaf: bool,
    ) -> SummaryRow {
        let rec = self;
        let fin = field_of(rec, x.tape(), x.id());
        let out_extent = spatial(&y.shape());
        let extent = |a: usize| out_extent.map_or(1, |e| e[a]);
        let fout = match info {
            LayerInfo::Conv {
                kernel,
                stride,
                dilation,
                ..
            }
            | LayerInfo::Pool {
                kernel,
                stride,
                dilation,
            } => [
                fin[0].window(kernel.0, stride.0, dilation.0, extent(0)),
                fin[1].window(kernel.1, stride.1, dilation.1, extent(1)),
            ],
            LayerInfo::AdaptivePool { output } => {
                let n = spatial(&x.shape()).unwrap_or([1, 1]);
                let (k0, s0) = adaptive_window(n[0], output.0);
                let (k1, s1) = adaptive_window(n[1], output.1);
                [
                    fin[0].window(k0, s0, 1, extent(0)),
                    fin[1].window(k1, s1, 1, extent(1)),
                ]
            }
            LayerInfo::Linear { .. } => [fin[0].union(), fin[1].union()],
            _ => field_of(rec, x.tape(), y.id()),
        };
        rec.field.insert(y.id(), fout);
        let out_shape = y.shape();
        let macs = match info {
            LayerInfo::Conv {
                in_per_group,
                kernel,
                ..
            } => out_shape.numel() as u64 * (in_per_group * kernel.0 * kernel.1) as u64,
            LayerInfo::Linear { in_features } => out_shape.numel() as u64 * in_features as u64,
            _ => 0,
        };
        SummaryRow {
            depth: frame.name.matches('.').count(),
            name: frame.name,
            type_name: frame.type_name,
            input_shape: x.shape(),
            output_shape: out_shape,
            params,
            macs,
            receptive_field: (fout[0].rf, fout[1].rf),
            effective_stride: (fout[0].jump, fout[1].jump),
            leaf,
        }
    }
}

/// Along one axis: the input pixels one element sees, the input pixels between neighbouring
/// elements, and how many positions the map has (1 when it has no spatial axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    rf: usize,
    jump: usize,
    extent: usize,
}

impl Field {
    /// After a window of `k` taps spaced `d` apart, moved by `s`.
    fn window(self, k: usize, s: usize, d: usize, extent: usize) -> Field {
        Field {
            rf: self.rf + k.saturating_sub(1) * d * self.jump,
            jump: self.jump * s,
            extent,
        }
    }

    /// Every position at once.
    fn union(self) -> Field {
        Field {
            rf: self.rf + self.extent.saturating_sub(1) * self.jump,
            jump: self.jump * self.extent.max(1),
            extent: 1,
        }
    }
}

/// PyTorch's adaptive pooling windows along an axis of `n` cells pooled to `o`: the largest
/// window (`ceil((i+1) n / o) - floor(i n / o)`) and the step between window starts.
fn adaptive_window(n: usize, o: usize) -> (usize, usize) {
    if o == 0 || n == 0 {
        return (1, 1);
    }
    let k = (0..o)
        .map(|i| ((i + 1) * n).div_ceil(o) - i * n / o)
        .max()
        .unwrap_or(1);
    (k, (n / o).max(1))
}

/// The spatial size `(h, w)` of a `[N, C, H, W]` shape.
fn spatial(shape: &Shape) -> Option<[usize; 2]> {
    match shape.dims() {
        [_, _, h, w] => Some([*h, *w]),
        _ => None,
    }
}

/// [`forward_child`] for an input the caller reads no more (an intermediate it computed
/// itself): once the child has read `x`, it is released (see `Var::release`), so the tape frees
/// it now if backward needs it not, or once backward has passed it.
pub fn forward_consuming<'t, M: Module + ?Sized>(
    name: &str,
    child: &mut M,
    x: Var<'t>,
) -> Result<Var<'t>> {
    let y = forward_child(name, child, x)?;
    Ok(consumed(x, y))
}

/// `y`, computed from `x`, after releasing `x` (unless `y` is `x`): for the ops between layers
/// (`bn(x).relu()`) and after a layer whose input is read no more
/// (`consumed(y, self.bn.forward(y)?)`).
pub fn consumed<'t>(x: Var<'t>, y: Var<'t>) -> Var<'t> {
    if x.id() != y.id() {
        x.release();
    }
    y
}

/// Runs `child.forward(x)` as the child named `name` of the running module. A derived module
/// calls its children directly and needs none of this; a hand-written container whose
/// `visit_modules` lists no children names them with it in summaries, and a hand-written leaf
/// that does not report itself (through [`scope::scoped`]) is seen with it.
pub fn forward_child<'t, M: Module + ?Sized>(
    name: &str,
    child: &mut M,
    x: Var<'t>,
) -> Result<Var<'t>> {
    scoped_as(Some(name), child, x, |c, x| c.forward(x))
}

/// The field of a node: recorded, or the largest among its inputs (1 at the input), with the
/// node's own spatial extent when it is a 4-d map (else its inputs').
fn field_of(rec: &mut Recorder, tape: &Tape, id: NodeId) -> [Field; 2] {
    if let Some(f) = rec.field.get(&id) {
        return *f;
    }
    let info = tape.node_info(id);
    let own = spatial(&info.shape);
    let one = Field {
        rf: 1,
        jump: 1,
        extent: 1,
    };
    let mut best = [one; 2];
    for input in info.inputs {
        let f = field_of(rec, tape, input);
        for a in 0..2 {
            if f[a].rf > best[a].rf || (f[a].rf == best[a].rf && f[a].extent > best[a].extent) {
                best[a] = f[a];
            }
        }
    }
    if let Some(e) = own {
        for a in 0..2 {
            best[a].extent = e[a];
        }
    }
    rec.field.insert(id, best);
    best
}

/// Runs `model` once on zeros of `input_shape`, in evaluation mode (so that batch norm's
/// statistics and dropout's generators are left as they were), and summarises every module that
/// ran. The model is left in the mode it had: in evaluation mode if [`Module::is_training`]
/// says so, else in training mode.
pub fn summary(model: &mut dyn Module, input_shape: &[usize]) -> Result<Summary> {
    let mut rec = Recorder::default();
    model.visit_modules("", &mut |name, id| {
        rec.names.push((name.to_string(), id, false))
    });
    let was_training = model.is_training() != Some(false);
    model.eval();
    // A recording tape keeps each op's inputs, which the receptive field follows.
    let tape = Tape::new();
    let recording = Recording::start(&tape, rec);
    let x = tape.var(Tensor::zeros(input_shape));
    let y = scoped_as(Some(""), model, x, |m, x| m.forward(x));
    let rec = recording.finish();
    if was_training {
        model.train();
    }
    let y = y?;
    let mut rows = rec.rows;
    // The outermost call is the model itself: keep it out of the table.
    if rows.last().is_some_and(|r| r.name.is_empty()) {
        rows.pop();
    }
    let total_macs = rows.iter().filter(|r| r.leaf).map(|r| r.macs).sum();
    Ok(Summary {
        rows,
        input_shape: Shape::new(input_shape),
        output_shape: y.shape(),
        total_params: model.num_parameters(),
        total_macs,
    })
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = |s: &Shape| {
            s.dims()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        };
        let name_w = self
            .layers()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let header = format!(
            "{:<name_w$}  {:<18} {:>18} {:>13} {:>17} {:>9} {:>7}",
            "layer", "type", "output", "params", "MACs", "RF", "stride"
        );
        writeln!(f, "{header}")?;
        writeln!(f, "{}", "-".repeat(header.len()))?;
        for r in self.layers() {
            let rf = if r.receptive_field.0 == r.receptive_field.1 {
                r.receptive_field.0.to_string()
            } else {
                format!("{}x{}", r.receptive_field.0, r.receptive_field.1)
            };
            writeln!(
                f,
                "{:<name_w$}  {:<18} {:>18} {:>13} {:>17} {:>9} {:>7}",
                r.name,
                r.type_name,
                shape(&r.output_shape),
                group(r.params as u64),
                group(r.macs),
                rf,
                r.effective_stride.0
            )?;
        }
        writeln!(f, "{}", "-".repeat(header.len()))?;
        writeln!(
            f,
            "input {}  output {}",
            shape(&self.input_shape),
            shape(&self.output_shape)
        )?;
        writeln!(f, "total parameters {}", group(self.total_params as u64))?;
        write!(f, "total MACs {}", group(self.total_macs))
    }
}
