//! Reduction primitives: sum, mean and max over any set of axes, and `sum_to`, the adjoint of
//! broadcasting. argmax and top-k are not differentiable: call them on `var.value()`.

use crate::error::Result;
use crate::grads;
use crate::shape::Shape;
use crate::tape::{Reads, Var};
use crate::tensor::Tensor;

op!(
    SUM = "sum",
    "grad.reshape(keepdim shape).broadcast_to(self)"
);
op!(
    MAX = "max",
    "grad.broadcast_to(self) * (self == result) / count(self == result)"
);
op!(
    MAX_GRAD = "max_grad",
    "(grad * (x == max) / count(x == max)).sum(axes, keepdim)"
);
op!(SUM_TO = "sum_to", "grad.broadcast_to(self)");

impl<'t> Var<'t> {
    /// Sum over `axes` (every axis when empty); `keepdim` keeps them as size 1.
    /// Rule: [`SUM`].
    pub fn sum(self, axes: &[isize], keepdim: bool) -> Result<Var<'t>> {
        let x = self.value();
        let v = x.sum(axes, keepdim)?;
        let kept = x.sum(axes, true)?.shape().clone();
        self.tape()
            .record_reading(SUM, &[self], v, Reads::NOTHING, move |c| {
                let g = c.grad().reshape(kept.clone())?;
                Ok(grads![g.broadcast_to(c.input(0).shape())?])
            })
    }

    /// Mean over `axes` (every axis when empty): a sum times 1/count.
    pub fn mean(self, axes: &[isize], keepdim: bool) -> Result<Var<'t>> {
        let ax = self.shape().axes("mean", axes)?;
        let count: usize = ax.iter().map(|&a| self.shape().dim(a)).product();
        Ok(self.sum(axes, keepdim)?.mul_scalar(1.0 / count as f32))
    }

    /// The sum of every element, a scalar (as `Tensor::sum_all` and `torch.sum(x)`): it cannot
    /// fail, so it returns the var itself.
    pub fn sum_all(self) -> Var<'t> {
        self.sum(&[], false)
            .expect("a sum over every axis names no axis that could be out of range")
    }

    /// The mean of every element, a scalar (NaN for an empty var, as PyTorch).
    pub fn mean_all(self) -> Var<'t> {
        self.mean(&[], false)
            .expect("a mean over every axis names no axis that could be out of range")
    }

    /// Maximum over `axes` (every axis when empty). Tie rule: the gradient is split evenly among
    /// the elements equal to the maximum (as `torch.amax`).
    /// Rule: [`MAX`].
    pub fn max(self, axes: &[isize], keepdim: bool) -> Result<Var<'t>> {
        let x = self.value();
        let v = x.max(axes, keepdim)?;
        let axes = axes.to_vec();
        self.tape().record(MAX, &[self], v, move |c| {
            let x = c.input(0);
            let shape = x.shape();
            let kept_shape = shape.reduced(&shape.axes("max", &axes)?, true);
            let kept = c.result().value().reshape(kept_shape.clone())?;
            let g = c.grad().reshape(kept_shape)?;
            Ok(grads![g.spread_max_grad(&x.value(), &kept, &axes)?])
        })
    }

    /// The max rule's kernel as an op of the gradient: `self`, shaped as the kept maximum
    /// `max` of `x`, spread over the elements of `x` equal to their group's maximum (ties share
    /// evenly). One pass (`Tensor::max_backward`) whether or not the backward is recorded; its
    /// own rule, for a recorded backward, is the adjoint: the incoming gradient weighted by the
    /// same shares and summed over each group (the shares are constants: the derivative of a
    /// maximum's position is zero almost everywhere).
    pub fn spread_max_grad(self, x: &Tensor, max: &Tensor, axes: &[isize]) -> Result<Var<'t>> {
        let v = x.max_backward(max, &self.value(), axes)?;
        let (x, max, axes) = (x.clone(), max.clone(), axes.to_vec());
        self.tape()
            .record_reading(MAX_GRAD, &[self], v, Reads::NOTHING, move |c| {
                let hits = x.eq_mask(&max)?;
                let share = hits.div(&hits.sum(&axes, true)?)?;
                Ok(grads![c
                    .grad()
                    .mul(c.tape().input(share))?
                    .sum(&axes, true)?])
            })
    }

    /// Sums a broadcast value back to `shape`: the gradient of every broadcasting op.
    /// Rule: [`SUM_TO`].
    pub fn sum_to(self, shape: &Shape) -> Result<Var<'t>> {
        if &self.shape() == shape {
            return Ok(self);
        }
        let v = self.value().sum_to(shape)?;
        self.tape()
            .record_reading(SUM_TO, &[self], v, Reads::NOTHING, |c| {
                Ok(grads![c.grad().broadcast_to(c.input(0).shape())?])
            })
    }
}
