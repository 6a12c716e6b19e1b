//! Elementwise unary primitives. Each rule is written with var ops, so it can be differentiated
//! again (the sign in `abs`'s rule and the gate in `relu`'s are constants: their derivatives are
//! zero almost everywhere).

use crate::grads;
use crate::tape::{Op, Reads, Var};

op!(NEG = "neg", "grad.neg()");
op!(EXP = "exp", "grad * result");
op!(LOG = "log", "grad / self");
op!(SQRT = "sqrt", "grad / (2 * result)");
op!(ABS = "abs", "grad * self.sgn()");
op!(POWF = "powf", "grad * exponent * self.pow(exponent - 1)");
op!(SIGMOID = "sigmoid", "grad * result * (1 - result)");
op!(TANH = "tanh", "grad * (1 - result^2)");
op!(RELU = "relu", "grad * (result > 0)");
op!(
    PASS_WHERE_POSITIVE = "pass_where_positive",
    "grad.pass_where_positive(of): linear in self, `of` a constant"
);
op!(LOG1P = "log1p", "grad / (1 + self)");
op!(SOFTPLUS = "softplus", "grad * self.sigmoid()");

impl<'t> Var<'t> {
    /// Records a unary op on its input's own tape, where `record`'s same-tape check holds by
    /// construction.
    fn record_unary<F>(self, op: Op, value: crate::tensor::Tensor, reads: Reads, rule: F) -> Var<'t>
    where
        F: for<'a> Fn(&crate::tape::Ctx<'a>) -> crate::Result<crate::tape::InputGrads<'a>>
            + 'static,
    {
        self.tape()
            .record_reading(op, &[self], value, reads, rule)
            .expect("an op's only input is on the tape it records on")
    }

    /// `-x`. Rule: [`NEG`].
    pub fn neg(self) -> Var<'t> {
        let v = self.value().neg();
        self.record_unary(NEG, v, Reads::NOTHING, |c| Ok(grads![c.grad().neg()]))
    }

    /// `e^x`. Rule: [`EXP`].
    pub fn exp(self) -> Var<'t> {
        let v = self.value().exp();
        self.record_unary(EXP, v, Reads::RESULT, |c| {
            Ok(grads![c.grad().mul(c.result())?])
        })
    }

    /// Natural logarithm. Rule: [`LOG`].
    pub fn log(self) -> Var<'t> {
        let v = self.value().log();
        self.record_unary(LOG, v, Reads::inputs(&[0]), |c| {
            Ok(grads![c.grad().div(c.input(0))?])
        })
    }

    /// Square root. Rule: [`SQRT`].
    pub fn sqrt(self) -> Var<'t> {
        let v = self.value().sqrt();
        self.record_unary(SQRT, v, Reads::RESULT, |c| {
            Ok(grads![c.grad().div(c.result().mul_scalar(2.0))?])
        })
    }

    /// `|x|`. Rule: [`ABS`] (the subgradient at 0 is 0, as PyTorch).
    pub fn abs(self) -> Var<'t> {
        let v = self.value().abs();
        self.record_unary(ABS, v, Reads::inputs(&[0]), |c| {
            let x = c.input(0).value();
            let sign = x.map(|x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            });
            Ok(grads![c.grad().mul(c.tape().input(sign))?])
        })
    }

    /// `x^p` for a scalar exponent. Rule: [`POWF`].
    pub fn powf(self, p: f32) -> Var<'t> {
        let v = self.value().powf(p);
        self.record_unary(POWF, v, Reads::inputs(&[0]), move |c| {
            if p == 0.0 {
                return Ok(grads![None]);
            }
            let d = c.input(0).powf(p - 1.0).mul_scalar(p);
            Ok(grads![c.grad().mul(d)?])
        })
    }

    /// `x^2`, as `powf(2)`.
    pub fn square(self) -> Var<'t> {
        self.powf(2.0)
    }

    /// The logistic function `1 / (1 + e^-x)`, a primitive so that its derivative `s(1 - s)`
    /// stays finite where the composition would give inf/inf. Rule: [`SIGMOID`].
    pub fn sigmoid(self) -> Var<'t> {
        let v = self.value().sigmoid();
        self.record_unary(SIGMOID, v, Reads::RESULT, |c| {
            let s = c.result();
            let ds = s.mul(s.neg().add_scalar(1.0))?;
            Ok(grads![c.grad().mul(ds)?])
        })
    }

    /// Hyperbolic tangent. Rule: [`TANH`].
    pub fn tanh(self) -> Var<'t> {
        let v = self.value().tanh();
        self.record_unary(TANH, v, Reads::RESULT, |c| {
            let d = c.result().square().neg().add_scalar(1.0);
            Ok(grads![c.grad().mul(d)?])
        })
    }

    /// `max(x, 0)`. Rule: [`RELU`] (the derivative at 0 is 0, as PyTorch).
    pub fn relu(self) -> Var<'t> {
        let v = self.value().relu();
        self.record_unary(RELU, v, Reads::RESULT, |c| {
            Ok(grads![c.grad().pass_where_positive(&c.result().value())?])
        })
    }

    /// `self` where `of > 0`, else 0 (`of` shaped like `self`): relu's derivative applied to a
    /// gradient in one pass, without a mask tensor (PyTorch's `threshold_backward` at 0). Where
    /// `of <= 0` the result is 0 even for an infinite or NaN `self`. `of` is a constant, so the
    /// op is linear in `self` and its rule is itself.
    pub fn pass_where_positive(self, of: &crate::Tensor) -> crate::Result<Var<'t>> {
        if of.shape() != &self.shape() {
            return Err(crate::Error::shape(
                "pass_where_positive",
                &[&self.shape(), of.shape()],
                "a tensor of the gradient's shape to gate it",
            ));
        }
        let v = self.value().zip_with(
            of,
            "pass_where_positive",
            |g, y| if y > 0.0 { g } else { 0.0 },
        )?;
        let of = of.clone();
        Ok(
            self.record_unary(PASS_WHERE_POSITIVE, v, Reads::NOTHING, move |c| {
                Ok(grads![c.grad().pass_where_positive(&of)?])
            }),
        )
    }

    /// `ln(1 + x)`, accurate for small `x` (where `(1 + x).log()` loses the digits of `x`).
    /// Rule: [`LOG1P`].
    pub fn log1p(self) -> Var<'t> {
        let v = self.value().map(f32::ln_1p);
        self.record_unary(LOG1P, v, Reads::inputs(&[0]), |c| {
            Ok(grads![c.grad().div(c.input(0).add_scalar(1.0))?])
        })
    }

    /// `x^p` for a scalar exponent: PyTorch's name for [`Var::powf`].
    pub fn pow(self, p: f32) -> Var<'t> {
        self.powf(p)
    }

    /// `ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^-|x|)` so that it neither overflows for
    /// large `x` nor loses `e^x` for very negative `x`. A primitive, so that its derivative is
    /// the logistic function everywhere, 1/2 at 0 (the composition through `relu` and `abs`
    /// would give their subgradient 0 there). Rule: [`SOFTPLUS`].
    pub fn softplus(self) -> Var<'t> {
        let v = self.value().map(|x| x.max(0.0) + (-x.abs()).exp().ln_1p());
        self.record_unary(SOFTPLUS, v, Reads::inputs(&[0]), |c| {
            Ok(grads![c.grad().mul(c.input(0).sigmoid())?])
        })
    }
}
