//! Checkpoints in the safetensors format, compatible with PyTorch's `state_dict`.
//!
//! A module's parameters and buffers are saved under their dotted `state_dict` names
//! (`features.0.weight`, `layer1.0.bn1.running_mean`), with PyTorch's layouts, so a file
//! written by `safetensors.torch.save_file(model.state_dict(), path)` loads into the
//! equivalent tapegrad module, and a file saved here loads into PyTorch with
//! `model.load_state_dict(safetensors.torch.load_file(path))`.
//!
//! ```no_run
//! use tapegrad_autograd::rng;
//! use tapegrad_nn::{checkpoint, layers::Linear};
//! let mut model = Linear::new(4, 3, &mut rng(0)).unwrap();
//! checkpoint::save(&model, "w.safetensors")?;
//! let report = checkpoint::load(&mut model, "w.safetensors", true)?;
//! assert!(report.is_clean());
//! # Ok::<(), tapegrad_autograd::Error>(())
//! ```
//!
//! - dtypes: tensors are written as F32. Integer counters ([`Entry::Counter`]: BatchNorm's
//!   `num_batches_tracked`, which PyTorch keeps as a `torch.long` scalar) are written as I64
//!   scalars and read back exactly. F32, F64, F16, BF16, I64 and I32 tensors are read (as f32).
//! - Loading is strict (`strict = true`): missing, unexpected and mis-shaped keys are all
//!   named in one error. With `strict = false` what matches is loaded and the rest is returned
//!   in a [`LoadReport`]. Either way the whole file is checked before anything is assigned,
//!   so a failed load leaves the model unchanged. As in PyTorch, a file without
//!   `num_batches_tracked` (many published exports leave it out) loads strictly: the counter
//!   keeps its value (0 in a new model); every other missing key is named.
//! - Saving is atomic: a temporary file beside the target is written, flushed to disk and
//!   renamed over it. Temporary files of the same target left by a save that died (its process
//!   is gone) are removed by the next save; see `atomic.rs` for the rules.
//! - Random generators held by modules (dropout's, visited as [`Entry::Rng`]) are saved as
//!   text in the file's `__metadata__` (see [`RngState`]), not as tensors: PyTorch's
//!   `state_dict` has no such state, and PyTorch ignores the metadata. They are optional on
//!   load, strict or not: a file without them (from PyTorch, or from an older tapegrad) loads,
//!   the generators keep their state, and the [`LoadReport`] lists them in `rng_missing`.
//! - A training [`Checkpoint`] adds the optimiser state (tensors under `optimizer.`) and a
//!   string map of metadata (epoch, step, scheduler counters) in the file's `__metadata__`,
//!   so that a run resumes exactly.

mod atomic;
mod format;
mod header;
mod report;
mod rng;
mod training;

pub use atomic::write_atomic;
pub use header::check_safetensors_offsets;
pub use report::{LoadReport, ShapeMismatch};
pub use rng::{RngState, RNG_PREFIX};
pub use training::{load_checkpoint, save_checkpoint, Checkpoint};

use crate::module::{Entry, EntryRef, Module};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tapegrad_autograd::{Error, Result, Shape, Tensor};

/// Buffers PyTorch keeps as integers (`torch.long`): an I64 scalar of this name in a file is a
/// counter, read exactly.
pub const INTEGER_BUFFERS: &[&str] = &["num_batches_tracked"];

/// Counters a file may leave out: PyTorch's batch norm accepts a state dict without
/// `num_batches_tracked` when it carries no version metadata (as no safetensors file does) and
/// keeps the counter it has.
pub const OPTIONAL_COUNTERS: &[&str] = &["num_batches_tracked"];

/// Whether the last part of a dotted name is one of `names`.
fn named(name: &str, names: &[&str]) -> bool {
    names.contains(&name.rsplit('.').next().unwrap_or(name))
}

/// The prefix of the optimiser's tensors in a training checkpoint.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";

/// The prefix of the scheduler's counters in a checkpoint's metadata.
pub const SCHEDULER_PREFIX: &str = "scheduler.";

/// Metadata written by `safetensors.torch.save_file`; Hugging Face loaders check it.
const FORMAT_KEY: &str = "format";
/// Metadata saying that the `optimizer.` tensors are optimiser state (so a model with a
/// submodule called `optimizer` still loads from a plain PyTorch file).
const HAS_OPTIMIZER_KEY: &str = "tapegrad.optimizer";

/// The parameters and buffers of `model` by dotted name, in registration order. The tensors
/// share storage with the model (no copy). Counters and generators are not tensors: see
/// [`counters`] and [`rng_states`].
pub fn state_dict(model: &dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, e| {
        let t = match e {
            EntryRef::Param(p) => p.value().clone(),
            EntryRef::Buffer(b) => b.clone(),
            EntryRef::Counter(_) | EntryRef::Rng(_) => return,
        };
        out.push((name.to_string(), t));
    });
    out
}

/// The integer counters of `model` (batch norm's `num_batches_tracked`) by dotted name, in
/// registration order.
pub fn counters(model: &dyn Module) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, e| {
        if let EntryRef::Counter(c) = e {
            out.push((name.to_string(), c));
        }
    });
    out
}

/// The states of the generators of `model` (dropout's) by dotted name, in registration order.
pub fn rng_states(model: &dyn Module) -> Vec<(String, RngState)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, e| {
        if let EntryRef::Rng(r) = e {
            out.push((name.to_string(), RngState::of(r)));
        }
    });
    out
}

/// Assigns `tensors` to the parameters and buffers of the same names (PyTorch's
/// `load_state_dict`). Strict: any missing, unexpected or mis-shaped key is an error naming
/// them all, and nothing is assigned. Not strict: the keys that match are assigned and the
/// rest reported. An error always leaves the model unchanged. A counter may be given as a
/// one-element tensor holding a whole number, or left out where PyTorch allows
/// ([`OPTIONAL_COUNTERS`]). Generators keep their state (a state dict holds none; they are
/// listed in the report's `rng_missing`).
pub fn load_state_dict(
    model: &mut dyn Module,
    tensors: &[(String, Tensor)],
    strict: bool,
) -> Result<LoadReport> {
    apply(model, tensors, &[], &[], strict, "state dict")
}

/// A counter's value given as a tensor: one whole, non-negative number.
fn counter_from_tensor(t: &Tensor) -> Option<u64> {
    let v = t.item().ok()?;
    // Below 2^64 (an f32 of 2^64 itself would saturate).
    (v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0).then_some(v as u64)
}

fn apply(
    model: &mut dyn Module,
    tensors: &[(String, Tensor)],
    counters: &[(String, u64)],
    rngs: &[(String, RngState)],
    strict: bool,
    what: &str,
) -> Result<LoadReport> {
    let mut saved_counters: HashMap<&str, u64> = HashMap::with_capacity(counters.len());
    for (name, c) in counters {
        if saved_counters.insert(name.as_str(), *c).is_some() {
            return Err(Error::Format {
                what: what.to_string(),
                msg: format!("two counters are named {name}"),
            });
        }
    }
    let mut saved_rngs: HashMap<&str, &RngState> = HashMap::with_capacity(rngs.len());
    for (name, st) in rngs {
        if saved_rngs.insert(name.as_str(), st).is_some() {
            return Err(Error::Format {
                what: what.to_string(),
                msg: format!("two generator states are named {name}"),
            });
        }
    }
    let mut given: HashMap<&str, &Tensor> = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        if given.insert(name.as_str(), t).is_some() {
            return Err(Error::Format {
                what: what.to_string(),
                msg: format!("two tensors are named {name}"),
            });
        }
    }
    // Check everything first...
    let mut report = LoadReport::default();
    let mut known: HashSet<String> = HashSet::new();
    let mut known_rngs: HashSet<String> = HashSet::new();
    model.visit_mut("", &mut |name, e| {
        let shape = match e {
            Entry::Param(p) => p.value().shape().clone(),
            Entry::Buffer(b) => b.shape().clone(),
            Entry::Counter(_) => {
                known.insert(name.to_string());
                if saved_counters.contains_key(name) {
                    return;
                }
                match given.get(name) {
                    Some(t) if counter_from_tensor(t).is_none() => {
                        report.mismatched.push(ShapeMismatch {
                            name: name.to_string(),
                            model: Shape::scalar(),
                            file: t.shape().clone(),
                        })
                    }
                    Some(_) => {}
                    None if named(name, OPTIONAL_COUNTERS) => {}
                    None => report.missing.push(name.to_string()),
                }
                return;
            }
            Entry::Rng(_) => {
                known_rngs.insert(name.to_string());
                if !saved_rngs.contains_key(name) {
                    report.rng_missing.push(name.to_string());
                }
                return;
            }
        };
        known.insert(name.to_string());
        match given.get(name) {
            None => report.missing.push(name.to_string()),
            Some(t) if *t.shape() != shape => report.mismatched.push(ShapeMismatch {
                name: name.to_string(),
                model: shape,
                file: t.shape().clone(),
            }),
            Some(_) => {}
        }
    });
    let names = tensors
        .iter()
        .map(|(n, _)| n)
        .chain(counters.iter().map(|(n, _)| n));
    report.unexpected = names.filter(|n| !known.contains(*n)).cloned().collect();
    report.rng_unexpected = rngs
        .iter()
        .filter(|(n, _)| !known_rngs.contains(n))
        .map(|(n, _)| n.clone())
        .collect();
    // Generator states do not count here: PyTorch's state_dict holds none, so its files
    // (and files saved before generators were) must load strictly.
    if strict && !report.is_clean() {
        return Err(Error::Format {
            what: what.to_string(),
            msg: format!(
                "does not fit the model: {report} (load with strict = false to take what matches)"
            ),
        });
    }
    // ... then assign what matches.
    let mut result = Ok(());
    model.visit_mut("", &mut |name, e| {
        if let Entry::Rng(r) = e {
            if let Some(st) = saved_rngs.get(name) {
                *r = st.to_rng();
            }
            return;
        }
        if let Entry::Counter(c) = e {
            if let Some(&v) = saved_counters.get(name) {
                *c = v;
            } else if let Some(v) = given.get(name).and_then(|t| counter_from_tensor(t)) {
                *c = v;
            }
            return;
        }
        let Some(t) = given.get(name) else { return };
        match e {
            Entry::Param(p) if p.value().shape() == t.shape() => {
                if let Err(err) = p.set((*t).clone()) {
                    result = Err(err);
                }
            }
            Entry::Buffer(b) if b.shape() == t.shape() => *b = (*t).clone(),
            _ => {}
        }
    });
    result.map(|()| report)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, "cannot read the checkpoint", e))
}

/// Saves the parameters and buffers of `model` to a safetensors file, atomically. PyTorch
/// loads it with `model.load_state_dict(safetensors.torch.load_file(path))`.
pub fn save(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    Checkpoint::new(model).save(path)
}

/// Loads a safetensors file (PyTorch's `save_file(model.state_dict(), path)`, or one written
/// by [`save`] or [`Checkpoint::save`], whose optimiser state is ignored here) into `model`.
/// See [`load_state_dict`] for `strict`.
pub fn load(model: &mut dyn Module, path: impl AsRef<Path>, strict: bool) -> Result<LoadReport> {
    let path = path.as_ref();
    let what = path.display().to_string();
    let ckpt = Checkpoint::decode(&read(path)?, &what)?;
    apply(model, &ckpt.model, &ckpt.counters, &ckpt.rng, strict, &what)
}
