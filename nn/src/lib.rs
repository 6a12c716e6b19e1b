//! tapegrad-nn: modules, layers, losses, optimisers, initialisers, checkpoints and data.

pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;

pub use module::{Entry, Module, Sequential};
pub use optim::Optimizer;
