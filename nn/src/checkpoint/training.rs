//! [`Checkpoint`]: a model's tensors with its optimiser's state and the loop's metadata, in one
//! safetensors file, so that a run resumes exactly.

use super::format::{self, Store};
use super::{
    apply, atomic, counters, named, read, rng_states, state_dict, LoadReport, RngState, FORMAT_KEY,
    HAS_OPTIMIZER_KEY, INTEGER_BUFFERS, OPTIMIZER_PREFIX, RNG_PREFIX, SCHEDULER_PREFIX,
};
use crate::module::Module;
use crate::optim::{Optimizer, OptimizerState};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use tapegrad_autograd::{Error, Result, Tensor};

/// Everything needed to resume training: the model's tensors, the optimiser's state, and
/// string metadata (epoch and step counters, scheduler state, anything the loop needs).
///
/// ```
/// use tapegrad_autograd::rng;
/// use tapegrad_nn::checkpoint::Checkpoint;
/// use tapegrad_nn::layers::Linear;
/// use tapegrad_nn::optim::{Optimizer, Sgd, SgdConfig};
/// let mut model = Linear::new(2, 2, &mut rng(0)).unwrap();
/// let opt = Sgd::new(SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() }).unwrap();
/// let ckpt = Checkpoint::new(&model).with_optimizer(&opt).with_metadata("epoch", 3);
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
    pub fn new(model: &dyn Module) -> Checkpoint {
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

    /// Loads the model's tensors and generator states into `model`; see [`load_state_dict`](super::load_state_dict)
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

    pub(super) fn decode(bytes: &[u8], what: &str) -> Result<Checkpoint> {
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
