//! ResNet-18/34/50/101/152 with basic and bottleneck blocks (torchvision's names, stride on the
//! 3x3 convolution of a bottleneck), the same depths without shortcuts ("plain" networks, for
//! the lecture's degradation experiment), and a small-image stem (3x3 convolution, no max pool)
//! for 28x28 and 32x32 input.

use tapegrad_autograd::{Error, Pool2dOptions, Result, Rng, Var};
use tapegrad_nn::init::{self, FanMode, Init, Nonlinearity};
use tapegrad_nn::layers::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Linear, MaxPool2d,
};
use tapegrad_nn::{consumed, Module, Sequential};

/// How a ResNet is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetConfig {
    /// 18, 34 (basic blocks), 50, 101, 152 (bottlenecks).
    pub depth: usize,
    pub num_classes: usize,
    pub in_channels: usize,
    /// Channels of the first stage (64 in the paper); later stages double it.
    pub width: usize,
    /// A 3x3 stride-1 first convolution and no max pool, for small images.
    pub small_stem: bool,
    /// No shortcut connections: the plain network of the same depth.
    pub plain: bool,
    /// Start each residual block as the identity: the scale of the block's last batch norm
    /// is 0, so `F(x) = 0` and `y = relu(x)` (torchvision's `zero_init_residual`, from Goyal
    /// et al. 2017). The deep network then trains from a shallow one and grows into its depth.
    /// No effect on a plain network, which has no shortcut to carry the signal.
    pub zero_init_residual: bool,
}

impl ResNetConfig {
    /// The ImageNet network of this depth.
    pub fn new(depth: usize, num_classes: usize) -> Self {
        ResNetConfig {
            depth,
            num_classes,
            in_channels: 3,
            width: 64,
            small_stem: false,
            plain: false,
            zero_init_residual: false,
        }
    }

    fn blocks(&self) -> Result<(bool, [usize; 4])> {
        Ok(match self.depth {
            18 => (false, [2, 2, 2, 2]),
            34 => (false, [3, 4, 6, 3]),
            50 => (true, [3, 4, 6, 3]),
            101 => (true, [3, 4, 23, 3]),
            152 => (true, [3, 8, 36, 3]),
            d => {
                return Err(Error::invalid(
                    "ResNet",
                    format!("depth {d} is not one of 18, 34, 50, 101, 152"),
                ))
            }
        })
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, rng: &mut Rng) -> Result<Conv2d> {
    Conv2dConfig::new(cin, cout, k)
        .stride(stride)
        .padding(k / 2)
        .bias(false)
        .init(rng)
}

/// The projection shortcut (1x1 convolution + batch norm) where the shape changes.
fn downsample(cin: usize, cout: usize, stride: usize, rng: &mut Rng) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(conv(cin, cout, 1, stride, rng)?)
        .add(BatchNorm2d::new(cout)?))
}

/// Two 3x3 convolutions: `y = relu(F(x) + x)`.
#[derive(Module)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
    pub downsample: Option<Sequential>,
    #[module(skip)]
    pub shortcut: bool,
}

impl BasicBlock {
    pub fn new(cin: usize, c: usize, stride: usize, shortcut: bool, rng: &mut Rng) -> Result<Self> {
        Ok(BasicBlock {
            conv1: conv(cin, c, 3, stride, rng)?,
            bn1: BatchNorm2d::new(c)?,
            conv2: conv(c, c, 3, 1, rng)?,
            bn2: BatchNorm2d::new(c)?,
            downsample: (shortcut && (stride != 1 || cin != c))
                .then(|| downsample(cin, c, stride, rng))
                .transpose()?,
            shortcut,
        })
    }
}

/// 1x1 reduce, 3x3, 1x1 expand (x4): `y = relu(F(x) + x)`.
#[derive(Module)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub conv2: Conv2d,
    pub bn2: BatchNorm2d,
    pub conv3: Conv2d,
    pub bn3: BatchNorm2d,
    pub downsample: Option<Sequential>,
    #[module(skip)]
    pub shortcut: bool,
}

impl Bottleneck {
    pub const EXPANSION: usize = 4;

    pub fn new(cin: usize, c: usize, stride: usize, shortcut: bool, rng: &mut Rng) -> Result<Self> {
        let out = c * Self::EXPANSION;
        Ok(Bottleneck {
            conv1: conv(cin, c, 1, 1, rng)?,
            bn1: BatchNorm2d::new(c)?,
            conv2: conv(c, c, 3, stride, rng)?,
            bn2: BatchNorm2d::new(c)?,
            conv3: conv(c, out, 1, 1, rng)?,
            bn3: BatchNorm2d::new(out)?,
            downsample: (shortcut && (stride != 1 || cin != out))
                .then(|| downsample(cin, out, stride, rng))
                .transpose()?,
            shortcut,
        })
    }
}

/// The residual join `relu(f + x)` (or `relu(f)` in a plain network); the tape sums the
/// gradients of both paths into `x`.
fn join<'t>(
    f: Var<'t>,
    x: Var<'t>,
    ds: &mut Option<Sequential>,
    shortcut: bool,
) -> Result<Var<'t>> {
    if !shortcut {
        return Ok(consumed(f, f.relu()));
    }
    let identity = match ds {
        Some(d) => d.forward(x)?,
        None => x,
    };
    let sum = consumed(f, f.add(identity)?);
    if identity.id() != x.id() {
        identity.release();
    }
    Ok(consumed(sum, sum.relu()))
}

impl BasicBlock {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.conv1.forward(x)?;
        let y = consumed(y, self.bn1.forward(y)?);
        let y = consumed(y, y.relu());
        let y = consumed(y, self.conv2.forward(y)?);
        let y = consumed(y, self.bn2.forward(y)?);
        join(y, x, &mut self.downsample, self.shortcut)
    }
}

impl Bottleneck {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.conv1.forward(x)?;
        let y = consumed(y, self.bn1.forward(y)?);
        let y = consumed(y, y.relu());
        let y = consumed(y, self.conv2.forward(y)?);
        let y = consumed(y, self.bn2.forward(y)?);
        let y = consumed(y, y.relu());
        let y = consumed(y, self.conv3.forward(y)?);
        let y = consumed(y, self.bn3.forward(y)?);
        join(y, x, &mut self.downsample, self.shortcut)
    }
}

/// A ResNet (or plain network): stem, four stages (`layer1` .. `layer4`), global average pool,
/// `fc`.
#[derive(Module)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm2d,
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Sequential,
    pub layer2: Sequential,
    pub layer3: Sequential,
    pub layer4: Sequential,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
    #[module(skip)]
    pub config: ResNetConfig,
}

impl ResNet {
    pub fn new(c: ResNetConfig, rng: &mut Rng) -> Result<ResNet> {
        let (bottleneck, counts) = c.blocks()?;
        let expansion = if bottleneck { Bottleneck::EXPANSION } else { 1 };
        let w = c.width;
        let (conv1, maxpool) = if c.small_stem {
            (conv(c.in_channels, w, 3, 1, rng)?, None)
        } else {
            let stem = Conv2dConfig::new(c.in_channels, w, 7)
                .stride(2)
                .padding(3)
                .bias(false)
                .init(rng)?;
            (
                stem,
                Some(MaxPool2d(Pool2dOptions::new(3).stride(2).padding(1))),
            )
        };
        let mut cin = w;
        let mut stage = |i: usize, rng: &mut Rng| -> Result<Sequential> {
            let width = w << i;
            let mut s = Sequential::new();
            for b in 0..counts[i] {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                if bottleneck {
                    s = s.add(Bottleneck::new(cin, width, stride, !c.plain, rng)?);
                } else {
                    s = s.add(BasicBlock::new(cin, width, stride, !c.plain, rng)?);
                }
                cin = width * expansion;
            }
            Ok(s)
        };
        let mut net = ResNet {
            conv1,
            bn1: BatchNorm2d::new(w)?,
            maxpool,
            layer1: stage(0, rng)?,
            layer2: stage(1, rng)?,
            layer3: stage(2, rng)?,
            layer4: stage(3, rng)?,
            avgpool: AdaptiveAvgPool2d((1, 1)),
            fc: Linear::new(8 * w * expansion, c.num_classes, rng)?,
            config: c,
        };
        // torchvision: convolutions Kaiming normal (fan_out, ReLU); batch norm 1 and 0 (already).
        init::apply(&mut net, rng, |_, dims| {
            (dims.len() == 4).then_some(Init::KaimingNormal(FanMode::FanOut, Nonlinearity::Relu))
        })?;
        if c.zero_init_residual && !c.plain {
            // The last batch norm of a block: bn3 in a bottleneck, bn2 in a basic block.
            let last = if bottleneck {
                ".bn3.weight"
            } else {
                ".bn2.weight"
            };
            init::apply(&mut net, rng, |name, _| {
                (name.starts_with("layer") && name.ends_with(last)).then_some(Init::Constant(0.0))
            })?;
        }
        Ok(net)
    }
}

impl ResNet {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.conv1.forward(x)?;
        let y = consumed(y, self.bn1.forward(y)?);
        let mut y = consumed(y, y.relu());
        if let Some(p) = &mut self.maxpool {
            y = consumed(y, p.forward(y)?);
        }
        y = consumed(y, self.layer1.forward(y)?);
        y = consumed(y, self.layer2.forward(y)?);
        y = consumed(y, self.layer3.forward(y)?);
        y = consumed(y, self.layer4.forward(y)?);
        let y = consumed(y, self.avgpool.forward(y)?);
        let y = consumed(y, y.flatten(1)?);
        Ok(consumed(y, self.fc.forward(y)?))
    }
}
