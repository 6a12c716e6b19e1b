//! `GradMap`: gradients by parameter name, detached from the tape, so they can be changed
//! (clipped, scaled, accumulated over micro-batches) before the optimiser uses them.
//!
//! `Grads` is an immutable view of one backward pass. When gradients need changing, collect
//! them into a `GradMap`, change it, and pass it to [`Optimizer::step_with`]:
//!
//! ```
//! use tapegrad_autograd::{rng, Tape, Tensor};
//! use tapegrad_nn::{layers::Linear, Module};
//! use tapegrad_nn::optim::{clip_grad_norm, GradMap, Optimizer, Sgd, SgdConfig};
//! let mut model = Linear::new(3, 2, &mut rng(0)).unwrap();
//! let mut opt = Sgd::new(SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
//! let mut grads = {
//!     let tape = Tape::new();
//!     let y = model.forward(tape.input(Tensor::ones([4, 3]))).unwrap();
//!     let g = y.square().sum(&[], false).unwrap().backward().unwrap();
//!     GradMap::from_grads(&model, &g)
//! }; // the tape is gone: the update below writes into the parameters without copying them
//! let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
//! assert!(grads.total_norm(2.0).unwrap() <= 1.0 + 1e-5 && norm >= 0.0);
//! opt.step_with(&mut model, &grads).unwrap();
//! ```
//!
//! [`Optimizer::step_with`]: super::Optimizer::step_with

use crate::module::{EntryRef, Module};
use std::collections::BTreeMap;
use tapegrad_autograd::{Error, Grads, Result, Tensor};

/// Gradients keyed by dotted parameter name, in name order (so norms sum in a fixed order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradMap {
    grads: BTreeMap<String, Tensor>,
}

impl GradMap {
    pub fn new() -> GradMap {
        GradMap::default()
    }

    /// The gradient of every parameter of `model` that `grads` holds one for. The tensors share
    /// storage with `grads` (no copy).
    pub fn from_grads(model: &dyn Module, grads: &Grads<'_>) -> GradMap {
        let mut map = GradMap::new();
        model.visit("", &mut |name, e| {
            if let EntryRef::Param(p) = e {
                if let Some(g) = grads.param(p) {
                    map.grads.insert(name.to_string(), g);
                }
            }
        });
        map
    }

    /// Sets the gradient of `name`, returning the previous one.
    pub fn insert(&mut self, name: impl Into<String>, grad: Tensor) -> Option<Tensor> {
        self.grads.insert(name.into(), grad)
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.grads.get(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.grads.remove(name)
    }

    pub fn len(&self) -> usize {
        self.grads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// `(name, gradient)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.grads.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Adds `other` into this map, name by name (gradient accumulation over micro-batches).
    pub fn accumulate(&mut self, other: &GradMap) -> Result<()> {
        for (name, g) in &other.grads {
            if let Some(mine) = self.grads.get(name) {
                if mine.shape() != g.shape() {
                    return Err(Error::shape(
                        "GradMap::accumulate",
                        &[mine.shape(), g.shape()],
                        format!("equal shapes for the gradients of {name}"),
                    ));
                }
            }
        }
        for (name, g) in &other.grads {
            match self.grads.get_mut(name) {
                Some(mine) => {
                    for (a, b) in mine.data_mut().iter_mut().zip(g.data()) {
                        *a += b;
                    }
                }
                None => {
                    self.grads.insert(name.clone(), g.clone());
                }
            }
        }
        Ok(())
    }

    /// Multiplies every gradient by `s` (e.g. `1 / micro_batches` after accumulating).
    pub fn scale(&mut self, s: f32) {
        for g in self.grads.values_mut() {
            g.data_mut().iter_mut().for_each(|x| *x *= s);
        }
    }

    /// The `p`-norm of all gradients taken together as one vector (`f32::INFINITY`: the
    /// largest magnitude). Summed in f64.
    pub fn total_norm(&self, p: f32) -> Result<f32> {
        if p.is_nan() || p <= 0.0 {
            return Err(Error::invalid(
                "total_norm",
                format!("the norm type {p} must be > 0 (or infinity)"),
            ));
        }
        let values = self.grads.values().flat_map(|g| g.data().iter());
        if p == f32::INFINITY {
            // NaN propagates (f32::max would drop it), as PyTorch's norm.
            let m = values.fold(0.0f32, |m, &x| {
                if x.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.max(x.abs())
                }
            });
            return Ok(m);
        }
        let p = p as f64;
        let s: f64 = if p == 2.0 {
            values.map(|&x| (x as f64) * (x as f64)).sum()
        } else {
            values.map(|&x| (x as f64).abs().powf(p)).sum()
        };
        Ok(s.powf(1.0 / p) as f32)
    }
}

/// Rescales all gradients together so that their 2-norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_`: with `n` the total norm, every gradient is multiplied by
/// `min(1, max_norm / (n + 1e-6))`. Returns `n`, the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradMap, max_norm: f32) -> Result<f32> {
    clip_grad_norm_with(grads, max_norm, 2.0)
}

/// [`clip_grad_norm`] with another norm (`f32::INFINITY` for the largest magnitude).
pub fn clip_grad_norm_with(grads: &mut GradMap, max_norm: f32, norm_type: f32) -> Result<f32> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::invalid(
            "clip_grad_norm",
            format!("max_norm {max_norm} must be >= 0"),
        ));
    }
    let n = grads.total_norm(norm_type)?;
    let coef = (max_norm as f64 / (n as f64 + 1e-6)) as f32;
    // A NaN norm gives a NaN coefficient, which poisons the gradients as it does in PyTorch
    // (a non-finite loss should be seen, not hidden).
    if coef.is_nan() || coef < 1.0 {
        grads.scale(coef);
    }
    Ok(n)
}

/// Clamps every gradient element into `[-clip, clip]`, as PyTorch's `clip_grad_value_`.
pub fn clip_grad_value(grads: &mut GradMap, clip: f32) -> Result<()> {
    if clip.is_nan() || clip < 0.0 {
        return Err(Error::invalid(
            "clip_grad_value",
            format!("the clip value {clip} must be >= 0"),
        ));
    }
    for g in grads.grads.values_mut() {
        g.data_mut()
            .iter_mut()
            .for_each(|x| *x = x.clamp(-clip, clip));
    }
    Ok(())
}
