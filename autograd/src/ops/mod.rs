//! Differentiable ops on `Var`s, one family per file: the forward (a tensor kernel) and the
//! chain rule sit together; each op's rule text, in derivatives.yaml style, is written once in
//! its `op!` constant, which the method's doc links to.
//!
//! Primitives (hand-written derivatives): `unary`, `binary`, `reduce`, `movement`, `matmul`,
//! `unfold`. Compositions (derivatives from the tape): `activation`, `softmax`,
//! `linear`, and the convolution, pooling and normalisation families.

/// An op's name and rule text, written once: the constant the tape records (traces and graph
/// exports print its text) and, from the same text, the constant's documentation, to which each
/// method's doc links. The rule itself, the closure, sits beside the forward in the method.
macro_rules! op {
    ($id:ident = $name:literal, $rule:literal) => {
        #[doc = concat!("Node `", $name, "`, rule `", $rule, "`.")]
        pub const $id: $crate::tape::Op = $crate::tape::Op::new($name, $rule);
    };
}

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

/// The ops the tape records, each with its name and rule text (the nodes of traces and graph
/// exports).
pub use self::{
    batch_norm::{
        BATCH_NORM_BIAS_GRAD, BATCH_NORM_INPUT_GRAD, BATCH_NORM_TRAIN, BATCH_NORM_WEIGHT_GRAD,
    },
    binary::{ADD, DIV, MAXIMUM, MINIMUM, MUL, SUB, WHERE},
    conv::{CONV2D, CONV_TRANSPOSE2D},
    matmul::{MATMUL, MATMUL_SUM_BATCH},
    movement::{BROADCAST_TO, CONCAT, NARROW, PAD, PERMUTE, RESHAPE},
    norm::{BATCH_NORM, LOCAL_RESPONSE_NORM},
    pool::{ADAPTIVE_AVG_POOL2D, AVG_POOL2D, MAX_POOL2D},
    reduce::{MAX, MAX_GRAD, SUM, SUM_TO},
    unary::{ABS, EXP, LOG, LOG1P, NEG, POWF, RELU, SIGMOID, SOFTPLUS, SQRT, TANH},
    unfold::{FOLD, UNFOLD},
};

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
