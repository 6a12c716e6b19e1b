//! Activations that are compositions of primitives: their derivatives come from the tape.
//! (sigmoid, tanh and relu are primitives, in `unary`.)

use crate::error::Result;
use crate::tape::Var;

impl<'t> Var<'t> {
    /// `x` for `x > 0`, else `slope * x` (slope 0.01 in the lecture). The derivative at 0 is
    /// `slope`, as PyTorch.
    pub fn leaky_relu(self, slope: f32) -> Var<'t> {
        let mask = self.constant(self.value().map(|x| (x > 0.0) as u8 as f32));
        Var::where_cond(mask, self, self.mul_scalar(slope)).expect("same shapes")
    }

    /// Swish (SiLU): `x * sigmoid(x)`. Its derivative `f(x) + sigmoid(x) (1 - f(x))` falls out of
    /// the product rule.
    pub fn swish(self) -> Var<'t> {
        self.mul(self.sigmoid()).expect("same shapes")
    }

    /// ELU: `x` for `x > 0`, else `alpha (e^x - 1)`. The exponential only sees `min(x, 0)` (as
    /// `x * (x <= 0)`), so large inputs cannot overflow into the unused branch, and the
    /// derivative at 0 is `alpha`, as PyTorch.
    pub fn elu(self, alpha: f32) -> Var<'t> {
        let x = self.value();
        let pos = self.constant(x.map(|x| (x > 0.0) as u8 as f32));
        let nonpos = self.constant(x.map(|x| (x <= 0.0) as u8 as f32));
        let neg_branch = self
            .mul(nonpos)
            .expect("same shapes")
            .exp()
            .sub_scalar(1.0)
            .mul_scalar(alpha);
        Var::where_cond(pos, self, neg_branch).expect("same shapes")
    }

    /// The lecture's step function (0 below 0, 1 from 0 on): a constant, its derivative is zero
    /// almost everywhere.
    pub fn step(self) -> Var<'t> {
        self.constant(self.value().map(|x| (x >= 0.0) as u8 as f32))
    }

    /// `x` clamped into `[low, high]` (gradient 1 inside, 0 outside).
    pub fn clamp(self, low: f32, high: f32) -> Result<Var<'t>> {
        let lo = self.constant(crate::Tensor::scalar(low));
        let hi = self.constant(crate::Tensor::scalar(high));
        self.maximum(lo)?.minimum(hi)
    }
}
