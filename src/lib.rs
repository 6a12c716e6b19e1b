//! tapegrad: reverse-mode automatic differentiation on a tape, and convolutional networks on top.
//!
//! This facade re-exports the workspace crates; `use tapegrad::prelude::*;` brings in what a
//! training step needs.

pub use tapegrad_autograd as autograd;
pub use tapegrad_data as data;
pub use tapegrad_distributed as distributed;
pub use tapegrad_models as models;
pub use tapegrad_nn as nn;
pub use tapegrad_train as train;

/// The everyday names of the crates.
pub mod prelude {
    pub use tapegrad_autograd::gradcheck::{gradcheck_with, GradcheckMode, GradcheckOptions};
    pub use tapegrad_autograd::{
        gradcheck, rng, BackwardOptions, Error, GradcheckReport, Grads, Param, ParamId, Result,
        Rng, Shape, Tape, Tensor, Transpose, Var,
    };
    pub use tapegrad_nn::loss::{Reduction, VarLosses};
    pub use tapegrad_nn::{Entry, Module, Sequential};
}

/// The README's examples, compiled and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
