//! Layers: modules with (or without) parameters, one family per file.

pub mod activation;
mod conv;
mod dropout;
pub mod linear;
mod norm;
mod pool;

pub use activation::{
    Flatten, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Swish, Tanh,
};
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use linear::{Linear, LinearConfig};
pub use norm::{BatchNorm2d, LocalResponseNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
