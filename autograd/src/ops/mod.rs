//! Differentiable ops on `Var`s, one family per file: the forward (a tensor kernel) and the
//! chain rule sit together, with the rule in derivatives.yaml style in each doc comment.
//!
//! Primitives (hand-written derivatives): `unary`, `binary`, `reduce`, `movement`, `matmul`,
//! `unfold`. Compositions (derivatives from the tape): `activation`, `softmax`,
//! `linear`, and the convolution, pooling and normalisation families.

mod activation;
mod batch_norm;
mod binary;
mod conv;
mod dropout;
mod linear;
mod matmul;
mod movement;
mod norm;
mod pool;
mod reduce;
mod softmax;
mod unary;
mod unfold;

/// The gradients of a chain rule, one per input: `grads![a, b]` or `grads![None, Some(b)]`.
#[macro_export]
macro_rules! grads {
    ($($g:expr),* $(,)?) => {
        $crate::tape::InputGrads::from_iter([$($crate::ops::IntoGrad::into_grad($g)),*])
    };
}

/// The inputs that are there, in order: an op's own input, then optional ones (weight, bias).
pub(crate) fn present<'t, const N: usize>(
    vars: [Option<crate::tape::Var<'t>>; N],
) -> Vec<crate::tape::Var<'t>> {
    vars.into_iter().flatten().collect()
}

/// What a chain-rule closure may return for one input.
pub trait IntoGrad<'t> {
    fn into_grad(self) -> Option<crate::tape::Var<'t>>;
}
impl<'t> IntoGrad<'t> for crate::tape::Var<'t> {
    fn into_grad(self) -> Option<crate::tape::Var<'t>> {
        Some(self)
    }
}
impl<'t> IntoGrad<'t> for Option<crate::tape::Var<'t>> {
    fn into_grad(self) -> Option<crate::tape::Var<'t>> {
        self
    }
}

pub use conv::Conv2dOptions;
pub use dropout::DropoutMode;
pub use norm::RunningStats;
pub use pool::{max_pool2d_indices, Pool2dOptions};
