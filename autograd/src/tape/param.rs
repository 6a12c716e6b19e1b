//! Parameters: tensors that live outside any tape (in modules), with a stable identity.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::sync::atomic::{AtomicU64, Ordering};

/// The stable identity of a parameter: `Grads` are looked up by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A trainable tensor with a stable id. Recording it on a tape shares its storage; an optimiser
/// replaces its value in place (no copy when no tape still holds the old value).
#[derive(Debug)]
pub struct Param {
    id: ParamId,
    value: Tensor,
    requires_grad: bool,
    name: Option<String>,
}

impl Param {
    pub fn new(value: Tensor) -> Param {
        Param {
            id: ParamId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            value,
            requires_grad: true,
            name: None,
        }
    }

    /// A parameter with a name, shown in traces and graphs.
    pub fn named(value: Tensor, name: impl Into<String>) -> Param {
        let mut p = Param::new(value);
        p.name = Some(name.into());
        p
    }

    pub fn id(&self) -> ParamId {
        self.id
    }

    pub fn value(&self) -> &Tensor {
        &self.value
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = Some(name.into());
    }

    /// The data for an in-place update (copied first only if a tape still shares it).
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.value.data_mut()
    }

    /// Replaces the value; the shape must stay the same.
    pub fn set(&mut self, value: Tensor) -> Result<()> {
        if value.shape() != self.value.shape() {
            return Err(Error::shape(
                "Param::set",
                &[self.value.shape(), value.shape()],
                "the new value to keep the parameter's shape",
            ));
        }
        self.value = value;
        Ok(())
    }

    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }

    /// Freezes (false) or unfreezes the parameter: a frozen one is recorded as a constant.
    pub fn set_requires_grad(&mut self, on: bool) {
        self.requires_grad = on;
    }

    /// A copy with the same value and a new identity.
    pub fn duplicate(&self) -> Param {
        let mut p = Param::new(self.value.clone());
        p.name = self.name.clone();
        p.requires_grad = self.requires_grad;
        p
    }
}
