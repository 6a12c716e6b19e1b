//! Matrix multiplication: one primitive, `matmul_t`, that reads either operand transposed, so
//! that its own chain rule needs no transposed copies:
//!
//! | forward      | dA                 | dB                 |
//! |--------------|--------------------|--------------------|
//! | C = A B      | G Bᵀ               | Aᵀ G               |
//! | C = A Bᵀ     | G B                | Gᵀ A               |
//! | C = Aᵀ B     | B Gᵀ               | A G                |
//! | C = Aᵀ Bᵀ    | Bᵀ Gᵀ              | Gᵀ Aᵀ              |
//!
//! followed by `sum_to` over batch dimensions that were broadcast.

use crate::error::Result;
use crate::grads;
use crate::shape::Shape;
use crate::tape::{Ctx, Op, Var};
use crate::tensor::Transpose::{self, No, Yes};

pub const MATMUL: Op = Op::new(
    "matmul",
    "self: (grad @ other^T).sum_to(self); other: (self^T @ grad).sum_to(other)",
);

impl<'t> Var<'t> {
    /// `torch.matmul`: 2-d, batched with broadcast batch dimensions, 1-d operands promoted.
    pub fn matmul(self, other: Var<'t>) -> Result<Var<'t>> {
        let (ra, rb) = (self.rank(), other.rank());
        if ra >= 2 && rb >= 2 {
            return self.matmul_t(other, No, No);
        }
        // Promote 1-d operands, multiply, then drop the added axes (checks via the tensor op).
        let out_shape = self.value().matmul(&other.value())?.shape().clone();
        let a = if ra == 1 { self.unsqueeze(0)? } else { self };
        let b = if rb == 1 { other.unsqueeze(1)? } else { other };
        a.matmul_t(b, No, No)?.reshape(out_shape)
    }

    /// Batched `op(a) @ op(b)` for operands of rank >= 2, `op` transposing the last two axes when
    /// asked: the primitive behind `matmul` and `linear`.
    pub fn matmul_t(self, other: Var<'t>, ta: Transpose, tb: Transpose) -> Result<Var<'t>> {
        let v = self.value().matmul_t(&other.value(), ta, tb)?;
        self.tape().record(MATMUL, &[self, other], v, move |c| {
            let (a, b, g) = (c.input(0), c.input(1), c.grad());
            let summed = |x, y, tx, ty, to: &Shape| summed_product(c, x, y, tx, ty, to);
            let ga = if c.needs(0) {
                let to = a.shape();
                Some(match (ta, tb) {
                    (No, No) => summed(g, b, No, Yes, &to)?,
                    (No, Yes) => summed(g, b, No, No, &to)?,
                    (Yes, No) => summed(b, g, No, Yes, &to)?,
                    (Yes, Yes) => summed(b, g, Yes, Yes, &to)?,
                })
            } else {
                None
            };
            let gb = if c.needs(1) {
                let to = b.shape();
                Some(match (ta, tb) {
                    (No, No) => summed(a, g, Yes, No, &to)?,
                    (No, Yes) => summed(g, a, Yes, No, &to)?,
                    (Yes, No) => summed(a, g, No, No, &to)?,
                    (Yes, Yes) => summed(g, a, Yes, Yes, &to)?,
                })
            } else {
                None
            };
            Ok(grads![ga, gb])
        })
    }
}

/// `op(x) @ op(y)` summed to an operand's shape `to`. An operand broadcast over the whole batch
/// (the weights of a convolution) gets the sum of one product per batch item; in a first-order
/// backward that sum is accumulated in place by one kernel, the same value as the composition,
/// which runs when the backward is itself recorded (`create_graph`).
fn summed_product<'a>(
    c: &Ctx<'a>,
    x: Var<'a>,
    y: Var<'a>,
    tx: Transpose,
    ty: Transpose,
    to: &Shape,
) -> Result<Var<'a>> {
    if to.rank() == 2 && c.grad().rank() > 2 && !c.tape().is_recording() {
        let v = x.value().matmul_t_sum_batch(&y.value(), tx, ty)?;
        return Ok(c.tape().input(v));
    }
    x.matmul_t(y, tx, ty)?.sum_to(to)
}
