//! Every model by name, for command lines.

use crate::{
    AlexNet, GoogLeNet, LeNet5, LeNetConfig, ResNet, ResNetConfig, SmallVgg, SmallVggConfig, Vgg,
};
use tapegrad_autograd::{rng, Error, Result};
use tapegrad_nn::Module;

/// The names `by_name` knows. `-small` ResNets have the small-image stem; `plain` networks have
/// no shortcuts; a `-wN` suffix sets a ResNet's first-stage width (64 by default), as in
/// `resnet18-small-w16`.
pub const NAMES: &[&str] = &[
    "lenet5",
    "lenet5-modern",
    "alexnet",
    "alexnet-paper",
    "alexnet-paper-towers",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "googlenet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "plain18",
    "plain34",
    "plain50",
    "plain101",
    "plain152",
    "resnet18-small",
    "resnet34-small",
    "plain18-small",
    "plain34-small",
];

/// A zoo architecture, parsed from its name: what `by_name` and `build` construct, and what
/// [`footprint`](crate::footprint()) measures without constructing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arch {
    /// Channels of conv1, conv2, conv3 and the hidden width.
    LeNet {
        modern: bool,
        widths: (usize, usize, usize, usize),
    },
    ResNet {
        depth: usize,
        small: bool,
        width: usize,
        plain: bool,
    },
    Vgg {
        depth: usize,
        bn: bool,
    },
    AlexNet,
    AlexNetPaper {
        towers: bool,
    },
    GoogLeNet,
    /// Its layout is in the name (see [`SmallVggConfig::from_name`]).
    SmallVgg,
}

fn unknown(name: &str) -> Error {
    Error::invalid(
        "models::by_name",
        format!("unknown model '{name}'; known: {}", NAMES.join(", ")),
    )
}

/// The architecture `by_name` builds for `name`. LeNets are only `lenet5` and `lenet5-modern`
/// here; [`build`] reads every layout [`lenet_layout`] does.
pub(crate) fn parse(name: &str) -> Result<Arch> {
    if let Some(rest) = name
        .strip_prefix("resnet")
        .or_else(|| name.strip_prefix("plain"))
    {
        // `resnet18-small-w16`: the small-image stem, first-stage width 16.
        let (rest, width) = match rest.rsplit_once("-w") {
            Some((r, w)) => (r, w.parse().map_err(|_| unknown(name))?),
            None => (rest, 64),
        };
        let (depth, small) = match rest.strip_suffix("-small") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        let depth: usize = depth.parse().map_err(|_| unknown(name))?;
        if ![18, 34, 50, 101, 152].contains(&depth) {
            return Err(unknown(name));
        }
        let plain = name.starts_with("plain");
        return Ok(Arch::ResNet {
            depth,
            small,
            width,
            plain,
        });
    }
    if let Some(rest) = name.strip_prefix("vgg") {
        let (depth, bn) = match rest.strip_suffix("_bn") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        let depth: usize = depth.parse().map_err(|_| unknown(name))?;
        // Vgg::new names the depths it knows.
        return Ok(Arch::Vgg { depth, bn });
    }
    Ok(match name {
        "lenet5" | "lenet5-modern" => Arch::LeNet {
            modern: name == "lenet5-modern",
            widths: (6, 16, 120, 84),
        },
        "alexnet" => Arch::AlexNet,
        "alexnet-paper" => Arch::AlexNetPaper { towers: false },
        "alexnet-paper-towers" => Arch::AlexNetPaper { towers: true },
        "googlenet" => Arch::GoogLeNet,
        _ => return Err(unknown(name)),
    })
}

/// The architecture [`build`] constructs for `name`.
pub(crate) fn parse_any(name: &str) -> Result<Arch> {
    if let Some((modern, widths)) = lenet_layout(name) {
        return Ok(Arch::LeNet { modern, widths });
    }
    if name.starts_with("small-vgg-") {
        return match SmallVggConfig::from_name(name, 1, 28, 10) {
            Some(_) => Ok(Arch::SmallVgg),
            None => Err(Error::invalid(
                "models::build",
                format!(
                    "'{name}' is not a small VGG layout: small-vgg-S1-S2...[-fcH][-dropP], \
                     each stage a width W or WxN (N convolutions), e.g. small-vgg-32x2-64x2-fc256-drop25"
                ),
            )),
        };
    }
    parse(name)
}

/// A model from its name, with `num_classes` outputs and parameters drawn from `seed`.
/// `in_channels` is honoured by LeNet and ResNet; AlexNet, VGG and GoogLeNet are defined for
/// RGB input and refuse any other channel count rather than ignore it.
pub fn by_name(
    name: &str,
    num_classes: usize,
    in_channels: usize,
    seed: u64,
) -> Result<Box<dyn Module>> {
    construct(name, parse(name)?, num_classes, in_channels, 28, seed)
}

/// `arch` (called `name`) for `input_size` square images of `in_channels` channels (the size
/// matters to LeNet only).
fn construct(
    name: &str,
    arch: Arch,
    num_classes: usize,
    in_channels: usize,
    input_size: usize,
    seed: u64,
) -> Result<Box<dyn Module>> {
    let rgb_only = matches!(
        arch,
        Arch::Vgg { .. } | Arch::AlexNet | Arch::AlexNetPaper { .. } | Arch::GoogLeNet
    );
    if rgb_only && in_channels != 3 {
        return Err(Error::invalid(
            "models::by_name",
            format!(
                "{name} takes 3 input channels (RGB), got {in_channels}; LeNet and ResNet \
                 take any channel count"
            ),
        ));
    }
    let mut g = rng(seed);
    Ok(match arch {
        Arch::LeNet { modern, widths } => Box::new(LeNet5::new(
            LeNetConfig {
                in_channels,
                modern,
                widths,
                ..LeNetConfig::classic(input_size, num_classes)
            },
            &mut g,
        )?),
        Arch::ResNet {
            depth,
            small,
            width,
            plain,
        } => {
            let c = ResNetConfig {
                in_channels,
                small_stem: small,
                width,
                plain,
                ..ResNetConfig::new(depth, num_classes)
            };
            Box::new(ResNet::new(c, &mut g)?)
        }
        Arch::Vgg { depth, bn } => Box::new(Vgg::new(depth, bn, num_classes, &mut g)?),
        Arch::AlexNet => Box::new(AlexNet::torchvision(num_classes, &mut g)?),
        Arch::AlexNetPaper { towers } => Box::new(AlexNet::paper(num_classes, towers, &mut g)?),
        Arch::GoogLeNet => Box::new(GoogLeNet::new(num_classes, false, &mut g)?),
        Arch::SmallVgg => {
            let c = SmallVggConfig::from_name(name, in_channels, input_size, num_classes)
                .ok_or_else(|| unknown(name))?;
            Box::new(SmallVgg::new(&c, &mut g)?)
        }
    })
}

/// LeNet-5's layout from its name: `lenet5` (tanh, average pooling), `lenet5-modern` (ReLU,
/// max pooling), `lenet5-wide` (modern, 16-32-128-84), or either with its widths spelled out:
/// `lenet5-modern-12-24-128-84` (conv1, conv2, conv3 channels, hidden units). Returns whether
/// it is modern, and the widths.
pub fn lenet_layout(name: &str) -> Option<(bool, (usize, usize, usize, usize))> {
    match name {
        "lenet5-wide" => return Some((true, (16, 32, 128, 84))),
        "lenet5-modern" => return Some((true, (6, 16, 120, 84))),
        "lenet5" => return Some((false, (6, 16, 120, 84))),
        _ => {}
    }
    let (modern, rest) = match name.strip_prefix("lenet5-modern-") {
        Some(r) => (true, r),
        None => (false, name.strip_prefix("lenet5-")?),
    };
    let w: Vec<usize> = rest
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    match w[..] {
        [a, b, c, d] if w.iter().all(|&x| x > 0) => Some((modern, (a, b, c, d))),
        _ => None,
    }
}

/// A model by name for `[c, h, w]` inputs: LeNets (any layout `lenet_layout` reads) are built
/// for the input size (28 or 32), every other name comes from [`by_name`].
pub fn build(
    name: &str,
    num_classes: usize,
    [c, h, w]: [usize; 3],
    seed: u64,
) -> Result<Box<dyn Module>> {
    let arch = parse_any(name)?;
    if matches!(arch, Arch::LeNet { .. } | Arch::SmallVgg) && h != w {
        return Err(Error::invalid(
            "models::build",
            format!("{name} needs square images, got {h}x{w}"),
        ));
    }
    construct(name, arch, num_classes, c, h, seed)
}

/// The input (`[1, C, H, W]`) a model is usually summarised at: 28x28x1 for LeNet, 32x32 for
/// small-stem ResNets, 227x227 for the paper's AlexNet, 224x224 otherwise.
pub fn default_input(name: &str) -> [usize; 4] {
    if name.starts_with("lenet") || name.starts_with("small-vgg") {
        [1, 1, 28, 28]
    } else if name.ends_with("-small") {
        [1, 3, 32, 32]
    } else if name.starts_with("alexnet-paper") {
        [1, 3, 227, 227]
    } else {
        [1, 3, 224, 224]
    }
}
