//! `Conv2d`: a 2-d convolution layer holding its weights, PyTorch's layout and initialisation.

use crate::module::{Entry, EntryRef, LayerInfo, Module};
use tapegrad_autograd::{Conv2dOptions, Error, Param, Result, Rng, Tensor, Var};

/// `nn.Conv2d`: weight `[out, in/groups, kh, kw]`, optional bias `[out]`, both initialised as
/// PyTorch does, from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with `fan_in = in/groups * kh * kw`
/// (Kaiming uniform with a = sqrt(5)).
pub struct Conv2d {
    pub weight: Param,
    pub bias: Option<Param>,
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// A `k x k` convolution with the given options (stride, padding, dilation, groups).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv2dOptions,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Conv2d> {
        Conv2d::rect(
            in_channels,
            out_channels,
            (kernel, kernel),
            options,
            bias,
            rng,
        )
    }

    /// A convolution with a non-square kernel.
    pub fn rect(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Conv2d> {
        let g = options.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            return Err(Error::invalid(
                "Conv2d",
                format!("groups ({g}) must divide both in_channels ({in_channels}) and out_channels ({out_channels})"),
            ));
        }
        if kernel.0 == 0 || kernel.1 == 0 || in_channels == 0 || out_channels == 0 {
            return Err(Error::invalid(
                "Conv2d",
                format!("channels ({in_channels}, {out_channels}) and kernel {kernel:?} must be positive"),
            ));
        }
        let fan_in = in_channels / g * kernel.0 * kernel.1;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let weight = Tensor::rand(
            [out_channels, in_channels / g, kernel.0, kernel.1],
            -bound,
            bound,
            rng,
        );
        let bias = bias.then(|| Param::new(Tensor::rand([out_channels], -bound, bound, rng)));
        Ok(Conv2d {
            weight: Param::new(weight),
            bias,
            options,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.weight.value().dims()[1] * self.options.groups
    }

    pub fn out_channels(&self) -> usize {
        self.weight.value().dims()[0]
    }

    pub fn kernel(&self) -> (usize, usize) {
        let d = self.weight.value().dims();
        (d[2], d[3])
    }
}

impl Module for Conv2d {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| {
            let tape = x.tape();
            let b = m.bias.as_ref().map(|b| tape.param(b));
            x.conv2d(tape.param(&m.weight), b, m.options)
        })
    }

    fn describe(&self) -> LayerInfo {
        LayerInfo::Conv {
            in_per_group: self.weight.value().dims()[1],
            kernel: self.kernel(),
            stride: self.options.stride,
            padding: self.options.padding,
            dilation: self.options.dilation,
        }
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        f(&format!("{prefix}weight"), EntryRef::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(&format!("{prefix}bias"), EntryRef::Param(b));
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&format!("{prefix}weight"), Entry::Param(&mut self.weight));
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}bias"), Entry::Param(b));
        }
    }
}
