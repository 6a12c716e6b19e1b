//! VGG-11/13/16/19 (configurations A, B, D, E), with or without batch norm: only 3x3
//! convolutions of stride 1, torchvision's names and initialisation.

use tapegrad_autograd::{Error, Result, Rng, Var};
use tapegrad_nn::init::{self, FanMode, Init, Nonlinearity};
use tapegrad_nn::layers::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2dConfig, Dropout, Linear, MaxPool2d, ReLU,
};
use tapegrad_nn::{consumed, Module, Sequential};

/// Channels per layer; 0 is a 2x2 max pool.
fn config(depth: usize) -> Option<&'static [usize]> {
    const A: &[usize] = &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
    const B: &[usize] = &[
        64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
    ];
    const D: &[usize] = &[
        64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
    ];
    const E: &[usize] = &[
        64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
    ];
    match depth {
        11 => Some(A),
        13 => Some(B),
        16 => Some(D),
        19 => Some(E),
        _ => None,
    }
}

/// VGG as `features`, `avgpool` (adaptive, 7x7), `classifier`.
#[derive(Module)]
pub struct Vgg {
    pub features: Sequential,
    pub avgpool: AdaptiveAvgPool2d,
    pub classifier: Sequential,
}

impl Vgg {
    /// VGG-`depth` (11, 13, 16 or 19), with batch norm after every convolution if `batch_norm`.
    pub fn new(depth: usize, batch_norm: bool, num_classes: usize, rng: &mut Rng) -> Result<Vgg> {
        let cfg = config(depth).ok_or_else(|| {
            Error::invalid("Vgg", format!("depth {depth} is not one of 11, 13, 16, 19"))
        })?;
        let mut features = Sequential::new();
        let mut cin = 3;
        for &c in cfg {
            if c == 0 {
                features = features.add(MaxPool2d::new(2, 2));
                continue;
            }
            features = features.add(Conv2dConfig::new(cin, c, 3).padding(1).init(rng)?);
            if batch_norm {
                features = features.add(BatchNorm2d::new(c)?);
            }
            features = features.add(ReLU);
            cin = c;
        }
        let classifier = Sequential::new()
            .add(Linear::new(512 * 49, 4096, rng)?)
            .add(ReLU)
            .add(Dropout::new(0.5, 1)?)
            .add(Linear::new(4096, 4096, rng)?)
            .add(ReLU)
            .add(Dropout::new(0.5, 2)?)
            .add(Linear::new(4096, num_classes, rng)?);
        let mut net = Vgg {
            features,
            avgpool: AdaptiveAvgPool2d((7, 7)),
            classifier,
        };
        // torchvision: conv weights Kaiming normal (fan_out, ReLU), biases 0; linear N(0, 0.01).
        init::apply(&mut net, rng, |name, dims| {
            Some(
                match (
                    dims.len(),
                    name.ends_with("bias"),
                    name.starts_with("classifier"),
                ) {
                    (4, _, _) => Init::KaimingNormal(FanMode::FanOut, Nonlinearity::Relu),
                    (_, true, _) => Init::Constant(0.0),
                    (_, false, true) => Init::Normal {
                        mean: 0.0,
                        std: 0.01,
                    },
                    _ => Init::Constant(1.0),
                },
            )
        })?;
        Ok(net)
    }
}

impl Vgg {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.features.forward(x)?;
        let y = consumed(y, self.avgpool.forward(y)?);
        let y = consumed(y, y.flatten(1)?);
        Ok(consumed(y, self.classifier.forward(y)?))
    }
}
