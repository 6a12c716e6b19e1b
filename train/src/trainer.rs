//! `Trainer`: one model, its optimiser and learning-rate schedule, and where training stands
//! (epoch, batch within the epoch, optimiser steps), so that a run can stop anywhere and resume
//! exactly.

use super::evaluation::{Evaluation, TestTime};
use super::finite::first_non_finite;
use super::grad_stats::{grad_stats, GradStatsEpoch};
use super::history::{EpochRecord, History};
use serde::{Deserialize, Serialize};
use tapegrad_autograd::{Error, Result, Tape, Tensor};
use tapegrad_data::DataLoader;
use tapegrad_distributed::DataParallel;
use tapegrad_nn::loss::CrossEntropyLoss;
use tapegrad_nn::module::Module;
use tapegrad_nn::optim::{clip_grad_norm, GradMap, LrScheduler, Optimizer, ReduceLROnPlateau};

/// How the learning rate changes between epochs.
pub enum Schedule {
    /// Constant.
    None,
    /// A closed-form schedule (step, multi-step, cosine), stepped after every epoch.
    Epoch(Box<dyn LrScheduler>),
    /// Cut when the validation loss stops improving (the training loss when there is no
    /// validation).
    Plateau(ReduceLROnPlateau),
}

impl Schedule {
    fn end_epoch(&mut self, opt: &mut dyn Optimizer, watched: f32) -> Result<()> {
        match self {
            Schedule::None => Ok(()),
            Schedule::Epoch(s) => s.step(opt),
            Schedule::Plateau(p) => p.step(opt, watched).map(|_| ()),
        }
    }

    /// The counters to save with a checkpoint (empty for `None`).
    pub fn state_dict(&self) -> Vec<(String, f64)> {
        match self {
            Schedule::None => Vec::new(),
            Schedule::Epoch(s) => s.state_dict(),
            Schedule::Plateau(p) => p.state_dict(),
        }
    }

    pub fn load_state_dict(&mut self, state: &[(String, f64)]) -> Result<()> {
        match self {
            Schedule::None if state.is_empty() => Ok(()),
            Schedule::None => Err(Error::Format {
                what: "scheduler state".into(),
                msg: "the checkpoint has a learning-rate schedule, this run has none".into(),
            }),
            Schedule::Epoch(s) => s.load_state_dict(state),
            Schedule::Plateau(p) => p.load_state_dict(state),
        }
    }
}

/// Where training stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Epochs completed.
    pub epoch: usize,
    /// Batches done in the current epoch.
    pub batch: usize,
    /// Optimiser steps in all.
    pub step: u64,
}

/// Running sums over the batches of the current epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochTotals {
    /// Sum of batch-mean losses times batch sizes (f64, so 60,000 terms lose nothing).
    pub loss_sum: f64,
    pub correct: u64,
    pub seen: u64,
    /// Time spent in training steps, seconds.
    pub seconds: f64,
}

impl EpochTotals {
    pub fn mean_loss(&self) -> f32 {
        (self.loss_sum / self.seen.max(1) as f64) as f32
    }

    pub fn accuracy(&self) -> f32 {
        self.correct as f32 / self.seen.max(1) as f32
    }

    pub fn images_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.seen as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// What one training step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// The batch's mean loss (before the update).
    pub loss: f32,
    /// Samples whose highest score was their label.
    pub correct: usize,
    pub batch_size: usize,
    /// The optimiser step this was (1 for the first).
    pub step: u64,
    /// The epoch's running sums after this step.
    pub totals: EpochTotals,
}

/// Counts the rows of `[N, K]` scores whose first highest score is at the label.
fn count_correct(scores: &Tensor, labels: &[usize]) -> usize {
    let k = scores.dims().last().copied().unwrap_or(1).max(1);
    scores
        .data()
        .chunks(k)
        .zip(labels)
        .filter(|(row, &t)| {
            let best = (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            best == t
        })
        .count()
}

/// A model with its optimiser, schedule and loss, and the state of its training.
pub struct Trainer {
    pub model: Box<dyn Module>,
    pub optimizer: Box<dyn Optimizer>,
    pub schedule: Schedule,
    pub loss: CrossEntropyLoss,
    /// Clip the gradients' total 2-norm to this before each step.
    pub clip_grad_norm: Option<f32>,
    pub position: Position,
    /// The current epoch's running sums.
    pub totals: EpochTotals,
    pub history: History,
    /// Per-layer gradient statistics of the current epoch, when collected.
    pub grad_stats: Option<GradStatsEpoch>,
    /// Test-time augmentation of [`Trainer::evaluate`].
    pub test_time: TestTime,
    /// Set by [`Trainer::distribute`] for data-parallel training.
    pub(crate) parallel: Option<DataParallel>,
}

impl Trainer {
    pub fn new(
        model: Box<dyn Module>,
        optimizer: Box<dyn Optimizer>,
        schedule: Schedule,
    ) -> Trainer {
        Trainer {
            model,
            optimizer,
            schedule,
            loss: CrossEntropyLoss::new(),
            clip_grad_norm: None,
            position: Position::default(),
            totals: EpochTotals::default(),
            history: History::default(),
            grad_stats: None,
            test_time: TestTime::Plain,
            parallel: None,
        }
    }

    /// Trains as one rank of data-parallel training (see `tapegrad_distributed`): rank 0's
    /// parameters and buffers are broadcast now (call it after restoring a checkpoint); from
    /// then on each step takes rank 0's batch-norm statistics before its forward pass and
    /// averages the gradients across ranks before the update, and [`Trainer::finish_epoch`]
    /// and [`Trainer::evaluate`] add up the ranks' counts, so that every rank records the
    /// same epoch. Each rank must iterate its own shard of the data (`LoaderOptions::shard`),
    /// the same number of batches, and call the same methods in the same order.
    ///
    /// The running sums of a resumed epoch are the global ones that
    /// [`Trainer::gather_totals`] left in the checkpoint: they are kept on rank 0 only, so
    /// that adding the ranks' sums counts them once.
    pub fn distribute(&mut self, mut parallel: DataParallel) -> Result<()> {
        parallel.broadcast_model(self.model.as_mut())?;
        if parallel.rank() != 0 {
            self.totals = EpochTotals::default();
        }
        self.parallel = Some(parallel);
        Ok(())
    }

    /// The synchroniser of a data-parallel run.
    pub fn parallel(&self) -> Option<&DataParallel> {
        self.parallel.as_ref()
    }

    /// The current epoch's running sums over every rank (the slowest rank's seconds); the
    /// local ones without [`Trainer::distribute`]. Every rank must call it.
    pub fn global_totals(&self) -> Result<EpochTotals> {
        let t = self.totals;
        let Some(p) = &self.parallel else {
            return Ok(t);
        };
        let mut sums = [t.loss_sum, t.correct as f64, t.seen as f64];
        p.sum(&mut sums)?;
        let mut seconds = [t.seconds];
        p.max(&mut seconds)?;
        Ok(EpochTotals {
            loss_sum: sums[0],
            correct: sums[1] as u64,
            seen: sums[2] as u64,
            seconds: seconds[0],
        })
    }

    /// Replaces the running sums with [`Trainer::global_totals`], before rank 0 saves a
    /// checkpoint in the middle of an epoch (see [`Trainer::distribute`]).
    pub fn gather_totals(&mut self) -> Result<()> {
        self.totals = self.global_totals()?;
        Ok(())
    }

    /// Collects per-layer gradient norms and zero fractions over each epoch.
    pub fn collect_grad_stats(&mut self, on: bool) {
        self.grad_stats = on.then(GradStatsEpoch::default);
    }

    /// One optimiser step on a batch: forward, loss, backward, (clip), update. Fails on a
    /// non-finite loss, naming the step, rather than training on NaN; and on a parameter or
    /// running statistic that the step left infinite or NaN, naming the first, so that the run
    /// stops before anything is saved from it. After that error the model holds what the step
    /// left ([`save_training_checkpoint`](super::save_training_checkpoint) refuses to save it).
    pub fn train_step(&mut self, images: &Tensor, labels: &[usize]) -> Result<StepOutcome> {
        let started = std::time::Instant::now();
        self.model.set_training(true);
        if let Some(p) = &mut self.parallel {
            p.sync_buffers(self.model.as_mut())?;
        }
        // The tape (and with it every saved activation) is dropped before the update, so the
        // optimiser writes into parameters that no tape shares: no copy on write.
        let (loss, correct, mut grads) = {
            let tape = Tape::new();
            // Data parallel: buckets of gradients start their all-reduce during backward.
            if let Some(p) = &mut self.parallel {
                p.attach(&tape, self.model.as_mut());
            }
            let logits = self.model.forward(tape.input(images.clone()))?;
            let loss = self.loss.forward(logits, labels)?;
            let value = loss.item()?;
            if !value.is_finite() {
                return Err(Error::invalid(
                    "Trainer::train_step",
                    format!(
                        "the loss is {value} at step {}: training diverged (try a lower \
                         learning rate, or --clip-grad)",
                        self.position.step + 1
                    ),
                ));
            }
            let correct = count_correct(&logits.value(), labels);
            let g = loss.backward()?;
            (value, correct, GradMap::from_grads(self.model.as_mut(), &g))
        };
        if let Some(p) = &mut self.parallel {
            p.average_gradients(self.model.as_mut(), &mut grads)?;
        }
        if let Some(stats) = &mut self.grad_stats {
            stats.add(&grad_stats(self.model.as_mut(), &grads));
        }
        if let Some(max) = self.clip_grad_norm {
            clip_grad_norm(&mut grads, max)?;
        }
        self.optimizer.step_with(self.model.as_mut(), &grads)?;
        if let Some(bad) = first_non_finite(self.model.as_mut()) {
            return Err(Error::invalid(
                "Trainer::train_step",
                format!(
                    "after step {} (loss {loss}), {bad}: the update diverged (try a lower \
                     learning rate, or --clip-grad)",
                    self.position.step + 1
                ),
            ));
        }
        let n = labels.len();
        self.position.step += 1;
        self.position.batch += 1;
        let t = &mut self.totals;
        t.loss_sum += loss as f64 * n as f64;
        t.correct += correct as u64;
        t.seen += n as u64;
        t.seconds += started.elapsed().as_secs_f64();
        Ok(StepOutcome {
            loss,
            correct,
            batch_size: n,
            step: self.position.step,
            totals: *t,
        })
    }

    /// Trains on the batches of the current epoch that are not done yet, calling `on_step`
    /// after each. Stops early, returning `false`, once `stop_at_step` optimiser steps have been
    /// taken in all; returns `true` when the epoch's batches are all done (then evaluate and
    /// call [`Trainer::finish_epoch`]).
    pub fn train_epoch(
        &mut self,
        loader: &DataLoader,
        stop_at_step: Option<u64>,
        mut on_step: impl FnMut(&StepOutcome),
    ) -> Result<bool> {
        if stop_at_step.is_some_and(|s| self.position.step >= s) {
            return Ok(false);
        }
        // The order of an epoch depends only on the loader's seed and the epoch number, so
        // skipping the batches done before an interruption lands on the same next batch.
        let batches = loader
            .epoch(self.position.epoch as u64)
            .skip(self.position.batch);
        for batch in batches {
            let batch = batch?;
            let out = self.train_step(&batch.images, &batch.labels)?;
            on_step(&out);
            if stop_at_step.is_some_and(|s| self.position.step >= s) {
                return Ok(self.position.batch >= loader.len());
            }
        }
        Ok(true)
    }

    /// Scores `[N, classes]` of a batch in evaluation mode, recording nothing for backward.
    pub fn predict(&mut self, images: &Tensor) -> Result<Tensor> {
        self.model.set_training(false);
        let tape = Tape::inference();
        let out = self
            .model
            .forward(tape.input(images.clone()))
            .map(|v| v.value());
        self.model.set_training(true);
        out
    }

    /// Ends the epoch: records it (with `val`, the evaluation after it, if any, and
    /// `seconds` of wall time) in the history, steps the schedule, and moves on to the next
    /// epoch.
    pub fn finish_epoch(&mut self, val: Option<&Evaluation>, seconds: f64) -> Result<EpochRecord> {
        let t = self.global_totals()?;
        let record = EpochRecord {
            epoch: self.position.epoch + 1,
            lr: self.optimizer.lr(),
            train_loss: t.mean_loss(),
            train_accuracy: t.accuracy(),
            val_loss: val.map(Evaluation::loss),
            val_accuracy: val.map(Evaluation::accuracy),
            val_top5_error: val.and_then(Evaluation::top5_error),
            seconds,
            images_per_second: t.images_per_second(),
        };
        let watched = record.val_loss.unwrap_or(record.train_loss);
        self.schedule.end_epoch(self.optimizer.as_mut(), watched)?;
        self.history.epochs.push(record.clone());
        self.position.epoch += 1;
        self.position.batch = 0;
        self.totals = EpochTotals::default();
        if let Some(s) = &mut self.grad_stats {
            *s = GradStatsEpoch::default();
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_correct_takes_the_first_highest_score() {
        // Row 0: max at 1 (label 1, right). Row 1: tie between 0 and 2, the first (0) wins, so
        // label 2 is wrong. Row 2: max at 2 (label 0, wrong).
        let s =
            Tensor::from_vec(vec![0.1, 0.9, 0.0, 0.5, 0.2, 0.5, 0.0, 0.1, 0.3], [3, 3]).unwrap();
        assert_eq!(count_correct(&s, &[1, 2, 0]), 1);
        assert_eq!(count_correct(&s, &[1, 0, 2]), 3);
    }

    #[test]
    fn totals_average_over_samples() {
        // Batches of 2 (mean loss 1.0) and 6 (mean loss 3.0): (2 + 18) / 8 = 2.5.
        let t = EpochTotals {
            loss_sum: 2.0 * 1.0 + 6.0 * 3.0,
            correct: 6,
            seen: 8,
            seconds: 2.0,
        };
        assert_eq!(t.mean_loss(), 2.5);
        assert_eq!(t.accuracy(), 0.75);
        assert_eq!(t.images_per_second(), 4.0);
    }
}
