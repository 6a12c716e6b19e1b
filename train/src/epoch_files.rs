//! What a run writes at the end of each epoch, and in which order, so that a crash or a failed
//! write at any point leaves a run that resumes where it should:
//!
//! 1. Nothing, when a parameter or buffer of the model is not finite (the error names it).
//! 2. `best.safetensors`, when the epoch has the best validation accuracy so far.
//! 3. `checkpoint.safetensors`, which marks the epoch done. It comes after `best`: a crash
//!    between the two resumes the epoch (deterministically) and writes `best` again, where the
//!    other order would resume after the epoch and never save its best weights.
//! 4. `metrics.csv`, `metrics.json` and `curves.png`, drawn from the history the checkpoint
//!    holds. A failure here loses no training: the checkpoint is on disk, and the next epoch
//!    (or the resumed run) writes them again, whole.
//!
//! Every file is replaced atomically (temporary file, flush, rename): a reader sees the old file
//! or the new one, never a partial one.

use super::plot::{plot_history, PlotText};
use super::resume::checked_checkpoint;
use super::trainer::Trainer;
use std::path::Path;
use tapegrad_autograd::{Error, Result};
use tapegrad_nn::checkpoint::write_atomic;

/// The training checkpoint: everything needed to resume.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The checkpoint of the epoch with the best validation accuracy.
pub const BEST_FILE: &str = "best.safetensors";
pub const METRICS_CSV: &str = "metrics.csv";
pub const METRICS_JSON: &str = "metrics.json";
pub const CURVES_PNG: &str = "curves.png";

/// What [`write_epoch_files`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochFiles {
    /// Whether this epoch was the best so far (and `best.safetensors` was written).
    pub best: bool,
    /// Whether the curves have their text.
    pub plot: PlotText,
}

/// Says, in the error of a write after the checkpoint, that the checkpoint is safe.
fn after_checkpoint(e: Error) -> Error {
    match e {
        Error::Io { path, msg, source } => Error::Io {
            path,
            msg: format!("{msg} (the epoch's checkpoint was saved before it)"),
            source,
        },
        other => other,
    }
}

/// Writes the files of the epoch `trainer` just finished (after
/// [`Trainer::finish_epoch`]) to `dir`, in the order of the module documentation; `extra` is
/// the run's metadata for the checkpoints, `title` the curves' title.
pub fn write_epoch_files(
    dir: &Path,
    trainer: &mut Trainer,
    extra: &[(String, String)],
    title: &str,
) -> Result<EpochFiles> {
    let checkpoint = dir.join(CHECKPOINT_FILE);
    let bytes = checked_checkpoint(trainer, extra, &checkpoint)?.to_bytes()?;
    let last = trainer.history.epochs.last().map(|r| r.epoch);
    let best = last.is_some() && trainer.history.best_val_accuracy().map(|b| b.0) == last;
    if best {
        write_atomic(&dir.join(BEST_FILE), &bytes)?;
    }
    write_atomic(&checkpoint, &bytes)?;
    let history = &trainer.history;
    write_atomic(&dir.join(METRICS_CSV), history.to_csv().as_bytes()).map_err(after_checkpoint)?;
    write_atomic(&dir.join(METRICS_JSON), history.to_json().as_bytes())
        .map_err(after_checkpoint)?;
    let plot = plot_history(history, &dir.join(CURVES_PNG), title).map_err(after_checkpoint)?;
    Ok(EpochFiles { best, plot })
}
