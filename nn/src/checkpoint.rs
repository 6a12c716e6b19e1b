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
//! let mut model = Linear::new(4, 3, true, &mut rng(0));
//! checkpoint::save(&mut model, "w.safetensors")?;
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

pub use atomic::write_atomic;
pub use header::check_safetensors_offsets;
pub use report::{LoadReport, ShapeMismatch};
pub use rng::{RngState, RNG_PREFIX};

use crate::module::{Entry, Module};
use crate::optim::{Optimizer, OptimizerState};
use format::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
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
pub fn state_dict(model: &mut dyn Module) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, e| {
        let t = match e {
            Entry::Param(p) => p.value().clone(),
            Entry::Buffer(b) => b.clone(),
            Entry::Counter(_) | Entry::Rng(_) => return,
        };
        out.push((name.to_string(), t));
    });
    out
}

/// The integer counters of `model` (batch norm's `num_batches_tracked`) by dotted name, in
/// registration order.
pub fn counters(model: &mut dyn Module) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, e| {
        if let Entry::Counter(c) = e {
            out.push((name.to_string(), *c));
        }
    });
    out
}

/// The states of the generators of `model` (dropout's) by dotted name, in registration order.
pub fn rng_states(model: &mut dyn Module) -> Vec<(String, RngState)> {
    let mut out = Vec::new();
    model.visit("", &mut |name, e| {
        if let Entry::Rng(r) = e {
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
    model.visit("", &mut |name, e| {
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
    model.visit("", &mut |name, e| {
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
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        msg: format!("cannot read the checkpoint: {e}"),
    })
}

/// Saves the parameters and buffers of `model` to a safetensors file, atomically. PyTorch
/// loads it with `model.load_state_dict(safetensors.torch.load_file(path))`.
pub fn save(model: &mut dyn Module, path: impl AsRef<Path>) -> Result<()> {
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

/// Everything needed to resume training: the model's tensors, the optimiser's state, and
/// string metadata (epoch and step counters, scheduler state, anything the loop needs).
///
/// ```
/// use tapegrad_autograd::rng;
/// use tapegrad_nn::checkpoint::Checkpoint;
/// use tapegrad_nn::layers::Linear;
/// use tapegrad_nn::optim::{Optimizer, Sgd, SgdConfig};
/// let mut model = Linear::new(2, 2, true, &mut rng(0));
/// let opt = Sgd::new(SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() }).unwrap();
/// let ckpt = Checkpoint::new(&mut model).with_optimizer(&opt).with_metadata("epoch", 3);
/// let back = Checkpoint::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
/// assert_eq!(back.metadata_value::<u32>("epoch").unwrap(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// The model's parameters and buffers by dotted name.
    pub model: Vec<(String, Tensor)>,
    /// The model's integer counters by dotted name (written as I64 scalars).
    pub counters: Vec<(String, u64)>,
    /// The states of the model's generators by dotted name (written to the metadata under
    /// [`RNG_PREFIX`]); empty for a file from PyTorch.
    pub rng: Vec<(String, RngState)>,
    pub optimizer: Option<OptimizerState>,
    /// Written to the file's `__metadata__` (except the keys `format` and `tapegrad.*`,
    /// which the format uses).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// The model's current parameters, buffers and generator states, with no optimiser state
    /// or metadata.
    pub fn new(model: &mut dyn Module) -> Checkpoint {
        Checkpoint {
            model: state_dict(model),
            counters: counters(model),
            rng: rng_states(model),
            ..Default::default()
        }
    }

    /// Adds the optimiser's state (buffers, step counts, learning rates).
    pub fn with_optimizer(mut self, opt: &dyn Optimizer) -> Checkpoint {
        self.optimizer = Some(opt.state_dict());
        self
    }

    /// Adds a scheduler's counters (`LrScheduler::state_dict`, `ReduceLROnPlateau::state_dict`)
    /// to the metadata, under `scheduler.`, replacing any saved before.
    pub fn with_scheduler(mut self, state: &[(String, f64)]) -> Checkpoint {
        self.metadata
            .retain(|k, _| !k.starts_with(SCHEDULER_PREFIX));
        for (k, v) in state {
            // `{:?}` prints the shortest decimal that parses back to the same f64.
            self.metadata
                .insert(format!("{SCHEDULER_PREFIX}{k}"), format!("{v:?}"));
        }
        self
    }

    /// Adds one metadata entry (`epoch`, `step`...).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl ToString) -> Checkpoint {
        self.metadata.insert(key.into(), value.to_string());
        self
    }

    /// Loads the model's tensors and generator states into `model`; see [`load_state_dict`]
    /// for `strict` (generator states are optional either way, see [`LoadReport`]).
    pub fn restore_model(&self, model: &mut dyn Module, strict: bool) -> Result<LoadReport> {
        apply(
            model,
            &self.model,
            &self.counters,
            &self.rng,
            strict,
            "checkpoint",
        )
    }

    /// Loads the saved optimiser state into `opt`; an error if the checkpoint has none.
    pub fn restore_optimizer(&self, opt: &mut dyn Optimizer) -> Result<()> {
        let st = self.optimizer.as_ref().ok_or_else(|| Error::Format {
            what: "checkpoint".into(),
            msg: "it holds no optimizer state (save it with Checkpoint::with_optimizer)".into(),
        })?;
        opt.load_state_dict(st)
    }

    /// The scheduler counters saved by [`Checkpoint::with_scheduler`], for the scheduler's
    /// `load_state_dict`.
    pub fn scheduler_state(&self) -> Result<Vec<(String, f64)>> {
        let mut out = Vec::new();
        for (k, v) in &self.metadata {
            if let Some(name) = k.strip_prefix(SCHEDULER_PREFIX) {
                let x = v.parse::<f64>().map_err(|_| Error::Format {
                    what: "checkpoint metadata".into(),
                    msg: format!("{k} = {v:?} is not a number"),
                })?;
                out.push((name.to_string(), x));
            }
        }
        if out.is_empty() {
            return Err(Error::Format {
                what: "checkpoint metadata".into(),
                msg: "it holds no scheduler state (save it with Checkpoint::with_scheduler)".into(),
            });
        }
        Ok(out)
    }

    /// Metadata entry `key`, parsed (`ckpt.metadata_value::<usize>("epoch")`).
    pub fn metadata_value<T: FromStr>(&self, key: &str) -> Result<T> {
        let bad = |msg: String| Error::Format {
            what: "checkpoint metadata".into(),
            msg,
        };
        let v = self
            .metadata
            .get(key)
            .ok_or_else(|| bad(format!("{key} is missing")))?;
        v.parse().map_err(|_| {
            bad(format!(
                "{key} = {v:?} is not a valid {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The bytes of the safetensors file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.encode("checkpoint")
    }

    /// Parses the bytes of a safetensors file (from PyTorch, or from [`Checkpoint::to_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        Checkpoint::decode(bytes, "checkpoint")
    }

    /// Writes the checkpoint to `path` atomically (temporary file, flush, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.encode(&path.display().to_string())?;
        atomic::write_atomic(path, &bytes)
    }

    /// Reads a checkpoint file.
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        Checkpoint::decode(&read(path)?, &path.display().to_string())
    }

    fn encode(&self, what: &str) -> Result<Vec<u8>> {
        let bad = |msg: String| Error::Format {
            what: what.to_string(),
            msg,
        };
        if let Some(k) = self
            .metadata
            .keys()
            .find(|k| *k == FORMAT_KEY || k.starts_with("tapegrad."))
        {
            return Err(bad(format!(
                "metadata key {k} is reserved by the file format"
            )));
        }
        let mut tensors: Vec<(String, Tensor, Store)> = self
            .model
            .iter()
            .map(|(n, t)| (n.clone(), t.clone(), Store::F32))
            .collect();
        for (n, c) in &self.counters {
            let c = *c;
            let c = i64::try_from(c)
                .map_err(|_| bad(format!("counter {n} = {c} does not fit an int64")))?;
            tensors.push((n.clone(), Tensor::scalar(0.0), Store::I64(c)));
        }
        let mut metadata = self.metadata.clone();
        metadata.insert(FORMAT_KEY.into(), "pt".into());
        for (name, st) in &self.rng {
            let key = format!("{RNG_PREFIX}{name}");
            if metadata.insert(key, st.to_string()).is_some() {
                return Err(bad(format!("two generator states are named {name}")));
            }
        }
        if let Some(opt) = &self.optimizer {
            if let Some((n, _)) = self
                .model
                .iter()
                .find(|(n, _)| n.starts_with(OPTIMIZER_PREFIX))
            {
                return Err(bad(format!(
                    "model key {n} clashes with the optimizer's prefix {OPTIMIZER_PREFIX}"
                )));
            }
            for (n, t) in opt.to_tensors() {
                tensors.push((format!("{OPTIMIZER_PREFIX}{n}"), t, Store::F32));
            }
            metadata.insert(HAS_OPTIMIZER_KEY.into(), "true".into());
        }
        format::encode(&tensors, &metadata, what)
    }

    fn decode(bytes: &[u8], what: &str) -> Result<Checkpoint> {
        let format::Contents {
            tensors,
            integers,
            mut metadata,
        } = format::decode(bytes, what)?;
        let has_optimizer = metadata.get(HAS_OPTIMIZER_KEY).map(String::as_str) == Some("true");
        let mut rng = Vec::new();
        for (k, v) in &metadata {
            if let Some(name) = k.strip_prefix(RNG_PREFIX) {
                let st = v.parse::<RngState>().map_err(|e| Error::Format {
                    what: what.to_string(),
                    msg: format!("metadata {k}: {e}"),
                })?;
                rng.push((name.to_string(), st));
            }
        }
        metadata.retain(|k, _| k != FORMAT_KEY && !k.starts_with("tapegrad."));
        let mut model = Vec::with_capacity(tensors.len());
        let mut opt = Vec::new();
        let mut counters = Vec::new();
        for (name, t) in tensors {
            if let (Some(&v), true) = (integers.get(&name), named(&name, INTEGER_BUFFERS)) {
                let c = u64::try_from(v).map_err(|_| Error::Format {
                    what: what.to_string(),
                    msg: format!("counter {name} is {v}; a count cannot be negative"),
                })?;
                counters.push((name, c));
                continue;
            }
            match name.strip_prefix(OPTIMIZER_PREFIX) {
                Some(rest) if has_optimizer => opt.push((rest.to_string(), t)),
                _ => model.push((name, t)),
            }
        }
        let optimizer = if has_optimizer {
            Some(
                OptimizerState::from_tensors(&opt).map_err(|e| Error::Format {
                    what: what.to_string(),
                    msg: e.to_string(),
                })?,
            )
        } else {
            None
        };
        Ok(Checkpoint {
            model,
            counters,
            rng,
            optimizer,
            metadata,
        })
    }
}

/// Saves a training checkpoint atomically; see [`Checkpoint`].
pub fn save_checkpoint(path: impl AsRef<Path>, ckpt: &Checkpoint) -> Result<()> {
    ckpt.save(path)
}

/// Reads a training checkpoint; restore it with [`Checkpoint::restore_model`],
/// [`Checkpoint::restore_optimizer`] and [`Checkpoint::scheduler_state`].
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    Checkpoint::load(path)
}
