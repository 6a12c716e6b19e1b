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

/// The everyday names of the crates: what a training script, a custom model and a custom
/// primitive need, in one `use tapegrad::prelude::*;`.
pub mod prelude {
    pub use tapegrad_autograd::gradcheck::{gradcheck_with, GradcheckMode, GradcheckOptions};
    pub use tapegrad_autograd::{
        gradcheck, grads, rng, BackwardOptions, Conv2dOptions, DropoutMode, Error, GradcheckReport,
        Grads, Op, Param, ParamId, Pool2dOptions, Result, Rng, Shape, Tape, Tensor, Transpose, Var,
    };
    pub use tapegrad_data::{DataLoader, Dataset, LoaderOptions};
    pub use tapegrad_nn::checkpoint::{self, load_checkpoint, save_checkpoint, Checkpoint};
    pub use tapegrad_nn::layers::{
        AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten,
        Identity, LeakyReLU, Linear, LinearConfig, MaxPool2d, ReLU, Sigmoid, Softmax, Tanh,
    };
    pub use tapegrad_nn::loss::{CrossEntropyLoss, Reduction, VarLosses};
    pub use tapegrad_nn::optim::{
        Adam, AdamConfig, AdamW, CosineAnnealingLR, GradMap, LrScheduler, MultiStepLR, Optimizer,
        RmsProp, RmsPropConfig, Sgd, SgdConfig, StepLR,
    };
    pub use tapegrad_nn::{summary, Entry, EntryRef, Module, Sequential};
}

/// The README's examples, compiled and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
