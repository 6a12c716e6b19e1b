//! The `Module` trait: a forward pass on vars, and a visitor over named parameters and buffers.
//!
//! Names are dotted paths, as PyTorch's `state_dict`: `features.0.weight`,
//! `layer1.0.bn1.running_mean`. A container passes `prefix + child_name + "."` to each child.
//!
//! A custom module is a struct holding its layers with `#[derive(Module)]`, and a `forward`
//! written as an inherent method: the derive names every parameter, buffer and child after its
//! field, numbers `Vec`s, skips `None`s, and passes train/eval on (see [`crate::fields`] for
//! what a field may hold, and the attributes for what its type cannot tell):
//!
//! ```
//! use tapegrad_autograd::{rng, Conv2dOptions, Param, Result, Tensor, Var};
//! use tapegrad_nn::layers::{BatchNorm2d, Conv2d, Conv2dConfig};
//! use tapegrad_nn::Module;
//!
//! /// y = relu(bn(conv(x)) * scale) + x: a residual join, whose gradient sums both paths.
//! #[derive(Module)]
//! struct Residual {
//!     conv: Conv2d,
//!     bn: BatchNorm2d,
//!     scale: Param,
//!     #[module(skip)]
//!     channels: usize,
//! }
//!
//! impl Residual {
//!     fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
//!         let s = x.tape().param(&self.scale);
//!         self.bn.forward(self.conv.forward(x)?)?.mul(s)?.relu().add(x)
//!     }
//! }
//! let mut g = rng(0);
//! let conv = Conv2dConfig::new(4, 4, 3).padding(1).bias(false).init(&mut g)?;
//! let m = Residual { conv, bn: BatchNorm2d::new(4)?, scale: Param::new(Tensor::scalar(2.0)), channels: 4 };
//! assert_eq!(m.parameter_names(), ["conv.weight", "bn.weight", "bn.bias", "scale"]);
//! # Ok::<(), tapegrad_autograd::Error>(())
//! ```
//!
//! A leaf with its own arithmetic may implement the trait by hand (a module that draws random
//! numbers in `forward` also visits its generator as an [`Entry::Rng`], so that checkpoints
//! resume it exactly):
//!
//! ```
//! use tapegrad_autograd::{Result, Var, Tensor, Param};
//! use tapegrad_nn::{Entry, EntryRef, Module};
//!
//! /// y = relu(x * scale) + x.
//! struct Scaled { scale: Param }
//!
//! impl Module for Scaled {
//!     fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
//!         let s = x.tape().param(&self.scale);
//!         x.mul(s)?.relu().add(x)
//!     }
//!     fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
//!         f(&format!("{prefix}scale"), EntryRef::Param(&self.scale));
//!     }
//!     fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
//!         f(&format!("{prefix}scale"), Entry::Param(&mut self.scale));
//!     }
//! }
//! let m = Scaled { scale: Param::new(Tensor::scalar(2.0)) };
//! assert_eq!(m.num_parameters(), 1);
//! ```

pub use crate::summary::scope::ModuleId;
use tapegrad_autograd::{Param, Result, Rng, Tensor, Var};

/// A parameter (trained), a buffer (state that is saved but not trained, such as batch norm's
/// running statistics), an integer counter or a random generator, as read by
/// [`Module::visit`] (counting, saving, reporting).
#[derive(Clone, Copy)]
pub enum EntryRef<'a> {
    Param(&'a Param),
    Buffer(&'a Tensor),
    /// An integer buffer (batch norm's `num_batches_tracked`).
    Counter(u64),
    /// A generator the module draws from in training (dropout's masks).
    Rng(&'a Rng),
}

/// An entry as [`Module::visit_mut`] hands it out, to be changed (loading, optimising,
/// initialising); see [`EntryRef`] for each kind.
pub enum Entry<'a> {
    Param(&'a mut Param),
    Buffer(&'a mut Tensor),
    /// An integer buffer: batch norm's `num_batches_tracked`, which PyTorch keeps as an int64
    /// scalar. Kept and saved as an integer, so it counts exactly past 2^24 (where an f32
    /// would stop).
    Counter(&'a mut u64),
    /// A generator the module draws from in training (dropout's masks), named
    /// `<layer>.rng_state` by convention. It is not part of PyTorch's `state_dict`; checkpoints
    /// save its state beside the tensors so that a resumed run draws the same numbers.
    Rng(&'a mut Rng),
}

/// The geometry and cost of a leaf layer, as summaries need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerInfo {
    /// A convolution: each output element costs `in_per_group * kh * kw` MACs.
    Conv {
        in_per_group: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
    },
    /// A fully connected layer: each output element costs `in_features` MACs.
    Linear { in_features: usize },
    /// A sliding-window pooling layer (no MACs).
    Pool {
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
    },
    /// Adaptive pooling to a fixed output size: its windows follow from the input's size
    /// (`(1, 1)`, global pooling, sees the whole map).
    AdaptivePool { output: (usize, usize) },
    /// Anything else: a container, an activation, a normalisation.
    Other,
}

/// A layer or a network.
pub trait Module {
    /// The forward pass; parameters are recorded on `x`'s tape. A hand-written layer runs its
    /// body through [`crate::summary::scope::scoped`] so that summaries see it.
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>>;

    /// Calls `f` with the dotted name (`prefix` + own name) of every parameter, buffer,
    /// counter and generator, in registration order, to read them.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>));

    /// [`Module::visit`] handing out the entries to be changed, in the same order.
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>));

    /// Training (true) or evaluation mode, for layers that differ (batch norm, dropout).
    /// Containers pass it on to their children.
    fn set_training(&mut self, _on: bool) {}

    /// The mode last set, for a module that keeps one (a layer that differs, or a container
    /// holding one: its first such child's); `None` when nothing in it depends on the mode.
    fn is_training(&self) -> Option<bool> {
        None
    }

    /// Calls `f` with the dotted name (`prefix` + own name) and identity of every module
    /// inside this one, parents before children (summaries name the modules they see run
    /// from it). A leaf keeps the default, which lists none.
    fn visit_modules(&self, _prefix: &str, _f: &mut dyn FnMut(&str, ModuleId)) {}

    /// This module's identity while a summary runs (its address and type); a wrapper such
    /// as `Box` gives the wrapped module's.
    fn module_id(&self) -> ModuleId {
        ModuleId::of(self)
    }

    /// What the layer computes, for summaries (MACs, receptive field). Containers and custom
    /// modules keep the default.
    fn describe(&self) -> LayerInfo {
        LayerInfo::Other
    }

    /// Short type name for summaries (`Conv2d`, `Linear`, ...).
    fn type_name(&self) -> &'static str {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base)
    }

    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, e| {
            if let EntryRef::Param(p) = e {
                n += p.value().numel();
            }
        });
        n
    }

    /// Dotted names of the parameters, in order.
    fn parameter_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit("", &mut |name, e| {
            if let EntryRef::Param(_) = e {
                names.push(name.to_string());
            }
        });
        names
    }

    /// Gives every parameter its dotted name (`layer1.0.conv1.weight`), so traces and graph
    /// exports of a tape show which parameter each leaf is.
    fn name_parameters(&mut self) {
        self.visit_mut("", &mut |name, e| {
            if let Entry::Param(p) = e {
                p.set_name(name);
            }
        });
    }

    /// Sets training mode on.
    fn train(&mut self) {
        self.set_training(true)
    }

    /// Sets evaluation mode on.
    fn eval(&mut self) {
        self.set_training(false)
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        (**self).forward(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        (**self).visit(prefix, f)
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        (**self).visit_mut(prefix, f)
    }
    fn set_training(&mut self, on: bool) {
        (**self).set_training(on)
    }
    fn is_training(&self) -> Option<bool> {
        (**self).is_training()
    }
    fn visit_modules(&self, prefix: &str, f: &mut dyn FnMut(&str, ModuleId)) {
        (**self).visit_modules(prefix, f)
    }
    fn module_id(&self) -> ModuleId {
        (**self).module_id()
    }
    fn type_name(&self) -> &'static str {
        (**self).type_name()
    }
    fn describe(&self) -> LayerInfo {
        (**self).describe()
    }
}

/// Children run one after another; they are named `0`, `1`, ... as in PyTorch's `Sequential`.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a layer (builder style).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    pub fn push(&mut self, layer: Box<dyn Module>) {
        self.layers.push(layer);
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    pub fn layers_mut(&mut self) -> &mut [Box<dyn Module>] {
        &mut self.layers
    }
}

impl Module for Sequential {
    /// Each layer's output is released once the next layer has read it (see `Var::release`):
    /// the tape keeps only what backward needs, and an inference pass only the layer at work.
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |s, mut x| {
            for (i, l) in s.layers.iter_mut().enumerate() {
                let y = l.forward(x)?;
                x = if i == 0 { y } else { crate::consumed(x, y) };
            }
            Ok(x)
        })
    }

    fn is_training(&self) -> Option<bool> {
        self.layers.iter().find_map(|l| l.is_training())
    }

    fn visit_modules(&self, prefix: &str, f: &mut dyn FnMut(&str, ModuleId)) {
        for (i, l) in self.layers.iter().enumerate() {
            let name = format!("{prefix}{i}");
            f(&name, l.module_id());
            l.visit_modules(&format!("{name}."), f);
        }
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit(&format!("{prefix}{i}."), f);
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit_mut(&format!("{prefix}{i}."), f);
        }
    }

    fn set_training(&mut self, on: bool) {
        for l in &mut self.layers {
            l.set_training(on);
        }
    }
}
