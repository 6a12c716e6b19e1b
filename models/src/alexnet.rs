//! AlexNet two ways: torchvision's variant (same state_dict names and shapes as
//! `torchvision.models.alexnet`) and the paper's (227x227 input, 96 11x11 kernels stride 4,
//! LRN after conv1 and conv2, overlapping 3x3/2 max pooling, dropout 0.5 in FC6/FC7 with the
//! classic test-time scaling, optional two-tower grouped convolutions, N(0, 0.01) weights).

use tapegrad_autograd::{DropoutMode, Result, Rng, Var};
use tapegrad_nn::init::{self, Init};
use tapegrad_nn::layers::{
    AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Dropout, Linear, LocalResponseNorm, MaxPool2d, ReLU,
};
use tapegrad_nn::{consumed, Module, Sequential};

/// AlexNet as `features`, `avgpool`, `classifier`.
#[derive(Module)]
pub struct AlexNet {
    pub features: Sequential,
    pub avgpool: Option<AdaptiveAvgPool2d>,
    pub classifier: Sequential,
}

fn conv(
    i: usize,
    o: usize,
    k: usize,
    s: usize,
    p: usize,
    g: usize,
    rng: &mut Rng,
) -> Result<Conv2d> {
    Conv2dConfig::new(i, o, k)
        .stride(s)
        .padding(p)
        .groups(g)
        .init(rng)
}

impl AlexNet {
    /// torchvision's AlexNet (61,100,840 parameters at 1000 classes); any input of 63x63 or more.
    pub fn torchvision(num_classes: usize, rng: &mut Rng) -> Result<AlexNet> {
        let features = Sequential::new()
            .add(conv(3, 64, 11, 4, 2, 1, rng)?)
            .add(ReLU)
            .add(MaxPool2d::new(3, 2))
            .add(conv(64, 192, 5, 1, 2, 1, rng)?)
            .add(ReLU)
            .add(MaxPool2d::new(3, 2))
            .add(conv(192, 384, 3, 1, 1, 1, rng)?)
            .add(ReLU)
            .add(conv(384, 256, 3, 1, 1, 1, rng)?)
            .add(ReLU)
            .add(conv(256, 256, 3, 1, 1, 1, rng)?)
            .add(ReLU)
            .add(MaxPool2d::new(3, 2));
        let classifier = Sequential::new()
            .add(Dropout::new(0.5, 1)?)
            .add(Linear::new(256 * 36, 4096, rng)?)
            .add(ReLU)
            .add(Dropout::new(0.5, 2)?)
            .add(Linear::new(4096, 4096, rng)?)
            .add(ReLU)
            .add(Linear::new(4096, num_classes, rng)?);
        Ok(AlexNet {
            features,
            avgpool: Some(AdaptiveAvgPool2d((6, 6))),
            classifier,
        })
    }

    /// The paper's network for 227x227 input; `two_towers` splits conv2, conv4 and conv5 into two
    /// groups as the two-GPU original did.
    pub fn paper(num_classes: usize, two_towers: bool, rng: &mut Rng) -> Result<AlexNet> {
        let g = if two_towers { 2 } else { 1 };
        let features = Sequential::new()
            .add(conv(3, 96, 11, 4, 0, 1, rng)?)
            .add(ReLU)
            .add(LocalResponseNorm::alexnet())
            .add(MaxPool2d::new(3, 2))
            .add(conv(96, 256, 5, 1, 2, g, rng)?)
            .add(ReLU)
            .add(LocalResponseNorm::alexnet())
            .add(MaxPool2d::new(3, 2))
            .add(conv(256, 384, 3, 1, 1, 1, rng)?)
            .add(ReLU)
            .add(conv(384, 384, 3, 1, 1, g, rng)?)
            .add(ReLU)
            .add(conv(384, 256, 3, 1, 1, g, rng)?)
            .add(ReLU)
            .add(MaxPool2d::new(3, 2));
        let classic = |seed| Dropout::with_mode(0.5, DropoutMode::Classic, seed);
        let classifier = Sequential::new()
            .add(Linear::new(256 * 36, 4096, rng)?)
            .add(ReLU)
            .add(classic(1)?)
            .add(Linear::new(4096, 4096, rng)?)
            .add(ReLU)
            .add(classic(2)?)
            .add(Linear::new(4096, num_classes, rng)?);
        let mut net = AlexNet {
            features,
            avgpool: None,
            classifier,
        };
        // The paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the FC layers, else 0.
        let ones = ["features.4.bias", "features.10.bias", "features.12.bias"];
        init::apply(&mut net, rng, |name, _| {
            Some(if name.ends_with("weight") {
                Init::Normal {
                    mean: 0.0,
                    std: 0.01,
                }
            } else if name.starts_with("classifier") || ones.contains(&name) {
                Init::Constant(1.0)
            } else {
                Init::Constant(0.0)
            })
        })?;
        Ok(net)
    }
}

impl AlexNet {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let mut y = self.features.forward(x)?;
        if let Some(p) = &mut self.avgpool {
            y = consumed(y, p.forward(y)?);
        }
        let y = consumed(y, y.flatten(1)?);
        Ok(consumed(y, self.classifier.forward(y)?))
    }
}
