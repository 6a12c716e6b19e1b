//! Activations as modules, so they can sit in a `Sequential`. They hold no parameters; each
//! forwards to the `Var` op of the same name, whose derivative comes from the tape.

use crate::module::{Entry, EntryRef, Module};
use tapegrad_autograd::{Result, Var};

/// Declares a parameterless module whose forward is `$body` applied to `x`.
macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name;

        impl Module for $name {
            fn forward<'t>(&mut self, $x: Var<'t>) -> Result<Var<'t>> {
                crate::summary::scope::scoped(self, $x, |_, $x| $body)
            }
            fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
            fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
        }
    };
}

activation!(
    /// `max(x, 0)`; the derivative at 0 is 0, as PyTorch.
    ReLU,
    |x| Ok(x.relu())
);
activation!(
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    |x| Ok(x.sigmoid())
);
activation!(
    /// `tanh(x) = 2 sigmoid(2x) - 1`.
    Tanh,
    |x| Ok(x.tanh())
);
activation!(
    /// Swish (SiLU): `x * sigmoid(x)`.
    Swish,
    |x| Ok(x.swish())
);
activation!(
    /// Passes its input through unchanged (a placeholder, as PyTorch's `nn.Identity`).
    Identity,
    |x| Ok(x)
);

/// `x` for `x > 0`, else `slope * x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    pub slope: f32,
}

impl LeakyReLU {
    pub fn new(slope: f32) -> LeakyReLU {
        LeakyReLU { slope }
    }
}

impl Default for LeakyReLU {
    /// PyTorch's default slope, 0.01.
    fn default() -> Self {
        LeakyReLU { slope: 0.01 }
    }
}

impl Module for LeakyReLU {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| Ok(x.leaky_relu(m.slope)))
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// Softmax along an axis (the class axis, 1 for `[N, C]` scores).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    pub axis: isize,
}

impl Softmax {
    pub fn new(axis: isize) -> Softmax {
        Softmax { axis }
    }
}

impl Module for Softmax {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| x.softmax(m.axis))
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// Log-softmax along an axis (feeds [`crate::loss::nll_loss`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSoftmax {
    pub axis: isize,
}

impl LogSoftmax {
    pub fn new(axis: isize) -> LogSoftmax {
        LogSoftmax { axis }
    }
}

impl Module for LogSoftmax {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| x.log_softmax(m.axis))
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// Flattens axes `start_dim..` into one: `[N, C, H, W] -> [N, C*H*W]` with the default
/// `start_dim = 1` (the batch axis is kept), between the convolutions and the classifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Flatten {
    pub start_dim: usize,
}

impl Flatten {
    pub fn new(start_dim: usize) -> Flatten {
        Flatten { start_dim }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1 }
    }
}

impl Module for Flatten {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| x.flatten(m.start_dim))
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}
