//! Design figures: where a network's parameters and multiply-accumulates (MACs) are, and why
//! stacks of small filters replaced large ones.
//!
//! A convolution with K filters of Hf x Wf x C holds Hf Wf C K weights and costs
//! (H/stride)(W/stride) Hf Wf C K MACs; a fully connected layer holds in x out weights and
//! costs as many MACs per sample. So the convolutions hold AlexNet's computation while its
//! fully connected layers hold nearly all of its parameters.
//!
//! Two 3x3 layers see a 5x5 window of the input, as one 5x5 layer does, with
//! 2 (9 C^2) = 18 C^2 weights instead of 25 C^2, and a nonlinearity between them.

use tapegrad_autograd::{rng, Conv2dOptions, Error, Result};
use tapegrad_nn::layers::{Conv2dConfig, ReLU};
use tapegrad_nn::summary::{summary, Summary};
use tapegrad_nn::{Module, Sequential};

/// A network's budget, from its summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub name: String,
    pub input: Vec<usize>,
    pub params: usize,
    pub macs: u64,
    /// Parameters and MACs of the convolutions and of the fully connected layers.
    pub conv_params: usize,
    pub conv_macs: u64,
    pub fc_params: usize,
    pub fc_macs: u64,
    /// Number of convolution and fully connected layers.
    pub conv_layers: usize,
    pub fc_layers: usize,
}

/// The budget of `model` on one input of shape `input` (`[1, C, H, W]`), with its summary.
pub fn budget(name: &str, model: &mut dyn Module, input: &[usize]) -> Result<(Budget, Summary)> {
    let s = summary(model, input)?;
    let of = |kind: &str| {
        s.layers()
            .filter(|r| r.type_name == kind)
            .fold((0, 0, 0), |(p, m, n), r| (p + r.params, m + r.macs, n + 1))
    };
    let (conv_params, conv_macs, conv_layers) = of("Conv2d");
    let (fc_params, fc_macs, fc_layers) = of("Linear");
    Ok((
        Budget {
            name: name.to_string(),
            input: input.to_vec(),
            params: s.total_params,
            macs: s.total_macs,
            conv_params,
            conv_macs,
            fc_params,
            fc_macs,
            conv_layers,
            fc_layers,
        },
        s,
    ))
}

/// A stack of same-padded convolutions (no bias, ReLU between), `channels` in and out.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvStack {
    pub kernels: Vec<usize>,
    pub channels: usize,
    pub params: usize,
    /// MACs on a `size x size` input.
    pub macs: u64,
    /// Input pixels per side that one output pixel sees.
    pub receptive_field: usize,
    /// Nonlinearities inside the stack.
    pub nonlinearities: usize,
}

/// Builds the stack of `kernels` and measures it on a `[1, channels, size, size]` input.
pub fn conv_stack(kernels: &[usize], channels: usize, size: usize) -> Result<ConvStack> {
    if kernels.is_empty() || kernels.iter().any(|&k| k % 2 == 0) {
        return Err(Error::invalid(
            "conv_stack",
            format!("needs odd kernel sizes (same padding), got {kernels:?}"),
        ));
    }
    let mut g = rng(0);
    let mut net = Sequential::new();
    for (i, &k) in kernels.iter().enumerate() {
        if i > 0 {
            net = net.add(ReLU);
        }
        let o = Conv2dOptions::default().padding(k / 2);
        net = net.add(
            Conv2dConfig::new(channels, channels, k)
                .options(o)
                .bias(false)
                .init(&mut g)?,
        );
    }
    let s = summary(&mut net, &[1, channels, size, size])?;
    let last = s
        .layers()
        .last()
        .ok_or_else(|| Error::invalid("conv_stack", "empty summary"))?;
    Ok(ConvStack {
        kernels: kernels.to_vec(),
        channels,
        params: s.total_params,
        macs: s.total_macs,
        receptive_field: last.receptive_field.0,
        nonlinearities: kernels.len() - 1,
    })
}
