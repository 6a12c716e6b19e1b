//! GoogLeNet: inception modules in both of the lecture's forms, and the 22-layer network with
//! torchvision's names (auxiliary classifiers optional, off by default).

use crate::blocks::ConvBnRelu;
use crate::inception::BN_EPS;
pub use crate::inception::{Inception, InceptionAux, NaiveInception};
use tapegrad_autograd::{Pool2dOptions, Result, Rng, Var};
use tapegrad_nn::init::{self, Init};
use tapegrad_nn::layers::{AdaptiveAvgPool2d, Dropout, Linear, MaxPool2d};
use tapegrad_nn::{consumed, Module};

/// GoogLeNet (torchvision's layout and names: 6,624,904 parameters at 1000 classes without the
/// auxiliary heads).
#[derive(Module)]
pub struct GoogLeNet {
    pub conv1: ConvBnRelu,
    pub maxpool1: MaxPool2d,
    pub conv2: ConvBnRelu,
    pub conv3: ConvBnRelu,
    pub maxpool2: MaxPool2d,
    pub inception3a: Inception,
    pub inception3b: Inception,
    pub maxpool3: MaxPool2d,
    pub inception4a: Inception,
    pub inception4b: Inception,
    pub inception4c: Inception,
    pub inception4d: Inception,
    pub inception4e: Inception,
    pub maxpool4: MaxPool2d,
    pub inception5a: Inception,
    pub inception5b: Inception,
    /// The auxiliary heads (after 4a and 4d), present or not together.
    pub aux1: Option<InceptionAux>,
    pub aux2: Option<InceptionAux>,
    pub avgpool: AdaptiveAvgPool2d,
    pub dropout: Dropout,
    pub fc: Linear,
    /// Outputs of the auxiliary heads from the last training forward pass are not kept: use
    /// [`GoogLeNet::forward_with_aux`] to get them.
    #[module(training)]
    training: bool,
}

impl GoogLeNet {
    pub fn new(num_classes: usize, aux_logits: bool, rng: &mut Rng) -> Result<GoogLeNet> {
        let pool = |k: usize, s: usize| MaxPool2d(Pool2dOptions::new(k).stride(s).ceil_mode(true));
        let inc = |a, b, c, d, e, f, g, rng: &mut Rng| Inception::new(a, b, c, d, e, f, g, 3, rng);
        let mut net = GoogLeNet {
            conv1: ConvBnRelu::new(3, 64, 7, 2, 3, BN_EPS, rng)?,
            maxpool1: pool(3, 2),
            conv2: ConvBnRelu::new(64, 64, 1, 1, 0, BN_EPS, rng)?,
            conv3: ConvBnRelu::new(64, 192, 3, 1, 1, BN_EPS, rng)?,
            maxpool2: pool(3, 2),
            inception3a: inc(192, 64, 96, 128, 16, 32, 32, rng)?,
            inception3b: inc(256, 128, 128, 192, 32, 96, 64, rng)?,
            maxpool3: pool(3, 2),
            inception4a: inc(480, 192, 96, 208, 16, 48, 64, rng)?,
            inception4b: inc(512, 160, 112, 224, 24, 64, 64, rng)?,
            inception4c: inc(512, 128, 128, 256, 24, 64, 64, rng)?,
            inception4d: inc(512, 112, 144, 288, 32, 64, 64, rng)?,
            inception4e: inc(528, 256, 160, 320, 32, 128, 128, rng)?,
            maxpool4: pool(2, 2),
            inception5a: inc(832, 256, 160, 320, 32, 128, 128, rng)?,
            inception5b: inc(832, 384, 192, 384, 48, 128, 128, rng)?,
            aux1: aux_logits
                .then(|| InceptionAux::new(512, num_classes, rng))
                .transpose()?,
            aux2: aux_logits
                .then(|| InceptionAux::new(528, num_classes, rng))
                .transpose()?,
            avgpool: AdaptiveAvgPool2d((1, 1)),
            dropout: Dropout::new(0.2, 4)?,
            fc: Linear::new(1024, num_classes, rng)?,
            training: true,
        };
        // torchvision: truncated normal(0, 0.01) for convolutions and linear layers; a plain
        // normal with the same small deviation here.
        init::apply(&mut net, rng, |name, dims| {
            (dims.len() >= 2 && name.ends_with("weight")).then_some(Init::Normal {
                mean: 0.0,
                std: 0.01,
            })
        })?;
        Ok(net)
    }

    /// The forward pass, and in training mode with auxiliary heads, their logits (after 4a and
    /// 4d).
    pub fn forward_with_aux<'t>(&mut self, x: Var<'t>) -> Result<(Var<'t>, Vec<Var<'t>>)> {
        let mut aux_out = Vec::new();
        let y = self.conv1.forward(x)?;
        let y = consumed(y, self.maxpool1.forward(y)?);
        let y = consumed(y, self.conv2.forward(y)?);
        let y = consumed(y, self.conv3.forward(y)?);
        let y = consumed(y, self.maxpool2.forward(y)?);
        let y = consumed(y, self.inception3a.forward(y)?);
        let y = consumed(y, self.inception3b.forward(y)?);
        let y = consumed(y, self.maxpool3.forward(y)?);
        let y = consumed(y, self.inception4a.forward(y)?);
        let training = self.training;
        if let (true, Some(aux)) = (training, &mut self.aux1) {
            aux_out.push(aux.forward(y)?);
        }
        let y = consumed(y, self.inception4b.forward(y)?);
        let y = consumed(y, self.inception4c.forward(y)?);
        let y = consumed(y, self.inception4d.forward(y)?);
        if let (true, Some(aux)) = (training, &mut self.aux2) {
            aux_out.push(aux.forward(y)?);
        }
        let y = consumed(y, self.inception4e.forward(y)?);
        let y = consumed(y, self.maxpool4.forward(y)?);
        let y = consumed(y, self.inception5a.forward(y)?);
        let y = consumed(y, self.inception5b.forward(y)?);
        let y = consumed(y, self.avgpool.forward(y)?);
        let y = consumed(y, y.flatten(1)?);
        let y = consumed(y, self.dropout.forward(y)?);
        Ok((consumed(y, self.fc.forward(y)?), aux_out))
    }
}

impl GoogLeNet {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        Ok(self.forward_with_aux(x)?.0)
    }
}
