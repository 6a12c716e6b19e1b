//! softmax and log_softmax: compositions that subtract the maximum first, so inputs of ±1000
//! neither overflow nor lose the result.

use crate::error::Result;
use crate::tape::Var;

impl<'t> Var<'t> {
    /// `log(softmax(x))` along `axis`: `x - m - log(sum(exp(x - m)))` with `m` the (detached)
    /// maximum; the shift cancels in the gradient, so detaching it changes nothing but cost.
    pub fn log_softmax(self, axis: isize) -> Result<Var<'t>> {
        self.shape().axis("log_softmax", axis)?;
        let m = self.constant(self.value().max(&[axis], true)?);
        let shifted = self.sub(m)?;
        let lse = shifted.exp().sum(&[axis], true)?.log();
        shifted.sub(lse)
    }

    /// `exp(x) / sum(exp(x))` along `axis`, computed as `exp(x - m) / sum(exp(x - m))`.
    pub fn softmax(self, axis: isize) -> Result<Var<'t>> {
        self.shape().axis("softmax", axis)?;
        let m = self.constant(self.value().max(&[axis], true)?);
        let e = self.sub(m)?.exp();
        e.div(e.sum(&[axis], true)?)
    }
}
