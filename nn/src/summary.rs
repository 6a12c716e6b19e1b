//! `summary(model, input_shape)`: one row per layer with its output shape, parameters,
//! multiply-accumulates, receptive field and effective stride (the lecture's design figures).
//!
//! Containers run their children through [`forward_child`], which names them (dotted, as the
//! state_dict) and, while a summary is being taken, records each call. The receptive field is
//! followed through the tape, per axis, as (field, jump, extent): a windowed layer grows the
//! field by `(k - 1) * dilation * jump` and multiplies the jump (the effective stride) by its
//! stride; adaptive pooling does the same with its largest window (global pooling: the whole
//! map, `k` = its size); a fully connected layer mixes every position of its input, so its field
//! is the union of them all, `field + (extent - 1) * jump`, where the extent is the spatial size
//! of the last 4-d map before a flatten. Any other op passes on the largest field among its
//! inputs (a residual join, a concat of inception branches). Fields count padding, as is usual:
//! they may exceed the input; from global pooling or a fully connected layer on, they cover at
//! least the whole input.

use crate::module::{Entry, LayerInfo, Module};
use std::cell::RefCell;
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
    /// Whether the module ran no child through `forward_child`.
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

#[derive(Default)]
struct Recorder {
    path: Vec<String>,
    rows: Vec<SummaryRow>,
    /// Receptive field, jump and spatial extent per node, per axis.
    field: HashMap<NodeId, [Field; 2]>,
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

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
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
/// (`bn(x).relu()`) what [`forward_consuming`] is for layers.
pub fn consumed<'t>(x: Var<'t>, y: Var<'t>) -> Var<'t> {
    if x.id() != y.id() {
        x.release();
    }
    y
}

/// Runs `child.forward(x)` as the child named `name` of the current module.
pub fn forward_child<'t, M: Module + ?Sized>(
    name: &str,
    child: &mut M,
    x: Var<'t>,
) -> Result<Var<'t>> {
    let active = RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        match r.as_mut() {
            Some(rec) => {
                rec.path.push(name.to_string());
                true
            }
            None => false,
        }
    });
    if !active {
        return child.forward(x);
    }
    let first_row = RECORDER.with(|r| r.borrow().as_ref().map_or(0, |rec| rec.rows.len()));
    let y = child.forward(x);
    let mut params = 0;
    child.visit_mut("", &mut |_, e| {
        if let Entry::Param(p) = e {
            params += p.value().numel();
        }
    });
    let info = child.describe();
    let type_name = child.type_name();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let rec = r.as_mut().expect("the recorder is active");
        let name = rec.path.join(".");
        rec.path.pop();
        let Ok(y) = &y else { return };
        let leaf = rec.rows.len() == first_row;
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
        rec.rows.push(SummaryRow {
            depth: name.matches('.').count(),
            name,
            type_name,
            input_shape: x.shape(),
            output_shape: out_shape,
            params,
            macs,
            receptive_field: (fout[0].rf, fout[1].rf),
            effective_stride: (fout[0].jump, fout[1].jump),
            leaf,
        });
    });
    y
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

/// Runs `model` once on zeros of `input_shape` (in evaluation mode, then restores training
/// mode) and summarises every layer it ran through `forward_child`.
pub fn summary(model: &mut dyn Module, input_shape: &[usize]) -> Result<Summary> {
    RECORDER.with(|r| *r.borrow_mut() = Some(Recorder::default()));
    model.eval();
    // A recording tape keeps each op's inputs, which the receptive field follows.
    let tape = Tape::new();
    let x = tape.var(Tensor::zeros(input_shape));
    let y = crate::summary::forward_child("", model, x);
    model.train();
    let rec = RECORDER
        .with(|r| r.borrow_mut().take())
        .expect("the recorder was installed");
    let y = y?;
    let mut rows = rec.rows;
    // The outermost call is the model itself: keep it out of the table.
    rows.pop();
    for r in &mut rows {
        r.name = r.name.trim_start_matches('.').to_string();
        r.depth = r.depth.saturating_sub(1);
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
