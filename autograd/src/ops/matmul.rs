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
use crate::tape::{Op, Var};
use crate::tensor::Transpose::{self, No, Yes};

pub const MATMUL: Op = Op::new(
    "matmul",
    "self: (grad @ other^T).sum_to(self); other: (self^T @ grad).sum_to(other)",
);

impl<'t> Var<'t> {
    /// `torch.matmul`: 2-d, batched with broadcast batch dimensions, 1-d operands promoted.
    pub fn matmul(self, other: Var<'t>) -> Result<Var<'t>> {
        self.same_tape("matmul", other)?;
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
        self.same_tape("matmul", other)?;
        let v = self.value().matmul_t(&other.value(), ta, tb)?;
        Ok(self.tape().record(MATMUL, &[self, other], v, move |c| {
            let (a, b, g) = (c.input(0), c.input(1), c.grad());
            let ga = if c.needs(0) {
                let full = match (ta, tb) {
                    (No, No) => g.matmul_t(b, No, Yes)?,
                    (No, Yes) => g.matmul_t(b, No, No)?,
                    (Yes, No) => b.matmul_t(g, No, Yes)?,
                    (Yes, Yes) => b.matmul_t(g, Yes, Yes)?,
                };
                Some(full.sum_to(&a.shape())?)
            } else {
                None
            };
            let gb = if c.needs(1) {
                let full = match (ta, tb) {
                    (No, No) => a.matmul_t(g, Yes, No)?,
                    (No, Yes) => g.matmul_t(a, Yes, No)?,
                    (Yes, No) => a.matmul_t(g, No, No)?,
                    (Yes, Yes) => g.matmul_t(a, Yes, Yes)?,
                };
                Some(full.sum_to(&b.shape())?)
            } else {
                None
            };
            Ok(grads![ga, gb])
        }))
    }
}
