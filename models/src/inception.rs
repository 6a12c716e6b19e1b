//! Inception modules in both of the lecture's forms, and GoogLeNet's auxiliary classifier
//! (torchvision's names).

use crate::blocks::ConvBnRelu;
use tapegrad_autograd::{Pool2dOptions, Result, Rng, Var};
use tapegrad_nn::layers::{Conv2dConfig, Dropout, Linear, MaxPool2d, ReLU};
use tapegrad_nn::{Module, Sequential};

/// torchvision's BatchNorm eps in GoogLeNet.
pub(crate) const BN_EPS: f32 = 1e-3;

/// The naive inception module: 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side by side,
/// concatenated on channels (so the pool passes all its input channels through).
#[derive(Module)]
pub struct NaiveInception {
    pub branch1: Sequential,
    pub branch3: Sequential,
    pub branch5: Sequential,
    pub pool: MaxPool2d,
}

impl NaiveInception {
    pub fn new(cin: usize, c1: usize, c3: usize, c5: usize, rng: &mut Rng) -> Result<Self> {
        let conv = |k: usize, c: usize, rng: &mut Rng| -> Result<Sequential> {
            Ok(Sequential::new()
                .add(Conv2dConfig::new(cin, c, k).padding(k / 2).init(rng)?)
                .add(ReLU))
        };
        Ok(NaiveInception {
            branch1: conv(1, c1, rng)?,
            branch3: conv(3, c3, rng)?,
            branch5: conv(5, c5, rng)?,
            pool: MaxPool2d(Pool2dOptions::new(3).stride(1).padding(1)),
        })
    }
}

impl NaiveInception {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let b = [
            self.branch1.forward(x)?,
            self.branch3.forward(x)?,
            self.branch5.forward(x)?,
            self.pool.forward(x)?,
        ];
        let y = Var::concat(&b, 1)?;
        b.iter().for_each(|b| b.release());
        Ok(y)
    }
}

/// The inception module with dimension reductions: 1x1 convolutions before the 3x3 and 5x5
/// branches and after the pool. torchvision's names (`branch1` .. `branch4`); its "5x5" branch
/// uses a 3x3 kernel, which `kernel5` reproduces when set to 3 (5 is the paper's).
#[derive(Module)]
pub struct Inception {
    pub branch1: ConvBnRelu,
    pub branch2: Sequential,
    pub branch3: Sequential,
    pub branch4: Sequential,
}

impl Inception {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cin: usize,
        c1: usize,
        c3_reduce: usize,
        c3: usize,
        c5_reduce: usize,
        c5: usize,
        pool_proj: usize,
        kernel5: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        Ok(Inception {
            branch1: ConvBnRelu::new(cin, c1, 1, 1, 0, BN_EPS, rng)?,
            branch2: Sequential::new()
                .add(ConvBnRelu::new(cin, c3_reduce, 1, 1, 0, BN_EPS, rng)?)
                .add(ConvBnRelu::new(c3_reduce, c3, 3, 1, 1, BN_EPS, rng)?),
            branch3: Sequential::new()
                .add(ConvBnRelu::new(cin, c5_reduce, 1, 1, 0, BN_EPS, rng)?)
                .add(ConvBnRelu::new(
                    c5_reduce,
                    c5,
                    kernel5,
                    1,
                    kernel5 / 2,
                    BN_EPS,
                    rng,
                )?),
            branch4: Sequential::new()
                .add(MaxPool2d(
                    Pool2dOptions::new(3).stride(1).padding(1).ceil_mode(true),
                ))
                .add(ConvBnRelu::new(cin, pool_proj, 1, 1, 0, BN_EPS, rng)?),
        })
    }
}

impl Inception {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let b = [
            self.branch1.forward(x)?,
            self.branch2.forward(x)?,
            self.branch3.forward(x)?,
            self.branch4.forward(x)?,
        ];
        let y = Var::concat(&b, 1)?;
        b.iter().for_each(|b| b.release());
        Ok(y)
    }
}

/// An auxiliary classifier (torchvision's `InceptionAux`).
#[derive(Module)]
pub struct InceptionAux {
    pub conv: ConvBnRelu,
    pub fc1: Linear,
    pub fc2: Linear,
    pub dropout: Dropout,
}

impl InceptionAux {
    pub(crate) fn new(cin: usize, num_classes: usize, rng: &mut Rng) -> Result<Self> {
        Ok(InceptionAux {
            conv: ConvBnRelu::new(cin, 128, 1, 1, 0, BN_EPS, rng)?,
            fc1: Linear::new(2048, 1024, rng)?,
            fc2: Linear::new(1024, num_classes, rng)?,
            dropout: Dropout::new(0.7, 3)?,
        })
    }
}

impl InceptionAux {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = x.adaptive_avg_pool2d((4, 4))?;
        let y = self.conv.forward(y)?.flatten(1)?;
        let y = self.fc1.forward(y)?.relu();
        let y = self.dropout.forward(y)?;
        self.fc2.forward(y)
    }
}
