//! GoogLeNet: inception modules in both of the lecture's forms, and the 22-layer network with
//! torchvision's names (auxiliary classifiers optional, off by default).

use crate::blocks::ConvBnRelu;
use tapegrad_autograd::{Conv2dOptions, Pool2dOptions, Result, Rng, Var};
use tapegrad_nn::init::{self, Init};
use tapegrad_nn::layers::{AdaptiveAvgPool2d, Conv2d, Dropout, Linear, MaxPool2d, ReLU};
use tapegrad_nn::{forward_child, forward_consuming, Module, Sequential};

/// torchvision's BatchNorm eps in GoogLeNet.
const BN_EPS: f32 = 1e-3;

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
                .add(Conv2d::new(
                    cin,
                    c,
                    k,
                    Conv2dOptions::default().padding(k / 2),
                    true,
                    rng,
                )?)
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
    pub fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let b = [
            forward_child("branch1", &mut self.branch1, x)?,
            forward_child("branch3", &mut self.branch3, x)?,
            forward_child("branch5", &mut self.branch5, x)?,
            forward_child("pool", &mut self.pool, x)?,
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
    pub fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let b = [
            forward_child("branch1", &mut self.branch1, x)?,
            forward_child("branch2", &mut self.branch2, x)?,
            forward_child("branch3", &mut self.branch3, x)?,
            forward_child("branch4", &mut self.branch4, x)?,
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
    fn new(cin: usize, num_classes: usize, rng: &mut Rng) -> Result<Self> {
        Ok(InceptionAux {
            conv: ConvBnRelu::new(cin, 128, 1, 1, 0, BN_EPS, rng)?,
            fc1: Linear::new(2048, 1024, true, rng),
            fc2: Linear::new(1024, num_classes, true, rng),
            dropout: Dropout::new(0.7, 3)?,
        })
    }
}

impl InceptionAux {
    pub fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = x.adaptive_avg_pool2d((4, 4))?;
        let y = forward_child("conv", &mut self.conv, y)?.flatten(1)?;
        let y = forward_child("fc1", &mut self.fc1, y)?.relu();
        let y = forward_child("dropout", &mut self.dropout, y)?;
        forward_child("fc2", &mut self.fc2, y)
    }
}

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
            fc: Linear::new(1024, num_classes, true, rng),
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
        let y = forward_child("conv1", &mut self.conv1, x)?;
        let y = forward_consuming("maxpool1", &mut self.maxpool1, y)?;
        let y = forward_consuming("conv2", &mut self.conv2, y)?;
        let y = forward_consuming("conv3", &mut self.conv3, y)?;
        let y = forward_consuming("maxpool2", &mut self.maxpool2, y)?;
        let y = forward_consuming("inception3a", &mut self.inception3a, y)?;
        let y = forward_consuming("inception3b", &mut self.inception3b, y)?;
        let y = forward_consuming("maxpool3", &mut self.maxpool3, y)?;
        let y = forward_consuming("inception4a", &mut self.inception4a, y)?;
        let training = self.training;
        if let (true, Some(aux)) = (training, &mut self.aux1) {
            aux_out.push(forward_child("aux1", aux, y)?);
        }
        let y = forward_consuming("inception4b", &mut self.inception4b, y)?;
        let y = forward_consuming("inception4c", &mut self.inception4c, y)?;
        let y = forward_consuming("inception4d", &mut self.inception4d, y)?;
        if let (true, Some(aux)) = (training, &mut self.aux2) {
            aux_out.push(forward_child("aux2", aux, y)?);
        }
        let y = forward_consuming("inception4e", &mut self.inception4e, y)?;
        let y = forward_consuming("maxpool4", &mut self.maxpool4, y)?;
        let y = forward_consuming("inception5a", &mut self.inception5a, y)?;
        let y = forward_consuming("inception5b", &mut self.inception5b, y)?;
        let y = forward_consuming("avgpool", &mut self.avgpool, y)?;
        let y = tapegrad_nn::consumed(y, y.flatten(1)?);
        let y = forward_consuming("dropout", &mut self.dropout, y)?;
        Ok((forward_consuming("fc", &mut self.fc, y)?, aux_out))
    }
}

impl GoogLeNet {
    pub fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        Ok(self.forward_with_aux(x)?.0)
    }
}
