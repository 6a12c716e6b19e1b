//! tapegrad-models: the lecture's history of CNNs as code a user can train, inspect and load
//! PyTorch weights into: LeNet-5, AlexNet, VGG, GoogLeNet, ResNet, and `summary`; and a small
//! VGG for 28x28 images, the main job's default network.

pub mod alexnet;
pub mod blocks;
mod footprint;
pub mod googlenet;
mod inception;
pub mod lenet;
pub mod resnet;
pub mod small_vgg;
pub mod vgg;
mod zoo;

pub use alexnet::AlexNet;
pub use footprint::{check_file, footprint, Footprint, KeyShape};
pub use googlenet::{GoogLeNet, Inception, NaiveInception};
pub use lenet::{LeNet5, LeNetConfig};
pub use resnet::{BasicBlock, Bottleneck, ResNet, ResNetConfig};
pub use small_vgg::{SmallVgg, SmallVggConfig};
pub use tapegrad_nn::summary::{summary, Summary, SummaryRow};
pub use vgg::Vgg;
pub use zoo::{build, by_name, default_input, lenet_layout, NAMES};
