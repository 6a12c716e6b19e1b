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
use crate::tape::{Ctx, InputGrads, Reads, Var};
use crate::tensor::Transpose::{self, No, Yes};

op!(
    MATMUL = "matmul",
    "self: (grad @ other^T).sum_to(self); other: (self^T @ grad).sum_to(other)"
);
op!(MATMUL_SUM_BATCH = "matmul_sum_batch", "self: (grad @ other^T).sum_to(self); other: (self^T @ grad).sum_to(other), grad broadcast over the batch");

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
        // The rule reads both operands, never the product.
        let reads = Reads::ALL_INPUTS;
        self.tape()
            .record_reading(MATMUL, &[self, other], v, reads, move |c| {
                operand_grads(c, c.grad(), ta, tb)
            })
    }

    /// `sum_i op(a_i) @ op(b_i)` over the batch axes of batched operands, a matrix: the product
    /// a weight broadcast over a batch (a convolution's, a linear layer's over `[B, T, in]`)
    /// gets as its gradient, accumulated in place by one kernel (`Tensor::matmul_t_sum_batch`)
    /// instead of a batch of products and then their sum. Its rule is `matmul_t`'s, with the
    /// gradient broadcast over the batch.
    pub fn matmul_t_sum_batch(
        self,
        other: Var<'t>,
        ta: Transpose,
        tb: Transpose,
    ) -> Result<Var<'t>> {
        let v = self.value().matmul_t_sum_batch(&other.value(), ta, tb)?;
        // The shape of the batch of products: the operands' batch axes broadcast, then `v`'s.
        let (sa, sb) = (self.shape(), other.shape());
        let batch = |s: &Shape| Shape::new(&s.dims()[..s.rank().saturating_sub(2)]);
        let mut full = Shape::broadcast("matmul_t_sum_batch", &batch(&sa), &batch(&sb))?
            .dims()
            .to_vec();
        full.extend_from_slice(v.dims());
        let reads = Reads::ALL_INPUTS;
        self.tape()
            .record_reading(MATMUL_SUM_BATCH, &[self, other], v, reads, move |c| {
                operand_grads(c, c.grad().broadcast_to(Shape::new(&full))?, ta, tb)
            })
    }
}

/// The gradients of `op(a) @ op(b)`, the inputs of `c`, given the gradient `g` of the product
/// (the table at the top of this file).
fn operand_grads<'a>(
    c: &Ctx<'a>,
    g: Var<'a>,
    ta: Transpose,
    tb: Transpose,
) -> Result<InputGrads<'a>> {
    let (a, b) = (c.input(0), c.input(1));
    let summed = |x, y, tx, ty, to: &Shape| summed_product(g, x, y, tx, ty, to);
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
}

/// `op(x) @ op(y)` summed to an operand's shape `to`. An operand broadcast over the whole batch
/// of the gradient `g` (the weights of a convolution) gets the sum of one product per batch
/// item, which `matmul_t_sum_batch` accumulates in place, recorded or not.
fn summed_product<'a>(
    g: Var<'a>,
    x: Var<'a>,
    y: Var<'a>,
    tx: Transpose,
    ty: Transpose,
    to: &Shape,
) -> Result<Var<'a>> {
    if to.rank() == 2 && g.rank() > 2 {
        return x.matmul_t_sum_batch(y, tx, ty);
    }
    x.matmul_t(y, tx, ty)?.sum_to(to)
}
