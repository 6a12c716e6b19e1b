//! Small building blocks shared by the zoo.

use tapegrad_autograd::{Conv2dOptions, Result, Rng, Var};
use tapegrad_nn::layers::{BatchNorm2d, Conv2d, Conv2dConfig};
use tapegrad_nn::{consumed, Module};

/// A convolution without bias, batch norm, ReLU: torchvision's GoogLeNet `BasicConv2d`
/// (children `conv`, `bn`).
#[derive(Module)]
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
        let mut bn = BatchNorm2d::new(cout)?;
        bn.eps = bn_eps;
        Ok(ConvBnRelu {
            conv: Conv2dConfig::new(cin, cout, k)
                .options(o)
                .bias(false)
                .init(rng)?,
            bn,
        })
    }
}

impl ConvBnRelu {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.conv.forward(x)?;
        let y = consumed(y, self.bn.forward(y)?);
        Ok(consumed(y, y.relu()))
    }
}
