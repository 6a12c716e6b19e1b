//! tapegrad-nn: modules, layers, losses, optimisers, initialisers, checkpoints and data.

pub mod data;
pub mod metrics;
pub mod module;

pub use module::{Entry, Module, Sequential};
