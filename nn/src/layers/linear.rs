//! `Linear`: `y = x Wᵀ + b`, PyTorch's `nn.Linear` (weight `[out, in]`, bias `[out]`).

use crate::init;
use crate::module::{Entry, EntryRef, LayerInfo, Module};
use tapegrad_autograd::{Error, Param, Result, Rng, Tensor, Var};

/// A fully connected layer. Parameters are named `weight` and `bias`, as in PyTorch, so a
/// state dict's keys read `classifier.1.weight`.
#[derive(Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Param,
    /// `[out]`, if the layer has one.
    pub bias: Option<Param>,
}

/// What makes a [`Linear`] beyond PyTorch's defaults: `LinearConfig::new(in, out).bias(false)
/// .init(&mut rng)?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearConfig {
    pub in_features: usize,
    pub out_features: usize,
    /// A learned bias (PyTorch's default: true).
    pub bias: bool,
}

impl LinearConfig {
    pub fn new(in_features: usize, out_features: usize) -> LinearConfig {
        LinearConfig {
            in_features,
            out_features,
            bias: true,
        }
    }

    pub fn bias(mut self, on: bool) -> LinearConfig {
        self.bias = on;
        self
    }

    /// The layer with PyTorch's default initialisation: weight and bias both
    /// `U(-1/sqrt(in), 1/sqrt(in))` (see [`init::default_weight`]); an error for an empty
    /// input size.
    pub fn init(self, rng: &mut Rng) -> Result<Linear> {
        let (i, o) = (self.in_features, self.out_features);
        if i == 0 || o == 0 {
            return Err(Error::invalid(
                "Linear",
                format!("in_features ({i}) and out_features ({o}) must be positive"),
            ));
        }
        let w = init::default_weight(&[o, i], rng)?;
        let b = self.bias.then(|| init::default_bias(i, o, rng));
        Ok(Linear {
            weight: Param::named(w, "weight"),
            bias: b.map(|b| Param::named(b, "bias")),
        })
    }
}

impl Linear {
    /// `nn.Linear(in, out)`: with a bias, PyTorch's initialisation. Other settings:
    /// [`LinearConfig`].
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Result<Linear> {
        LinearConfig::new(in_features, out_features).init(rng)
    }

    /// A layer with given values: weight `[out, in]`, bias `[out]`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.rank() != 2 {
            return Err(Error::shape(
                "Linear::from_tensors",
                &[weight.shape()],
                "a weight of shape [out, in]",
            ));
        }
        if let Some(b) = &bias {
            if b.dims() != [weight.dims()[0]] {
                return Err(Error::shape(
                    "Linear::from_tensors",
                    &[weight.shape(), b.shape()],
                    "a bias of shape [out]",
                ));
            }
        }
        Ok(Linear {
            weight: Param::named(weight, "weight"),
            bias: bias.map(|b| Param::named(b, "bias")),
        })
    }

    pub fn in_features(&self) -> usize {
        self.weight.value().dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.value().dims()[0]
    }
}

impl Module for Linear {
    /// `x` of shape `[..., in]` to `[..., out]`.
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| {
            let tape = x.tape();
            let w = tape.param(&m.weight);
            let b = m.bias.as_ref().map(|b| tape.param(b));
            x.linear(w, b)
        })
    }

    fn describe(&self) -> LayerInfo {
        LayerInfo::Linear {
            in_features: self.in_features(),
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
