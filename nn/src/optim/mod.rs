//! Optimisers with PyTorch's exact update rules, learning-rate schedules and gradient clipping.
//!
//! A training step:
//! ```
//! use tapegrad_autograd::{rng, Tape, Tensor};
//! use tapegrad_nn::{layers::Linear, loss, Module};
//! use tapegrad_nn::optim::{Adam, AdamConfig, Optimizer};
//! let mut model = Linear::new(4, 3, &mut rng(0)).unwrap();
//! let mut opt = Adam::new(AdamConfig::default()).unwrap();
//! let tape = Tape::new();
//! let logits = model.forward(tape.input(Tensor::ones([2, 4]))).unwrap();
//! let grads = loss::cross_entropy(logits, &[0, 2]).unwrap().backward().unwrap();
//! opt.step(&mut model, &grads).unwrap();
//! ```
//!
//! Design:
//! - Parameters are visited by dotted name; each one's gradient is looked up in the `Grads` of
//!   the backward pass. Parameters without a gradient (frozen, or unused by the loss) are
//!   skipped and their state is left untouched, as PyTorch skips `p.grad is None`.
//! - There is no `zero_grad`: a `Grads` is fresh from each backward, nothing accumulates
//!   between steps. To accumulate over micro-batches, or to clip, collect a [`GradMap`], change
//!   it and call [`Optimizer::step_with`].
//! - State (momentum, moments, step counts) is keyed by parameter NAME, so
//!   [`Optimizer::state_dict`] can be saved with a checkpoint and loaded into a rebuilt model.
//! - Updates are written in place through `Param::data_mut`. While a tape that recorded the
//!   parameters is alive it still shares their storage, and the first write copies each
//!   parameter once (copy on write); stepping from a [`GradMap`] after the tape is dropped
//!   writes with no copy at all.
//! - [`Optimizer::step_param`] updates one named parameter with a given gradient, for driving
//!   an optimiser by hand (reference sequences, custom loops).
//! - Learning rate and weight decay are per parameter group ([`ParamGroup`]); the scheduler
//!   sets every group's rate.
//! - A new optimiser, in any crate, is a struct holding a [`Core`] (groups and named state,
//!   built by [`Core::new`] from [`Groups::new`] and its buffer names) and an
//!   [`Optimizer::step_param`] that checks the gradient ([`Core::check`]), resolves the
//!   parameter's rates ([`Groups::resolve`]) and updates it with its [`Slot`]
//!   ([`Core::slot_mut`]); saving, loading, groups and schedules then come with the trait.

mod adam;
mod grad_map;
mod groups;
mod plateau;
mod rmsprop;
pub mod schedule;
mod sgd;
mod state;

pub use adam::{Adam, AdamConfig, AdamW};
pub use grad_map::{clip_grad_norm, clip_grad_norm_with, clip_grad_value, GradMap};
pub use groups::{Groups, Hyper, ParamGroup};
pub use plateau::{PlateauConfig, PlateauMode, ReduceLROnPlateau, ThresholdMode};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{CosineAnnealingLR, LrScheduler, MultiStepLR, StepLR};
pub use sgd::{Sgd, SgdConfig};
pub use state::{Core, OptimizerState, Slot};

use crate::module::{Entry, Module};
use tapegrad_autograd::{Grads, Param, Result, Tensor};

/// An optimiser: updates parameters from their gradients.
pub trait Optimizer {
    /// Updates the parameter called `name` with `grad` (which must have its shape): the
    /// update rule. The parameter's group gives its learning rate and weight decay; its state
    /// lives under `name`. This is PyTorch's `p.grad = grad; opt.step()` for one parameter.
    fn step_param(&mut self, name: &str, param: &mut Param, grad: &Tensor) -> Result<()>;

    /// Groups and per-parameter state.
    fn core(&self) -> &Core;
    fn core_mut(&mut self) -> &mut Core;

    /// One step over every parameter of `model` that has a gradient in `grads`.
    fn step(&mut self, model: &mut dyn Module, grads: &Grads<'_>) -> Result<()> {
        step_all(self, model, |_, p| grads.param(p))
    }

    /// One step with gradients from a [`GradMap`] (clipped, accumulated...); parameters absent
    /// from the map are skipped.
    fn step_with(&mut self, model: &mut dyn Module, grads: &GradMap) -> Result<()> {
        step_all(self, model, |name, _| grads.get(name).cloned())
    }

    /// The learning rate of the default group.
    fn lr(&self) -> f32 {
        self.core().groups.lrs()[0]
    }

    /// Sets the learning rate of every group (as `for g in opt.param_groups: g["lr"] = lr`).
    fn set_lr(&mut self, lr: f32) -> Result<()> {
        let n = self.core().groups.len();
        self.core_mut().groups.set_lrs(&vec![lr; n])
    }

    /// The learning rate of each group, the default group first.
    fn group_lrs(&self) -> Vec<f32> {
        self.core().groups.lrs()
    }

    /// Sets each group's learning rate, the default group first.
    fn set_group_lrs(&mut self, lrs: &[f32]) -> Result<()> {
        self.core_mut().groups.set_lrs(lrs)
    }

    /// Adds a parameter group (see [`ParamGroup`]).
    fn add_group(&mut self, group: ParamGroup) -> Result<()> {
        self.core_mut().groups.add(group)
    }

    /// Buffers, step counts and learning rates, to resume training exactly.
    fn state_dict(&self) -> OptimizerState {
        self.core().state_dict()
    }

    /// Restores a state saved by [`Optimizer::state_dict`]; on error nothing changes.
    fn load_state_dict(&mut self, state: &OptimizerState) -> Result<()> {
        self.core_mut().load_state_dict(state)
    }
}

/// Steps every parameter for which `grad_of` gives a gradient. Every shape is checked first,
/// so that an error leaves all parameters unchanged.
fn step_all<O: Optimizer + ?Sized>(
    opt: &mut O,
    model: &mut dyn Module,
    grad_of: impl Fn(&str, &Param) -> Option<Tensor>,
) -> Result<()> {
    let mut checked = Ok(());
    model.visit_mut("", &mut |name, e| {
        if let (Entry::Param(p), true) = (e, checked.is_ok()) {
            if let Some(g) = grad_of(name, p) {
                checked = opt.core().check(name, p.value(), &g);
            }
        }
    });
    checked?;
    let mut result = Ok(());
    model.visit_mut("", &mut |name, e| {
        if let (Entry::Param(p), true) = (e, result.is_ok()) {
            if let Some(g) = grad_of(name, p) {
                result = opt.step_param(name, p, &g);
            }
        }
    });
    result
}

/// PyTorch's `lerp_(end, w)` on CPU: `a + w (b - a)` for `w < 0.5`, else `b - (b - a)(1 - w)`,
/// so the moving averages round as PyTorch's do.
#[inline]
pub(crate) fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}
