//! tapegrad-autograd: n-d f32 tensors, a tape that records every op, and reverse-mode backward.
//!
//! ```
//! use tapegrad_autograd::{Tape, Tensor};
//! let tape = Tape::new();
//! let x = tape.var(Tensor::from_slice(&[1.0, 2.0, 3.0]));
//! // y = sum(x^2), so dy/dx = 2x
//! let y = (x * x).sum(&[], false).unwrap();
//! let grads = y.backward().unwrap();
//! assert_eq!(grads.get(x).unwrap().to_vec(), vec![2.0, 4.0, 6.0]);
//! ```

// Var ops return `Result` where the std operator traits cannot; the operators (`a + b`) are
// implemented too and panic with the same message.
#![allow(clippy::should_implement_trait)]

pub mod error;
pub mod gradcheck;
pub mod ops;
pub mod shape;
pub mod tape;
pub mod tensor;
pub mod trace;

pub use error::{Error, IoSource, Result};
pub use gradcheck::{gradcheck, GradcheckMode, GradcheckReport};
pub use ops::{Conv2dOptions, DropoutMode, Pool2dOptions, RunningStats};
pub use shape::Shape;
pub use tape::{
    grad, BackwardOptions, Ctx, Grads, NodeId, Op, OpTime, Param, ParamGradHook, ParamId, Profile,
    Reads, Split, Tape, Var,
};
pub use tensor::{buffer_pool_stats, rng, set_buffer_pool_limit, Rng, Tensor, Transpose, Window2d};
