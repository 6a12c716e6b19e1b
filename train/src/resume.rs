//! Saving a [`Trainer`] to a training [`Checkpoint`] and restoring it, so that an interrupted
//! run resumes exactly: the model's tensors, the optimiser's state, the schedule's counters,
//! where training stood (epoch, batch, step), the current epoch's running sums and the
//! history all go into the file. The batches themselves need no state: the loader draws epoch
//! `e`'s order and augmentation from its seed and `e` alone. Random generators held inside
//! modules (`Dropout`'s) are saved with the model, so the resumed run draws the same masks.

use super::finite::first_non_finite;
use super::history::History;
use super::trainer::{EpochTotals, Position, Trainer};
use std::path::Path;
use tapegrad_autograd::{Error, Result};
use tapegrad_nn::checkpoint::{Checkpoint, SCHEDULER_PREFIX};

/// Metadata key of the [`Position`] (JSON).
pub const POSITION_KEY: &str = "train.position";
/// Metadata key of the current epoch's [`EpochTotals`] (JSON).
pub const TOTALS_KEY: &str = "train.totals";
/// Metadata key of the [`History`] (JSON).
pub const HISTORY_KEY: &str = "train.history";

fn json<T: serde::de::DeserializeOwned>(ckpt: &Checkpoint, key: &str) -> Result<T> {
    let text = ckpt.metadata.get(key).ok_or_else(|| Error::Format {
        what: "checkpoint metadata".into(),
        msg: format!("{key} is missing: this is not a training checkpoint of this program"),
    })?;
    serde_json::from_str(text).map_err(|e| Error::Format {
        what: "checkpoint metadata".into(),
        msg: format!("{key}: {e}"),
    })
}

impl Trainer {
    /// Everything needed to resume, plus `extra` metadata (the caller's run description).
    pub fn to_checkpoint(&mut self, extra: &[(String, String)]) -> Checkpoint {
        let mut ckpt = Checkpoint::new(self.model.as_mut())
            .with_optimizer(self.optimizer.as_ref())
            .with_scheduler(&self.schedule.state_dict());
        let plain = "plain numbers always serialise";
        ckpt = ckpt
            .with_metadata(
                POSITION_KEY,
                serde_json::to_string(&self.position).expect(plain),
            )
            .with_metadata(
                TOTALS_KEY,
                serde_json::to_string(&self.totals).expect(plain),
            )
            .with_metadata(HISTORY_KEY, self.history.to_json());
        for (k, v) in extra {
            ckpt = ckpt.with_metadata(k.clone(), v);
        }
        ckpt
    }

    /// Restores the state saved by [`Trainer::to_checkpoint`] into this trainer, whose model,
    /// optimiser and schedule must be built as they were. The metadata is checked before
    /// anything changes; an error while loading tensors (a different model or optimiser) can
    /// leave the trainer partly restored, so build a fresh one before trying again.
    pub fn restore(&mut self, ckpt: &Checkpoint) -> Result<()> {
        let position: Position = json(ckpt, POSITION_KEY)?;
        let totals: EpochTotals = json(ckpt, TOTALS_KEY)?;
        let history = History::from_json(ckpt.metadata.get(HISTORY_KEY).map_or("", |s| s))?;
        let has_schedule = ckpt
            .metadata
            .keys()
            .any(|k| k.starts_with(SCHEDULER_PREFIX));
        let schedule = if has_schedule {
            ckpt.scheduler_state()?
        } else {
            Vec::new()
        };
        ckpt.restore_model(self.model.as_mut(), true)?;
        ckpt.restore_optimizer(self.optimizer.as_mut())?;
        self.schedule.load_state_dict(&schedule)?;
        self.position = position;
        self.totals = totals;
        self.history = history;
        Ok(())
    }
}

/// Writes `trainer`'s state and `extra` metadata to `path`, atomically; refused, leaving `path`
/// as it was, when a parameter or buffer of the model is not finite.
pub fn save_training_checkpoint(
    path: &Path,
    trainer: &mut Trainer,
    extra: &[(String, String)],
) -> Result<()> {
    checked_checkpoint(trainer, extra, path)?.save(path)
}

/// `trainer`'s checkpoint, or an error naming `path` and the first value that is not finite.
pub(crate) fn checked_checkpoint(
    trainer: &mut Trainer,
    extra: &[(String, String)],
    path: &Path,
) -> Result<Checkpoint> {
    if let Some(bad) = first_non_finite(trainer.model.as_mut()) {
        return Err(Error::Format {
            what: path.display().to_string(),
            msg: format!("not saved: {bad}"),
        });
    }
    Ok(trainer.to_checkpoint(extra))
}

/// Reads the checkpoint at `path` and restores `trainer` from it; returns the checkpoint for
/// the caller's own metadata.
pub fn load_training_checkpoint(path: &Path, trainer: &mut Trainer) -> Result<Checkpoint> {
    let ckpt = Checkpoint::load(path)?;
    trainer.restore(&ckpt)?;
    Ok(ckpt)
}
