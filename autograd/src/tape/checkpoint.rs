//! Checkpointed compositions: a composite op that keeps only its inputs and recomputes its
//! intermediates during backward (activation checkpointing, applied per op).
//!
//! A composition recorded op by op keeps what each op's chain rule reads: a normalisation's
//! centred and scaled copies, a block's inner activations. Recorded through [`Tape::checkpoint`]
//! it is one node whose rule reruns the composition on its inputs and runs backward through
//! that, so its intermediates live only while that node's rule runs. The gradients come from the
//! tape as before; with the whole batch in one piece they are the recorded composition's, bit
//! for bit. A composition whose batch items are independent may also run, forward and backward,
//! on a few items at a time ([`Split::Batch`]), so that no intermediate is ever whole.
//!
//! The price is the composition's forward run again. Where one intermediate is large and cheap
//! (a convolution's unfolded input, before a costly product), [`Var::recomputable`] recomputes
//! that one alone instead.

use super::backward::partial;
use super::{Ctx, InputGrads, Op, Reads, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How a checkpointed composition may be split over the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// In one piece.
    Whole,
    /// The inputs marked in `batched` (bit `i`: input `i`) hold a batch along axis 0 whose items
    /// the composition treats independently, and its result holds the same batch along axis 0:
    /// it may run on `chunk` consecutive items at a time (results then equal the whole
    /// composition's but for the rounding of sums over the batch, such as a weight gradient).
    Batch { batched: u64, chunk: usize },
}

/// The composition of a checkpointed op, run on its inputs (in the order given to
/// [`Tape::checkpoint`]); it records ops only, no parameters.
pub type Composition = dyn for<'a> Fn(&[Var<'a>]) -> Result<Var<'a>>;

impl Split {
    fn batched(&self, i: usize) -> bool {
        match self {
            Split::Whole => false,
            Split::Batch { batched, .. } => i < 64 && batched & (1 << i) != 0,
        }
    }

    /// `[start, len)` pieces of a batch of `n` items.
    fn pieces(&self, n: usize) -> Vec<(usize, usize)> {
        match *self {
            Split::Batch { chunk, .. } if chunk > 0 && chunk < n => (0..n)
                .step_by(chunk)
                .map(|a| (a, chunk.min(n - a)))
                .collect(),
            _ => vec![(0, n)],
        }
    }
}

impl Tape {
    /// Records the composition `f` of `inputs` as one node named `op` that keeps only its inputs
    /// and result: backward reruns `f` on the inputs and differentiates through that. The
    /// forward runs with recording off, in pieces of the batch when `split` allows, and keeps
    /// no intermediate; when no input needs a gradient the result is a constant.
    ///
    /// Trades compute for memory as activation checkpointing does: worth it when the
    /// intermediates are large and cheap to recompute (an unfolded image before a product).
    /// `f` must compute the same values each time it runs (no randomness).
    ///
    /// ```
    /// use tapegrad_autograd::{tape::Split, Op, Tape, Tensor};
    /// const SOFTPLUS: Op = Op::new("softplus", "a checkpointed composition");
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::from_slice(&[-1.0, 0.0, 2.0]));
    /// // softplus(x) = log(1 + e^x), whose derivative is sigmoid(x)
    /// let y = tape
    ///     .checkpoint(SOFTPLUS, &[x], Split::Whole, |v| Ok(v[0].exp().add_scalar(1.0).log()))
    ///     .unwrap();
    /// let g = y.sum(&[], false).unwrap().backward().unwrap().get(x).unwrap();
    /// let want = x.value().map(|x| 1.0 / (1.0 + (-x).exp()));
    /// assert!(g.to_vec().iter().zip(want.to_vec()).all(|(a, b)| (a - b).abs() < 1e-6));
    /// ```
    pub fn checkpoint<'t, F>(
        &'t self,
        op: Op,
        inputs: &[Var<'t>],
        split: Split,
        f: F,
    ) -> Result<Var<'t>>
    where
        F: for<'a> Fn(&[Var<'a>]) -> Result<Var<'a>> + 'static,
    {
        self.check_own(op.name, inputs)?;
        let values: Vec<Tensor> = inputs.iter().map(|v| v.value()).collect();
        let n = batch_size(op, &values, &split)?;
        let value = self.no_grad(|| forward_in_pieces(self, op, &values, &split, n, &f))?;
        self.record_composition(op, inputs, value, split, f)
    }

    /// Records `value`, which a fused kernel computed, as the result of the composition `f` of
    /// `inputs`: a node that keeps its inputs and whose rule reruns `f` on them and
    /// differentiates through it, as [`Tape::checkpoint`]'s does. So a fused kernel gives its
    /// speed forward, needs no rule of its own, and a recorded backward through it has the
    /// composition's derivatives. `value` must be what `f` computes, up to rounding: the
    /// kernel's tests check it against the composition. When no input needs a gradient (or the
    /// tape is not recording) `f` never runs and `value` is a constant.
    pub fn record_fused<'t, F>(
        &'t self,
        op: Op,
        inputs: &[Var<'t>],
        value: Tensor,
        f: F,
    ) -> Result<Var<'t>>
    where
        F: for<'a> Fn(&[Var<'a>]) -> Result<Var<'a>> + 'static,
    {
        self.check_own(op.name, inputs)?;
        self.record_composition(op, inputs, value, Split::Whole, f)
    }

    /// `value` as the result of the composition `f` of `inputs`: a node whose rule reruns `f`
    /// (in pieces as `split` allows) and differentiates through it, or a constant named `op`
    /// when no input needs a gradient.
    fn record_composition<'t, F>(
        &'t self,
        op: Op,
        inputs: &[Var<'t>],
        value: Tensor,
        split: Split,
        f: F,
    ) -> Result<Var<'t>>
    where
        F: for<'a> Fn(&[Var<'a>]) -> Result<Var<'a>> + 'static,
    {
        let needs_grad = self.is_recording() && inputs.iter().any(|v| v.requires_grad());
        if !needs_grad {
            return Ok(self.input_as(op, value));
        }
        self.record_reading(op, inputs, value, Reads::ALL_INPUTS, move |c| {
            recompute(c, op, &split, &f)
        })
    }

    /// A constant named `op`.
    fn input_as(&self, op: Op, value: Tensor) -> Var<'_> {
        let v = self.input(value);
        self.nodes.borrow_mut()[v.id().index()].op = op;
        v
    }
}

/// The batch size of the inputs `split` marks (all must agree), or 1 for `Split::Whole`.
fn batch_size(op: Op, values: &[Tensor], split: &Split) -> Result<usize> {
    let mut n = None;
    for (i, v) in values.iter().enumerate() {
        if !split.batched(i) {
            continue;
        }
        let d = v.dims().first().copied().ok_or_else(|| {
            Error::invalid(
                op.name,
                format!("batched input {i} is a scalar, not a batch"),
            )
        })?;
        if n.is_some_and(|n| n != d) {
            let shapes: Vec<&crate::Shape> = values.iter().map(|v| v.shape()).collect();
            return Err(Error::shape(
                op.name,
                &shapes,
                "batched inputs of one batch size (axis 0)",
            ));
        }
        n = Some(d);
    }
    Ok(n.unwrap_or(1))
}

/// The inputs of one piece: batched ones narrowed to `[a, a + len)` along axis 0.
fn piece(values: &[Tensor], split: &Split, (a, len): (usize, usize), whole: bool) -> Vec<Tensor> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if split.batched(i) && !whole {
                v.narrow(0, a, len)
                    .expect("a piece within the checked batch")
            } else {
                v.clone()
            }
        })
        .collect()
}

/// `f` on each piece of the batch (recording off), the results joined along axis 0.
fn forward_in_pieces(
    tape: &Tape,
    op: Op,
    values: &[Tensor],
    split: &Split,
    n: usize,
    f: &Composition,
) -> Result<Tensor> {
    let pieces = split.pieces(n);
    let whole = pieces.len() == 1;
    let mut outs = Vec::with_capacity(pieces.len());
    for &(a, len) in &pieces {
        let mark = tape.len();
        let vars: Vec<Var<'_>> = piece(values, split, (a, len), whole)
            .into_iter()
            .map(|t| tape.input(t))
            .collect();
        let out = f(&vars).map(|y| y.value());
        tape.truncate(mark);
        let out = out?;
        if !whole && out.dims().first() != Some(&len) {
            return Err(Error::shape(
                op.name,
                &[out.shape()],
                format!("a composition split over the batch to give {len} items along axis 0"),
            ));
        }
        outs.push(out);
    }
    if whole {
        return Ok(outs.pop().expect("one piece"));
    }
    let parts: Vec<&Tensor> = outs.iter().collect();
    Tensor::concat(&parts, 0)
}

/// The chain rule of a checkpointed op: `f` rerun on the inputs (piece by piece when the tape
/// is not recording the backward pass) and differentiated, the gradient of each piece seeded
/// with its share of `grad`.
fn recompute<'a>(c: &Ctx<'a>, op: Op, split: &Split, f: &Composition) -> Result<InputGrads<'a>> {
    let tape = c.tape();
    let count = c.inputs.len();
    if tape.is_recording() {
        // create_graph: the rerun is recorded on the inputs themselves, so the gradients can be
        // differentiated again.
        let mark = tape.len();
        let vars: Vec<Var<'a>> = (0..count).map(|i| c.input(i)).collect();
        let y = f(&vars)?;
        let (_, below) = partial(tape, y.id(), c.grad(), mark)?;
        // An input given twice gets its whole gradient once.
        return Ok((0..count)
            .map(|i| {
                let first = !c.inputs[..i].contains(&c.inputs[i]);
                below.get(&c.inputs[i]).copied().filter(|_| first)
            })
            .collect());
    }
    let values: Vec<Tensor> = (0..count).map(|i| c.input(i).value()).collect();
    let n = batch_size(op, &values, split)?;
    let grad = c.grad().value();
    let pieces = split.pieces(n);
    let whole = pieces.len() == 1;
    let mut batched: Vec<Vec<Tensor>> = vec![Vec::new(); count];
    let mut summed: Vec<Option<Tensor>> = vec![None; count];
    for &(a, len) in &pieces {
        let mark = tape.len();
        let was = tape.set_recording(true);
        let vars: Vec<Var<'a>> = piece(&values, split, (a, len), whole)
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if c.needs(i) {
                    tape.var(t)
                } else {
                    tape.input(t)
                }
            })
            .collect();
        let y = f(&vars);
        tape.set_recording(was);
        let result = y.and_then(|y| {
            let g = if whole {
                grad.clone()
            } else {
                grad.narrow(0, a, len)?
            };
            if g.shape() != &y.shape() {
                return Err(Error::shape(
                    op.name,
                    &[&y.shape(), g.shape()],
                    "the rerun composition to give a result shaped like its gradient",
                ));
            }
            partial(tape, y.id(), tape.input(g), mark)
        });
        let leaves = match result {
            Ok((leaves, _)) => leaves,
            Err(e) => {
                tape.truncate(mark);
                return Err(e);
            }
        };
        for (i, v) in vars.iter().enumerate() {
            if !c.needs(i) {
                continue;
            }
            let g = leaves
                .get(&v.id())
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(v.shape()));
            if split.batched(i) {
                batched[i].push(g);
            } else {
                summed[i] = Some(match summed[i].take() {
                    None => g,
                    Some(s) => s.add(&g)?,
                });
            }
        }
        tape.truncate(mark);
    }
    let mut out = InputGrads::new();
    for i in 0..count {
        let g = if !c.needs(i) {
            None
        } else if split.batched(i) {
            let parts: Vec<&Tensor> = batched[i].iter().collect();
            Some(if parts.len() == 1 {
                parts[0].clone()
            } else {
                Tensor::concat(&parts, 0)?
            })
        } else {
            summed[i].take()
        };
        out.push(g.map(|g| tape.input(g)));
    }
    Ok(out)
}
