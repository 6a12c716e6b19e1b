//! `unfold` (im2col) and `fold` (col2im): each is the other's adjoint, so each one's chain rule
//! is the other, and second-order gradients through convolutions and pooling work.

use crate::error::Result;
use crate::grads;
use crate::tape::{Reads, Var};
use crate::tensor::Window2d;

op!(UNFOLD = "unfold", "fold(grad)");
op!(FOLD = "fold", "unfold(grad, pad 0)");

impl<'t> Var<'t> {
    /// im2col: `[N, C, H, W]` to `[N, C*kh*kw, oh*ow]`, cells outside the input reading
    /// `pad_value` (0 for convolution and average pooling, -inf for max pooling).
    /// Rule: [`UNFOLD`] (padding cells are constants and get no gradient).
    pub fn unfold(self, w: &Window2d, pad_value: f32) -> Result<Var<'t>> {
        let v = self.value().unfold(w, pad_value)?;
        let w = *w;
        let cols = self
            .tape()
            .record_reading(UNFOLD, &[self], v, Reads::NOTHING, move |c| {
                Ok(grads![c.grad().fold(&w)?])
            })?;
        Ok(cols.recomputable(move |x| x[0].unfold(&w, pad_value)))
    }

    /// col2im: `[N, C*kh*kw, oh*ow]` to `[N, C, H, W]`, summing overlapping windows.
    /// Rule: [`FOLD`].
    pub fn fold(self, w: &Window2d) -> Result<Var<'t>> {
        let v = self.value().fold(w)?;
        let w = *w;
        self.tape()
            .record_reading(FOLD, &[self], v, Reads::NOTHING, move |c| {
                Ok(grads![c.grad().unfold(&w, 0.0)?])
            })
    }
}
