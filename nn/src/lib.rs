//! tapegrad-nn: modules, layers, losses, optimisers, initialisers, checkpoints and data.

pub mod layers;
pub mod module;
pub mod summary;

pub use module::{Entry, LayerInfo, Module, Sequential};
pub use summary::{forward_child, summary, Summary, SummaryRow};
