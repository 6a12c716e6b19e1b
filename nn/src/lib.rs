//! tapegrad-nn: modules, layers, losses, optimisers and schedules, initialisers, state dicts and
//! checkpoints, model summaries.

pub mod checkpoint;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;
pub mod summary;

pub use module::{Entry, LayerInfo, Module, Sequential};
pub use optim::Optimizer;
pub use summary::{consumed, forward_child, forward_consuming, summary, Summary, SummaryRow};
