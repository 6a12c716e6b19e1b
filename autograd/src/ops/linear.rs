//! `linear`: `x Wᵀ + b`, as PyTorch's `F.linear` (weight `[out, in]`, any leading dims on `x`).

use crate::error::{Error, Result};
use crate::tape::Var;
use crate::tensor::Transpose::{No, Yes};

impl<'t> Var<'t> {
    /// `x Wᵀ + b` for `x` of shape `[..., in]`, `weight` `[out, in]` and an optional `bias`
    /// `[out]`; the transpose is read in place (no copy).
    pub fn linear(self, weight: Var<'t>, bias: Option<Var<'t>>) -> Result<Var<'t>> {
        // `record`'s check, under this composition's name (its ops would name themselves).
        self.tape().check_own(
            "linear",
            &crate::ops::present([Some(self), Some(weight), bias]),
        )?;
        let (xs, ws) = (self.shape(), weight.shape());
        let bad = |what: &str| Error::shape("linear", &[&xs, &ws], what.to_string());
        if ws.rank() != 2 || xs.rank() == 0 || xs.dim(xs.rank() - 1) != ws.dim(1) {
            return Err(bad("x [..., in] and weight [out, in]"));
        }
        if let Some(b) = bias {
            if b.shape().dims() != [ws.dim(0)] {
                return Err(Error::shape(
                    "linear",
                    &[&ws, &b.shape()],
                    "a bias of shape [out]",
                ));
            }
        }
        // All leading dims become rows of one matrix product.
        let (inp, out) = (ws.dim(1), ws.dim(0));
        let rows: usize = xs.dims()[..xs.rank() - 1].iter().product();
        let x2 = self.reshape([rows, inp])?;
        let mut dims = xs.dims().to_vec();
        *dims.last_mut().expect("rank >= 1") = out;
        let y = x2.matmul_t(weight, No, Yes)?.reshape(dims)?;
        match bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}
