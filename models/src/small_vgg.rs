//! VGG's idea at the scale of 28x28 images: stages of 3x3 convolutions (each followed by batch
//! norm and ReLU) closed by a 2x2 max pool, then dropout and one or two fully connected layers.
//! The main job's default network: wide enough for Fashion-MNIST's hard classes (shirt, T-shirt,
//! pullover, coat), small enough to train in minutes on two cores.

use rand::RngCore;
use tapegrad_autograd::{Error, Result, Rng, Var};
use tapegrad_nn::layers::{BatchNorm2d, Conv2dConfig, Dropout, Linear, MaxPool2d, ReLU};
use tapegrad_nn::{consumed, Module, Sequential};

/// How a [`SmallVgg`] is built.
#[derive(Clone, Debug, PartialEq)]
pub struct SmallVggConfig {
    pub in_channels: usize,
    /// Side of the square input images.
    pub input_size: usize,
    pub num_classes: usize,
    /// Per stage: its channels and how many convolutions it has (each stage halves the side).
    pub stages: Vec<(usize, usize)>,
    /// Width of the hidden fully connected layer; 0: the features go straight to the classes.
    pub hidden: usize,
    /// Dropout probability before each fully connected layer.
    pub dropout: f32,
}

impl SmallVggConfig {
    /// The layout named `small-vgg-S1-S2...[-fcH][-dropP]`: each stage `S` is a width (`64`: one
    /// convolution) or a width and a count (`64x2`); `fcH` a hidden layer of `H` units; `dropP`
    /// a dropout of `P` percent. `None` for any other name.
    pub fn from_name(
        name: &str,
        in_channels: usize,
        input_size: usize,
        num_classes: usize,
    ) -> Option<Self> {
        let rest = name.strip_prefix("small-vgg-")?;
        let mut c = SmallVggConfig {
            in_channels,
            input_size,
            num_classes,
            stages: Vec::new(),
            hidden: 0,
            dropout: 0.0,
        };
        let positive = |s: &str| s.parse::<usize>().ok().filter(|&n| n > 0);
        for part in rest.split('-') {
            if let Some(h) = part.strip_prefix("fc") {
                c.hidden = positive(h)?;
            } else if let Some(p) = part.strip_prefix("drop") {
                let p = p.parse::<u32>().ok().filter(|&p| p < 100)?;
                c.dropout = p as f32 / 100.0;
            } else {
                let (w, n) = part.split_once('x').unwrap_or((part, "1"));
                c.stages.push((positive(w)?, positive(n)?));
            }
        }
        (!c.stages.is_empty()).then_some(c)
    }

    /// The features' side after every stage's pool.
    pub fn final_side(&self) -> usize {
        self.stages.iter().fold(self.input_size, |s, _| s / 2)
    }
}

/// The network as `features` (the stages) and `classifier`.
#[derive(Module)]
pub struct SmallVgg {
    pub features: Sequential,
    pub classifier: Sequential,
}

impl SmallVgg {
    pub fn new(c: &SmallVggConfig, rng: &mut Rng) -> Result<SmallVgg> {
        let side = c.final_side();
        if c.stages.is_empty() || side == 0 {
            return Err(Error::invalid(
                "SmallVgg",
                format!(
                    "{} stages halve a {}x{} input to nothing; at least one stage and at most \
                     log2 of the side",
                    c.stages.len(),
                    c.input_size,
                    c.input_size
                ),
            ));
        }
        let mut features = Sequential::new();
        let mut cin = c.in_channels;
        for &(width, convs) in &c.stages {
            for _ in 0..convs {
                features = features
                    .add(
                        Conv2dConfig::new(cin, width, 3)
                            .padding(1)
                            .bias(false)
                            .init(rng)?,
                    )
                    .add(BatchNorm2d::new(width)?)
                    .add(ReLU);
                cin = width;
            }
            features = features.add(MaxPool2d::new(2, 2));
        }
        let flat = cin
            .checked_mul(side * side)
            .ok_or_else(|| Error::invalid("SmallVgg", "the feature count overflows"))?;
        let seed = rng.next_u64();
        let mut classifier = Sequential::new();
        let mut features_in = flat;
        if c.hidden > 0 {
            classifier = classifier
                .add(Dropout::new(c.dropout, seed)?)
                .add(Linear::new(flat, c.hidden, rng)?)
                .add(ReLU);
            features_in = c.hidden;
        }
        classifier = classifier
            .add(Dropout::new(c.dropout, seed.wrapping_add(1))?)
            .add(Linear::new(features_in, c.num_classes, rng)?);
        Ok(SmallVgg {
            features,
            classifier,
        })
    }
}

impl SmallVgg {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.features.forward(x)?;
        let y = consumed(y, y.flatten(1)?);
        Ok(consumed(y, self.classifier.forward(y)?))
    }
}
