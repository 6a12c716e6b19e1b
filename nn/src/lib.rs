//! tapegrad-nn: modules, layers, losses, optimisers, initialisers, checkpoints and data.

pub mod checkpoint;
pub mod data;
pub mod init;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod module;
pub mod optim;
pub mod study;
pub mod summary;
pub mod train;

pub use module::{Entry, LayerInfo, Module, Sequential};
pub use optim::Optimizer;
pub use summary::{consumed, forward_child, forward_consuming, summary, Summary, SummaryRow};
