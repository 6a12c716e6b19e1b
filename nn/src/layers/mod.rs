//! Layers: modules with (or without) parameters, one family per file.

pub mod activation;
pub mod linear;

pub use activation::{
    Flatten, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Swish, Tanh,
};
pub use linear::Linear;
