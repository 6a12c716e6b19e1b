//! Layers holding parameters and the parameter-free ones, as modules.

mod conv;
mod dropout;
mod norm;
mod pool;

pub use conv::Conv2d;
pub use dropout::Dropout;
pub use norm::{BatchNorm2d, LocalResponseNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
