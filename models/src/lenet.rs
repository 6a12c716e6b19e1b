//! LeNet-5: the lecture's 1990 network (filters -> tanh -> average pooling -> tanh -> filters ->
//! tanh -> average -> filters -> tanh), and a modern variant (ReLU, max pooling).

use tapegrad_autograd::{Error, Result, Rng, Var};
use tapegrad_nn::layers::{AvgPool2d, Conv2dConfig, Linear, MaxPool2d, ReLU, Tanh};
use tapegrad_nn::{consumed, Module, Sequential};

/// How LeNet-5 is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeNetConfig {
    /// 28 (MNIST: conv1 pads by 2) or 32 (the original).
    pub input_size: usize,
    pub in_channels: usize,
    pub num_classes: usize,
    /// ReLU and max pooling instead of tanh and average pooling.
    pub modern: bool,
    /// Channels of conv1, conv2, conv3 (the original: 6, 16, 120) and the hidden FC width (84).
    pub widths: (usize, usize, usize, usize),
}

impl LeNetConfig {
    /// The original sizes for `input_size` x `input_size` single-channel images.
    pub fn classic(input_size: usize, num_classes: usize) -> Self {
        LeNetConfig {
            input_size,
            in_channels: 1,
            num_classes,
            modern: false,
            widths: (6, 16, 120, 84),
        }
    }

    /// ReLU and max pooling, original sizes.
    pub fn modern(input_size: usize, num_classes: usize) -> Self {
        LeNetConfig {
            modern: true,
            ..Self::classic(input_size, num_classes)
        }
    }
}

/// LeNet-5 as `features` (the convolutions) and `classifier` (the fully connected layers).
#[derive(Module)]
pub struct LeNet5 {
    pub features: Sequential,
    pub classifier: Sequential,
}

impl LeNet5 {
    pub fn new(c: LeNetConfig, rng: &mut Rng) -> Result<LeNet5> {
        let pad = match c.input_size {
            28 => 2,
            32 => 0,
            s => {
                return Err(Error::invalid(
                    "LeNet5",
                    format!("input size {s} must be 28 or 32"),
                ));
            }
        };
        let (c1, c2, c3, hidden) = c.widths;
        let conv = |i, o, p, rng: &mut Rng| Conv2dConfig::new(i, o, 5).padding(p).init(rng);
        let mut f = Sequential::new().add(conv(c.in_channels, c1, pad, rng)?);
        if c.modern {
            f = f
                .add(ReLU)
                .add(MaxPool2d::new(2, 2))
                .add(conv(c1, c2, 0, rng)?)
                .add(ReLU)
                .add(MaxPool2d::new(2, 2))
                .add(conv(c2, c3, 0, rng)?)
                .add(ReLU);
        } else {
            f = f
                .add(Tanh)
                .add(AvgPool2d::new(2, 2))
                .add(Tanh)
                .add(conv(c1, c2, 0, rng)?)
                .add(Tanh)
                .add(AvgPool2d::new(2, 2))
                .add(conv(c2, c3, 0, rng)?)
                .add(Tanh);
        }
        let mut classifier = Sequential::new().add(Linear::new(c3, hidden, rng)?);
        classifier = if c.modern {
            classifier.add(ReLU)
        } else {
            classifier.add(Tanh)
        };
        classifier = classifier.add(Linear::new(hidden, c.num_classes, rng)?);
        Ok(LeNet5 {
            features: f,
            classifier,
        })
    }
}

impl LeNet5 {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.features.forward(x)?;
        let y = consumed(y, y.flatten(1)?);
        Ok(consumed(y, self.classifier.forward(y)?))
    }
}
