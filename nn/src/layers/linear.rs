//! `Linear`: `y = x Wᵀ + b`, PyTorch's `nn.Linear` (weight `[out, in]`, bias `[out]`).

use crate::init;
use crate::module::{Entry, EntryRef, LayerInfo, Module};
use tapegrad_autograd::{Error, Param, Result, Rng, Tensor, Var};

/// A fully connected layer. Parameters are named `weight` and `bias`, as in PyTorch, so a
/// state dict's keys read `classifier.1.weight`.
#[derive(Debug)]
pub struct Linear {
    weight: Param,
    bias: Option<Param>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation: weight and bias both
    /// `U(-1/sqrt(in), 1/sqrt(in))` (see [`init::default_weight`]).
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Linear {
        let dims = [out_features, in_features];
        // Rank 2 always has fans, so this cannot fail.
        let w = init::default_weight(&dims, rng).expect("a rank-2 weight has fans");
        let b = bias.then(|| init::default_bias(in_features, out_features, rng));
        Linear {
            weight: Param::named(w, "weight"),
            bias: b.map(|b| Param::named(b, "bias")),
        }
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

    pub fn weight(&self) -> &Param {
        &self.weight
    }

    pub fn weight_mut(&mut self) -> &mut Param {
        &mut self.weight
    }

    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    pub fn bias_mut(&mut self) -> Option<&mut Param> {
        self.bias.as_mut()
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
