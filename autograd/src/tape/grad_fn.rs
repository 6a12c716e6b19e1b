//! `grad(outputs, inputs, create_graph)`: gradients as values of a function, as PyTorch's
//! `torch.autograd.grad`, rather than a `Grads` to look things up in.

use super::{BackwardOptions, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The gradients of the sum of `outputs` (each a one-element var) with respect to each of
/// `inputs`, in order, as vars. With `create_graph` they carry the recorded backward pass and can
/// be differentiated again (a second derivative is `grad` of a `grad`); without it they are
/// constants. Inputs may be leaves or intermediates. An input that no output depends on is an
/// error naming it (PyTorch's default, `allow_unused=False`).
///
/// ```
/// use tapegrad_autograd::{grad, Tape, Tensor};
/// let tape = Tape::new();
/// let x = tape.var(Tensor::scalar(2.0));
/// let y = x.powf(3.0); // x^3
/// let dy = grad(&[y], &[x], true)?; // 3 x^2 = 12
/// let d2y = grad(&[dy[0]], &[x], false)?; // 6 x = 12
/// assert_eq!((dy[0].item()?, d2y[0].item()?), (12.0, 12.0));
/// # Ok::<(), tapegrad_autograd::Error>(())
/// ```
pub fn grad<'t>(
    outputs: &[Var<'t>],
    inputs: &[Var<'t>],
    create_graph: bool,
) -> Result<Vec<Var<'t>>> {
    let Some((&first, rest)) = outputs.split_first() else {
        return Err(Error::invalid("grad", "needs at least one output"));
    };
    for (i, o) in outputs.iter().enumerate() {
        first.same_tape("grad", *o)?;
        if o.shape().numel() != 1 {
            return Err(Error::invalid(
                "grad",
                format!(
                    "output {i} has shape {}, expected one element (sum it, or seed \
                     backward_with_options with its gradient)",
                    o.shape()
                ),
            ));
        }
    }
    for x in inputs {
        first.same_tape("grad", *x)?;
        x.retain_grad();
    }
    // Several outputs: the gradient of their sum, as PyTorch adds each output's contribution.
    let mut total = first.reshape(crate::Shape::scalar())?;
    for o in rest {
        total = total.add(o.reshape(crate::Shape::scalar())?)?;
    }
    let opts = BackwardOptions {
        create_graph,
        retain_graph: create_graph,
        ..BackwardOptions::default()
    };
    let grads = total.backward_with_options(Tensor::scalar(1.0), opts)?;
    inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            grads.var(*x).ok_or_else(|| {
                Error::invalid(
                    "grad",
                    format!(
                        "input {i} (shape {}) is not used by the outputs, so it has no gradient",
                        x.shape()
                    ),
                )
            })
        })
        .collect()
}
