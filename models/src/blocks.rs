//! Small building blocks shared by the zoo.

use tapegrad_autograd::{Conv2dOptions, Result, Rng, Var};
use tapegrad_nn::layers::{BatchNorm2d, Conv2d};
use tapegrad_nn::{consumed, forward_child, forward_consuming, Entry, Module};

/// A convolution without bias, batch norm, ReLU: torchvision's GoogLeNet `BasicConv2d`
/// (children `conv`, `bn`).
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

impl ConvBnRelu {
    pub fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bn_eps: f32,
        rng: &mut Rng,
    ) -> Result<Self> {
        let o = Conv2dOptions::default().stride(stride).padding(pad);
        let mut bn = BatchNorm2d::new(cout);
        bn.eps = bn_eps;
        Ok(ConvBnRelu {
            conv: Conv2d::new(cin, cout, k, o, false, rng)?,
            bn,
        })
    }
}

impl Module for ConvBnRelu {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = forward_child("conv", &mut self.conv, x)?;
        let y = forward_consuming("bn", &mut self.bn, y)?;
        Ok(consumed(y, y.relu()))
    }
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv.visit(&format!("{prefix}conv."), f);
        self.bn.visit(&format!("{prefix}bn."), f);
    }
    fn set_training(&mut self, on: bool) {
        self.bn.set_training(on);
    }
}
