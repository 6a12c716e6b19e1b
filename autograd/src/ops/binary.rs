//! Broadcasting binary primitives. The gradient of an operand that was broadcast is summed back
//! to its own shape (`sum_to`), the adjoint of broadcasting.

use crate::error::Result;
use crate::grads;
use crate::tape::{Op, Reads, Var};
use crate::tensor::Tensor;

op!(
    ADD = "add",
    "self: grad.sum_to(self); other: grad.sum_to(other)"
);
op!(
    SUB = "sub",
    "self: grad.sum_to(self); other: -grad.sum_to(other)"
);
op!(
    MUL = "mul",
    "self: (grad * other).sum_to(self); other: (grad * self).sum_to(other)"
);
op!(
    DIV = "div",
    "self: (grad / other).sum_to(self); other: -(grad * result / other).sum_to(other)"
);
op!(MAXIMUM = "maximum", "self: (grad * w).sum_to(self); other: (grad * (1 - w)).sum_to(other), w = (self > other) + (self == other) / 2");
op!(MINIMUM = "minimum", "self: (grad * w).sum_to(self); other: (grad * (1 - w)).sum_to(other), w = (self < other) + (self == other) / 2");
op!(
    WHERE = "where",
    "mask: none; a: where(mask, grad, 0).sum_to(a); b: where(mask, 0, grad).sum_to(b)"
);

impl<'t> Var<'t> {
    /// `a + b` with broadcasting. Rule: [`ADD`].
    pub fn add(self, other: Var<'t>) -> Result<Var<'t>> {
        let v = self.value().add(&other.value())?;
        self.tape()
            .record_reading(ADD, &[self, other], v, Reads::NOTHING, |c| {
                let g = c.grad();
                Ok(grads![
                    g.sum_to(&c.input(0).shape())?,
                    g.sum_to(&c.input(1).shape())?
                ])
            })
    }

    /// `a - b` with broadcasting. Rule: [`SUB`].
    pub fn sub(self, other: Var<'t>) -> Result<Var<'t>> {
        let v = self.value().sub(&other.value())?;
        self.tape()
            .record_reading(SUB, &[self, other], v, Reads::NOTHING, |c| {
                let g = c.grad();
                Ok(grads![
                    g.sum_to(&c.input(0).shape())?,
                    g.neg().sum_to(&c.input(1).shape())?
                ])
            })
    }

    /// `a * b` with broadcasting. Rule: [`MUL`].
    pub fn mul(self, other: Var<'t>) -> Result<Var<'t>> {
        let v = self.value().mul(&other.value())?;
        let reads = Reads::ALL_INPUTS;
        self.tape()
            .record_reading(MUL, &[self, other], v, reads, |c| {
                let (a, b, g) = (c.input(0), c.input(1), c.grad());
                let ga = if c.needs(0) {
                    Some(g.mul(b)?.sum_to(&a.shape())?)
                } else {
                    None
                };
                let gb = if c.needs(1) {
                    Some(g.mul(a)?.sum_to(&b.shape())?)
                } else {
                    None
                };
                Ok(grads![ga, gb])
            })
    }

    /// `a / b` with broadcasting. Rule: [`DIV`].
    pub fn div(self, other: Var<'t>) -> Result<Var<'t>> {
        let v = self.value().div(&other.value())?;
        // `a` itself is never read: its gradient is `g / b`.
        let reads = Reads::inputs(&[1]).and_result();
        self.tape()
            .record_reading(DIV, &[self, other], v, reads, |c| {
                let (a, b, g) = (c.input(0), c.input(1), c.grad());
                let ga = if c.needs(0) {
                    Some(g.div(b)?.sum_to(&a.shape())?)
                } else {
                    None
                };
                let gb = if c.needs(1) {
                    Some(g.mul(c.result())?.div(b)?.neg().sum_to(&b.shape())?)
                } else {
                    None
                };
                Ok(grads![ga, gb])
            })
    }

    /// Elementwise maximum with broadcasting. On ties the gradient is split evenly between the
    /// operands (as PyTorch).
    pub fn maximum(self, other: Var<'t>) -> Result<Var<'t>> {
        self.pick(other, MAXIMUM, |a, b| a.maximum(b), |a, b| a.gt(b))
    }

    /// Elementwise minimum with broadcasting; ties split the gradient evenly.
    pub fn minimum(self, other: Var<'t>) -> Result<Var<'t>> {
        self.pick(other, MINIMUM, |a, b| a.minimum(b), |a, b| a.lt(b))
    }

    fn pick(
        self,
        other: Var<'t>,
        op: Op,
        f: fn(&Tensor, &Tensor) -> Result<Tensor>,
        wins: fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Var<'t>> {
        let v = f(&self.value(), &other.value())?;
        let reads = Reads::ALL_INPUTS;
        self.tape()
            .record_reading(op, &[self, other], v, reads, move |c| {
                let (a, b) = (c.input(0), c.input(1));
                let (av, bv) = (a.value(), b.value());
                // Weight of `a` in each element: 1 where it wins, 1/2 on ties, 0 where it loses.
                let wa = wins(&av, &bv)?.add(&av.eq_mask(&bv)?.mul_scalar(0.5))?;
                let wb = wa.neg().add_scalar(1.0);
                let g = c.grad();
                Ok(grads![
                    g.mul(c.tape().input(wa))?.sum_to(&a.shape())?,
                    g.mul(c.tape().input(wb))?.sum_to(&b.shape())?
                ])
            })
    }

    /// `where(mask, a, b)`: `a` where `mask` is non-zero, else `b`; all three broadcast. The
    /// mask gets no gradient.
    pub fn where_cond(mask: Var<'t>, a: Var<'t>, b: Var<'t>) -> Result<Var<'t>> {
        let v = Tensor::where_cond(&mask.value(), &a.value(), &b.value())?;
        // The mask only: `a` and `b` are needed for their shapes.
        let reads = Reads::inputs(&[0]);
        a.tape()
            .record_reading(WHERE, &[mask, a, b], v, reads, |c| {
                let (m, g) = (c.input(0), c.grad());
                let zero = c.tape().input(Tensor::scalar(0.0));
                let ga = Var::where_cond(m, g, zero)?.sum_to(&c.input(1).shape())?;
                let gb = Var::where_cond(m, zero, g)?.sum_to(&c.input(2).shape())?;
                Ok(grads![None, ga, gb])
            })
    }

    /// `x + s`.
    pub fn add_scalar(self, s: f32) -> Var<'t> {
        self.add(self.constant(Tensor::scalar(s)))
            .expect("a scalar broadcasts to any shape")
    }

    /// `x * s`.
    pub fn mul_scalar(self, s: f32) -> Var<'t> {
        self.mul(self.constant(Tensor::scalar(s)))
            .expect("a scalar broadcasts to any shape")
    }

    /// `x - s`.
    pub fn sub_scalar(self, s: f32) -> Var<'t> {
        self.add_scalar(-s)
    }

    /// `x / s`.
    pub fn div_scalar(self, s: f32) -> Var<'t> {
        self.mul_scalar(1.0 / s)
    }

    /// Mask (constant 1.0 / 0.0) of `self > other`; not differentiable.
    pub fn gt(self, other: Var<'t>) -> Result<Var<'t>> {
        self.compare(other, "gt", Tensor::gt)
    }
    /// Mask of `self >= other`.
    pub fn ge(self, other: Var<'t>) -> Result<Var<'t>> {
        self.compare(other, "ge", Tensor::ge)
    }
    /// Mask of `self < other`.
    pub fn lt(self, other: Var<'t>) -> Result<Var<'t>> {
        self.compare(other, "lt", Tensor::lt)
    }
    /// Mask of `self <= other`.
    pub fn le(self, other: Var<'t>) -> Result<Var<'t>> {
        self.compare(other, "le", Tensor::le)
    }
    /// Mask of `self == other`.
    pub fn eq_mask(self, other: Var<'t>) -> Result<Var<'t>> {
        self.compare(other, "eq_mask", Tensor::eq_mask)
    }

    fn compare(
        self,
        other: Var<'t>,
        op: &'static str,
        f: fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Var<'t>> {
        // A mask records no chain rule, so not through `record`: the same check, done here.
        self.tape().check_own(op, &[self, other])?;
        Ok(self.constant(f(&self.value(), &other.value())?))
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident) => {
        impl<'t> std::ops::$trait for Var<'t> {
            type Output = Var<'t>;
            /// Panics with the op's error message on mismatched shapes or tapes; use the named
            /// method for a `Result`.
            fn $method(self, rhs: Var<'t>) -> Var<'t> {
                Var::$method(self, rhs).unwrap_or_else(|e| panic!("{e}"))
            }
        }
        impl<'t> std::ops::$trait<f32> for Var<'t> {
            type Output = Var<'t>;
            fn $method(self, rhs: f32) -> Var<'t> {
                Var::$method(self, self.constant(Tensor::scalar(rhs))).expect("a scalar broadcasts")
            }
        }
        impl<'t> std::ops::$trait<Var<'t>> for f32 {
            type Output = Var<'t>;
            fn $method(self, rhs: Var<'t>) -> Var<'t> {
                Var::$method(rhs.constant(Tensor::scalar(self)), rhs).expect("a scalar broadcasts")
            }
        }
    };
}
operator!(Add, add);
operator!(Sub, sub);
operator!(Mul, mul);
operator!(Div, div);

impl<'t> std::ops::Neg for Var<'t> {
    type Output = Var<'t>;
    fn neg(self) -> Var<'t> {
        Var::neg(self)
    }
}
