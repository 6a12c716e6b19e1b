//! Optimiser state, keyed by parameter NAME (not by identity), so it can be saved with a
//! checkpoint and loaded into a freshly built model whose parameters have new ids.

use super::groups::Groups;
use std::collections::HashMap;
use tapegrad_autograd::{Error, Result, Tensor};

/// One parameter's state: the steps it has taken and its buffers (momentum, moments...), in the
/// order of the optimiser's buffer names; a buffer is `None` until first needed.
#[derive(Clone, Debug, Default)]
pub struct Slot {
    pub step: u64,
    pub buffers: Vec<Option<Tensor>>,
}

impl Slot {
    /// Buffer `i`, created as zeros shaped like `like` if absent.
    pub fn buffer_or_zeros(&mut self, i: usize, like: &Tensor) -> &mut Tensor {
        self.buffers[i].get_or_insert_with(|| Tensor::zeros(like.shape()))
    }
}

/// The state the optimiser keeps: parameter groups and one [`Slot`] per parameter name.
#[derive(Clone, Debug)]
pub struct Core {
    pub groups: Groups,
    buffer_names: &'static [&'static str],
    slots: HashMap<String, Slot>,
}

impl Core {
    pub fn new(groups: Groups, buffer_names: &'static [&'static str]) -> Core {
        Core {
            groups,
            buffer_names,
            slots: HashMap::new(),
        }
    }

    /// The names of the per-parameter buffers (`exp_avg`, `momentum_buffer`, ...).
    pub fn buffer_names(&self) -> &'static [&'static str] {
        self.buffer_names
    }

    /// The state of parameter `name`, if it has taken a step.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    /// Buffer `buffer` of parameter `name`.
    pub fn buffer(&self, name: &str, buffer: &str) -> Option<&Tensor> {
        let i = self.buffer_names.iter().position(|b| *b == buffer)?;
        self.slots.get(name)?.buffers[i].as_ref()
    }

    /// Checks that `grad` fits the parameter and its saved state, before anything is updated.
    pub fn check(&self, name: &str, param: &Tensor, grad: &Tensor) -> Result<()> {
        if grad.shape() != param.shape() {
            return Err(Error::invalid(
                "optimizer step",
                format!(
                    "the gradient of {name} has shape {}, the parameter {}",
                    grad.shape(),
                    param.shape()
                ),
            ));
        }
        if let Some(slot) = self.slots.get(name) {
            for (b, t) in self.buffer_names.iter().zip(&slot.buffers) {
                if let Some(t) = t.as_ref().filter(|t| t.shape() != param.shape()) {
                    return Err(Error::invalid(
                        "optimizer step",
                        format!(
                            "the saved {b} of {name} has shape {}, the parameter {}",
                            t.shape(),
                            param.shape()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The slot of parameter `name`, created empty on its first step.
    pub fn slot_mut(&mut self, name: &str) -> &mut Slot {
        if !self.slots.contains_key(name) {
            let slot = Slot {
                step: 0,
                buffers: vec![None; self.buffer_names.len()],
            };
            self.slots.insert(name.to_string(), slot);
        }
        self.slots.get_mut(name).expect("inserted above")
    }

    /// Everything needed to resume: buffers, step counts and the groups' learning rates.
    pub fn state_dict(&self) -> OptimizerState {
        let mut names: Vec<&String> = self.slots.keys().collect();
        names.sort();
        let mut st = OptimizerState {
            lrs: self.groups.lrs(),
            ..Default::default()
        };
        for name in names {
            let slot = &self.slots[name];
            st.steps.push((name.clone(), slot.step));
            for (b, t) in self.buffer_names.iter().zip(&slot.buffers) {
                if let Some(t) = t {
                    st.buffers.push((format!("{name}.{b}"), t.clone()));
                }
            }
        }
        st
    }

    /// Replaces the state with a saved one; on error nothing changes.
    pub fn load_state_dict(&mut self, st: &OptimizerState) -> Result<()> {
        let bad = |msg: String| Error::Format {
            what: "optimizer state".into(),
            msg,
        };
        let mut slots: HashMap<String, Slot> = HashMap::new();
        for (name, step) in &st.steps {
            let slot = Slot {
                step: *step,
                buffers: vec![None; self.buffer_names.len()],
            };
            if slots.insert(name.clone(), slot).is_some() {
                return Err(bad(format!("parameter {name} has two step counts")));
            }
        }
        for (key, t) in &st.buffers {
            let found = self.buffer_names.iter().enumerate().find_map(|(i, b)| {
                let param = key.strip_suffix(b)?.strip_suffix('.')?;
                Some((param, i))
            });
            let Some((param, i)) = found else {
                return Err(bad(format!(
                    "{key} is not a buffer of this optimiser (it keeps {:?})",
                    self.buffer_names
                )));
            };
            let Some(slot) = slots.get_mut(param) else {
                return Err(bad(format!(
                    "{key} belongs to {param}, which has no step count"
                )));
            };
            slot.buffers[i] = Some(t.clone());
        }
        let mut groups = self.groups.clone();
        groups
            .set_lrs(&st.lrs)
            .map_err(|e| bad(format!("learning rates: {e}")))?;
        self.groups = groups;
        self.slots = slots;
        Ok(())
    }
}

/// A saved optimiser state. Buffers are named `<param>.<buffer>` (`fc.weight.exp_avg`), as
/// PyTorch's `state_dict`; step counts are per parameter; `lrs` are the groups' learning rates
/// (default group first), which schedulers change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    pub buffers: Vec<(String, Tensor)>,
    pub steps: Vec<(String, u64)>,
    pub lrs: Vec<f32>,
}

/// Step counts are stored as `[high, low]` with `step = high * 2^24 + low`: both halves are
/// integers below 2^24, hence exact in f32.
const STEP_LIMB: u64 = 1 << 24;

impl OptimizerState {
    /// The whole state as named tensors, for formats that hold only tensors: buffers under
    /// `state.<param>.<buffer>`, steps under `step.<param>` (`[high, low]`, exact), and the
    /// learning rates as `lrs` `[groups]`.
    pub fn to_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .buffers
            .iter()
            .map(|(k, t)| (format!("state.{k}"), t.clone()))
            .collect();
        for (name, step) in &self.steps {
            let limbs = [(step / STEP_LIMB) as f32, (step % STEP_LIMB) as f32];
            out.push((format!("step.{name}"), Tensor::from_slice(&limbs)));
        }
        out.push(("lrs".into(), Tensor::from_slice(&self.lrs)));
        out
    }

    /// The inverse of [`OptimizerState::to_tensors`].
    pub fn from_tensors(entries: &[(String, Tensor)]) -> Result<OptimizerState> {
        let bad = |msg: String| Error::Format {
            what: "optimizer state".into(),
            msg,
        };
        let mut st = OptimizerState::default();
        let mut lrs = None;
        for (key, t) in entries {
            if let Some(k) = key.strip_prefix("state.") {
                st.buffers.push((k.to_string(), t.clone()));
            } else if let Some(name) = key.strip_prefix("step.") {
                let d = t.data();
                let exact = |v: f32| v >= 0.0 && v.fract() == 0.0 && (v as u64) < STEP_LIMB;
                if d.len() != 2 || !exact(d[0]) || !exact(d[1]) {
                    return Err(bad(format!("{key} must hold two integers [high, low]")));
                }
                st.steps
                    .push((name.to_string(), d[0] as u64 * STEP_LIMB + d[1] as u64));
            } else if key == "lrs" {
                if t.rank() != 1 {
                    return Err(bad(format!(
                        "lrs has shape {}, expected [groups]",
                        t.shape()
                    )));
                }
                lrs = Some(t.to_vec());
            } else {
                return Err(bad(format!("unexpected entry {key}")));
            }
        }
        st.lrs = lrs.ok_or_else(|| bad("the learning rates (lrs) are missing".into()))?;
        Ok(st)
    }
}
