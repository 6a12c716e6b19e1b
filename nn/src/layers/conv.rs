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

/// What makes a [`Conv2d`] beyond its sizes and PyTorch's defaults (stride 1, no padding, no
/// dilation, one group, a bias): `Conv2dConfig::new(3, 64, 7).stride(2).padding(3).bias(false)
/// .init(&mut rng)?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: (usize, usize),
    pub options: Conv2dOptions,
    /// A learned bias (PyTorch's default: true).
    pub bias: bool,
}

impl Conv2dConfig {
    /// A `kernel x kernel` convolution.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Conv2dConfig {
        Conv2dConfig::rect(in_channels, out_channels, (kernel, kernel))
    }

    /// A `kh x kw` convolution.
    pub fn rect(in_channels: usize, out_channels: usize, kernel: (usize, usize)) -> Conv2dConfig {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel,
            options: Conv2dOptions::default(),
            bias: true,
        }
    }

    /// Stride, padding, dilation and groups at once.
    pub fn options(mut self, options: Conv2dOptions) -> Conv2dConfig {
        self.options = options;
        self
    }

    pub fn stride(mut self, s: usize) -> Conv2dConfig {
        self.options = self.options.stride(s);
        self
    }

    pub fn padding(mut self, p: usize) -> Conv2dConfig {
        self.options = self.options.padding(p);
        self
    }

    pub fn dilation(mut self, d: usize) -> Conv2dConfig {
        self.options = self.options.dilation(d);
        self
    }

    pub fn groups(mut self, g: usize) -> Conv2dConfig {
        self.options = self.options.groups(g);
        self
    }

    pub fn bias(mut self, on: bool) -> Conv2dConfig {
        self.bias = on;
        self
    }

    /// The layer, initialised as PyTorch does; an error for sizes that make no convolution.
    pub fn init(self, rng: &mut Rng) -> Result<Conv2d> {
        let Conv2dConfig {
            in_channels,
            out_channels,
            kernel,
            options,
            bias,
        } = self;
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
        let fan_in = (in_channels / g)
            .checked_mul(kernel.0)
            .and_then(|f| f.checked_mul(kernel.1))
            .ok_or_else(|| {
                Error::invalid(
                    "Conv2d",
                    format!("in_channels {in_channels} with kernel {kernel:?} overflow the size of a weight"),
                )
            })?;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let dims = [out_channels, in_channels / g, kernel.0, kernel.1];
        let weight = Tensor::try_rand(dims, -bound, bound, rng)?;
        // The weight exists, so `out_channels` values do too.
        let bias = bias.then(|| Param::new(Tensor::rand([out_channels], -bound, bound, rng)));
        Ok(Conv2d {
            weight: Param::new(weight),
            bias,
            options,
        })
    }
}

impl Conv2d {
    /// `nn.Conv2d(in, out, kernel)`: stride 1, no padding, a bias, PyTorch's initialisation.
    /// Other settings: [`Conv2dConfig`].
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut Rng,
    ) -> Result<Conv2d> {
        Conv2dConfig::new(in_channels, out_channels, kernel).init(rng)
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
