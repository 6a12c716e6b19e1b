//! Parameter groups: learning rate and weight decay chosen per parameter by its dotted name.
//!
//! Every optimiser has a default group (the rates it was built with). Further groups select
//! parameters by a name prefix, a list of names or any predicate; the first group that selects a
//! parameter wins, and unselected parameters fall in the default group. A group's rates are
//! absolute, as PyTorch's `param_groups`; rates left unset are copied from the default group
//! when the group is added.
//!
//! ```
//! use tapegrad_nn::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
//! let mut opt = Sgd::new(SgdConfig { lr: 0.01, weight_decay: 5e-4, ..Default::default() }).unwrap();
//! // Caffe-era AlexNet: biases learn twice as fast and are not decayed.
//! opt.add_group(ParamGroup::matching("biases", |n| n.ends_with("bias")).lr(0.02).weight_decay(0.0))
//!     .unwrap();
//! assert_eq!(opt.group_lrs(), vec![0.01, 0.02]);
//! ```

use std::fmt;
use std::sync::Arc;
use tapegrad_autograd::{Error, Result};

/// How a group picks its parameters.
#[derive(Clone)]
enum Selector {
    Prefix(String),
    Names(Vec<String>),
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

/// A group of parameters with their own learning rate and/or weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    label: String,
    selector: Selector,
    lr: Option<f32>,
    weight_decay: Option<f32>,
}

impl fmt::Debug for ParamGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParamGroup")
            .field("label", &self.label)
            .field("lr", &self.lr)
            .field("weight_decay", &self.weight_decay)
            .finish()
    }
}

impl ParamGroup {
    /// Parameters whose dotted name starts with `prefix` (`"classifier."`).
    pub fn prefix(prefix: impl Into<String>) -> ParamGroup {
        let p = prefix.into();
        ParamGroup {
            label: format!("prefix {p}"),
            selector: Selector::Prefix(p),
            lr: None,
            weight_decay: None,
        }
    }

    /// Exactly these parameters.
    pub fn names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> ParamGroup {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        ParamGroup {
            label: format!("names {names:?}"),
            selector: Selector::Names(names),
            lr: None,
            weight_decay: None,
        }
    }

    /// Parameters whose name satisfies `select`; `label` names the group in messages.
    pub fn matching(
        label: impl Into<String>,
        select: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> ParamGroup {
        ParamGroup {
            label: label.into(),
            selector: Selector::Predicate(Arc::new(select)),
            lr: None,
            weight_decay: None,
        }
    }

    /// The group's learning rate (default: the optimiser's).
    pub fn lr(mut self, lr: f32) -> ParamGroup {
        self.lr = Some(lr);
        self
    }

    /// The group's weight decay (default: the optimiser's).
    pub fn weight_decay(mut self, wd: f32) -> ParamGroup {
        self.weight_decay = Some(wd);
        self
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the group selects the parameter called `name`.
    pub fn selects(&self, name: &str) -> bool {
        match &self.selector {
            Selector::Prefix(p) => name.starts_with(p.as_str()),
            Selector::Names(ns) => ns.iter().any(|n| n == name),
            Selector::Predicate(f) => f(name),
        }
    }
}

/// The rates that apply to one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    pub lr: f32,
    pub weight_decay: f32,
}

impl Hyper {
    pub fn checked(op: &'static str, lr: f32, weight_decay: f32) -> Result<Hyper> {
        check_lr(op, lr)?;
        if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
            return Err(Error::invalid(
                op,
                format!("weight decay {weight_decay} must be finite and >= 0"),
            ));
        }
        Ok(Hyper { lr, weight_decay })
    }
}

pub fn check_lr(op: &'static str, lr: f32) -> Result<()> {
    if lr >= 0.0 && lr.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("learning rate {lr} must be finite and >= 0"),
        ))
    }
}

/// The default group and the added ones, in order.
#[derive(Clone, Debug)]
pub struct Groups {
    default: Hyper,
    groups: Vec<(ParamGroup, Hyper)>,
}

impl Groups {
    pub fn new(op: &'static str, lr: f32, weight_decay: f32) -> Result<Groups> {
        Ok(Groups {
            default: Hyper::checked(op, lr, weight_decay)?,
            groups: Vec::new(),
        })
    }

    /// Adds a group; its unset rates are copied from the default group.
    pub fn add(&mut self, g: ParamGroup) -> Result<()> {
        let lr = g.lr.unwrap_or(self.default.lr);
        let wd = g.weight_decay.unwrap_or(self.default.weight_decay);
        let h = Hyper::checked("add_group", lr, wd)?;
        self.groups.push((g, h));
        Ok(())
    }

    /// The rates of the parameter called `name`: its first selecting group's, else the
    /// default's.
    pub fn resolve(&self, name: &str) -> Hyper {
        self.groups
            .iter()
            .find(|(g, _)| g.selects(name))
            .map_or(self.default, |(_, h)| *h)
    }

    /// Number of groups, the default one included.
    pub fn len(&self) -> usize {
        1 + self.groups.len()
    }

    /// Always false: the default group exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The learning rate of each group, the default group first.
    pub fn lrs(&self) -> Vec<f32> {
        std::iter::once(self.default.lr)
            .chain(self.groups.iter().map(|(_, h)| h.lr))
            .collect()
    }

    /// Sets every group's learning rate, the default group first.
    pub fn set_lrs(&mut self, lrs: &[f32]) -> Result<()> {
        if lrs.len() != self.len() {
            return Err(Error::invalid(
                "set_group_lrs",
                format!(
                    "{} learning rates given for {} parameter groups",
                    lrs.len(),
                    self.len()
                ),
            ));
        }
        for &lr in lrs {
            check_lr("set_group_lrs", lr)?;
        }
        self.default.lr = lrs[0];
        for ((_, h), &lr) in self.groups.iter_mut().zip(&lrs[1..]) {
            h.lr = lr;
        }
        Ok(())
    }
}
