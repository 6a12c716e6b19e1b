//! tapegrad-nn: modules, layers, losses, optimisers and schedules, initialisers, state dicts and
//! checkpoints, model summaries.

// The derive's generated code names this crate `::tapegrad_nn`, here as in its users.
extern crate self as tapegrad_nn;

pub mod checkpoint;
pub mod fields;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;
pub mod summary;

pub use module::{Entry, EntryRef, LayerInfo, Module, ModuleId, Sequential};
pub use optim::Optimizer;
pub use summary::{consumed, forward_child, forward_consuming, summary, Summary, SummaryRow};
/// `#[derive(Module)]`: see [`tapegrad_derive`](https://docs.rs/tapegrad-derive) and the
/// [`module`] documentation.
pub use tapegrad_derive::Module;

/// What the derived code names, re-exported so that a user's crate needs no other dependency.
#[doc(hidden)]
pub mod __derive {
    pub use crate::fields::ModuleField;
    pub use crate::summary::scope::scoped;
    pub use tapegrad_autograd::{Result, Var};

    /// In scope in the derived `forward`: when the struct has no inherent `forward`, the
    /// call `<Self>::forward` meets this trait's method, and the compiler's error names it.
    pub trait WriteAnInherentForwardForDerivedModule {
        fn forward(&mut self, _: NoInherentForward) {}
    }
    impl<T: ?Sized> WriteAnInherentForwardForDerivedModule for T {}

    /// The argument of [`WriteAnInherentForwardForDerivedModule::forward`].
    pub struct NoInherentForward;
}
