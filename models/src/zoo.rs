//! Every model by name, for command lines.

use crate::{AlexNet, GoogLeNet, LeNet5, LeNetConfig, ResNet, ResNetConfig, Vgg};
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

/// A model from its name, with `num_classes` outputs and parameters drawn from `seed`.
pub fn by_name(
    name: &str,
    num_classes: usize,
    in_channels: usize,
    seed: u64,
) -> Result<Box<dyn Module>> {
    let mut g = rng(seed);
    let bad = || {
        Error::invalid(
            "models::by_name",
            format!("unknown model '{name}'; known: {}", NAMES.join(", ")),
        )
    };
    if let Some(rest) = name
        .strip_prefix("resnet")
        .or_else(|| name.strip_prefix("plain"))
    {
        // `resnet18-small-w16`: the small-image stem, first-stage width 16.
        let (rest, width) = match rest.rsplit_once("-w") {
            Some((r, w)) => (r, w.parse().map_err(|_| bad())?),
            None => (rest, 64),
        };
        let (depth, small) = match rest.strip_suffix("-small") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        let depth: usize = depth.parse().map_err(|_| bad())?;
        if ![18, 34, 50, 101, 152].contains(&depth) {
            return Err(bad());
        }
        let c = ResNetConfig {
            in_channels,
            small_stem: small,
            width,
            plain: name.starts_with("plain"),
            ..ResNetConfig::new(depth, num_classes)
        };
        return Ok(Box::new(ResNet::new(c, &mut g)?));
    }
    if let Some(rest) = name.strip_prefix("vgg") {
        let (depth, bn) = match rest.strip_suffix("_bn") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        return Ok(Box::new(Vgg::new(
            depth.parse().map_err(|_| bad())?,
            bn,
            num_classes,
            &mut g,
        )?));
    }
    Ok(match name {
        "lenet5" => Box::new(LeNet5::new(
            LeNetConfig {
                in_channels,
                ..LeNetConfig::classic(28, num_classes)
            },
            &mut g,
        )?),
        "lenet5-modern" => Box::new(LeNet5::new(
            LeNetConfig {
                in_channels,
                ..LeNetConfig::modern(28, num_classes)
            },
            &mut g,
        )?),
        "alexnet" => Box::new(AlexNet::torchvision(num_classes, &mut g)?),
        "alexnet-paper" => Box::new(AlexNet::paper(num_classes, false, &mut g)?),
        "alexnet-paper-towers" => Box::new(AlexNet::paper(num_classes, true, &mut g)?),
        "googlenet" => Box::new(GoogLeNet::new(num_classes, false, &mut g)?),
        _ => return Err(bad()),
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
    let Some((modern, widths)) = lenet_layout(name) else {
        return by_name(name, num_classes, c, seed);
    };
    if h != w {
        return Err(Error::invalid(
            "models::build",
            format!("{name} needs square images, got {h}x{w}"),
        ));
    }
    let cfg = LeNetConfig {
        in_channels: c,
        modern,
        widths,
        ..LeNetConfig::classic(h, num_classes)
    };
    Ok(Box::new(LeNet5::new(cfg, &mut rng(seed))?))
}

/// The input (`[1, C, H, W]`) a model is usually summarised at: 28x28x1 for LeNet, 32x32 for
/// small-stem ResNets, 227x227 for the paper's AlexNet, 224x224 otherwise.
pub fn default_input(name: &str) -> [usize; 4] {
    if name.starts_with("lenet") {
        [1, 1, 28, 28]
    } else if name.ends_with("-small") {
        [1, 3, 32, 32]
    } else if name.starts_with("alexnet-paper") {
        [1, 3, 227, 227]
    } else {
        [1, 3, 224, 224]
    }
}
