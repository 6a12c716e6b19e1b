//! `ReduceLROnPlateau`: cut the learning rate when a watched metric stops improving, with
//! PyTorch's semantics.
//!
//! After each epoch `step(opt, metric)`: the metric improves if it beats the best so far by the
//! threshold (`metric < best * (1 - threshold)` for mode min with a relative threshold). An
//! epoch without improvement is "bad"; during a cooldown bad epochs are not counted. When more
//! than `patience` consecutive bad epochs have passed, every group's rate becomes
//! `max(lr * factor, min_lr)` (unless that changes it by less than `eps`), the count restarts
//! and the cooldown begins.
//!
//! ```
//! use tapegrad_nn::optim::{Optimizer, PlateauConfig, ReduceLROnPlateau, Sgd, SgdConfig};
//! let mut opt = Sgd::new(SgdConfig { lr: 0.01, momentum: 0.9, ..Default::default() }).unwrap();
//! // AlexNet: divide by 10 when the validation error stops improving.
//! let mut sched = ReduceLROnPlateau::new(PlateauConfig { patience: 1, ..Default::default() }).unwrap();
//! for err in [0.5, 0.4, 0.4, 0.4] {
//!     sched.step(&mut opt, err).unwrap();
//! }
//! // Two epochs at 0.4 without improvement exceed patience 1.
//! assert!((opt.lr() - 0.001).abs() < 1e-9);
//! ```

use super::Optimizer;
use tapegrad_autograd::{Error, Result};

/// Whether the watched metric should go down (a loss, an error rate) or up (an accuracy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlateauMode {
    #[default]
    Min,
    Max,
}

/// Whether `threshold` is relative to the best value or absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThresholdMode {
    #[default]
    Rel,
    Abs,
}

/// Settings of [`ReduceLROnPlateau`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauConfig {
    pub mode: PlateauMode,
    /// The rate is multiplied by this (< 1).
    pub factor: f32,
    /// Bad epochs tolerated before a cut.
    pub patience: usize,
    pub threshold: f32,
    pub threshold_mode: ThresholdMode,
    /// Epochs after a cut during which bad epochs are not counted.
    pub cooldown: usize,
    /// No group's rate goes below this.
    pub min_lr: f32,
    /// Cuts smaller than this are skipped.
    pub eps: f32,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// Cuts the learning rate when a metric plateaus.
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    cfg: PlateauConfig,
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    last_epoch: usize,
}

impl ReduceLROnPlateau {
    pub fn new(cfg: PlateauConfig) -> Result<ReduceLROnPlateau> {
        let op = "ReduceLROnPlateau::new";
        if !(cfg.factor >= 0.0 && cfg.factor < 1.0) {
            return Err(Error::invalid(
                op,
                format!("factor {} must be in [0, 1)", cfg.factor),
            ));
        }
        for (what, v) in [
            ("threshold", cfg.threshold),
            ("min_lr", cfg.min_lr),
            ("eps", cfg.eps),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::invalid(
                    op,
                    format!("{what} {v} must be finite and >= 0"),
                ));
            }
        }
        let mut s = ReduceLROnPlateau {
            cfg,
            best: 0.0,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
        };
        s.best = s.worst();
        Ok(s)
    }

    fn worst(&self) -> f64 {
        match self.cfg.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    /// Whether `a` improves on the best value by the threshold.
    fn is_better(&self, a: f64) -> bool {
        let (best, th) = (self.best, self.cfg.threshold as f64);
        match (self.cfg.mode, self.cfg.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - th),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - th,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (1.0 + th),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + th,
        }
    }

    /// Ends an epoch with the watched `metric`; returns whether the rates were cut.
    pub fn step(&mut self, opt: &mut dyn Optimizer, metric: f32) -> Result<bool> {
        let current = metric as f64;
        self.last_epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs <= self.cfg.patience {
            return Ok(false);
        }
        let (factor, min_lr, eps) = (
            self.cfg.factor as f64,
            self.cfg.min_lr as f64,
            self.cfg.eps as f64,
        );
        let lrs: Vec<f32> = opt
            .group_lrs()
            .into_iter()
            .map(|old| {
                let new = (old as f64 * factor).max(min_lr);
                if old as f64 - new > eps {
                    new as f32
                } else {
                    old
                }
            })
            .collect();
        let cut = lrs != opt.group_lrs();
        opt.set_group_lrs(&lrs)?;
        self.cooldown_counter = self.cfg.cooldown;
        self.num_bad_epochs = 0;
        Ok(cut)
    }

    /// The best metric seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Consecutive epochs without improvement so far.
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }

    pub fn last_epoch(&self) -> usize {
        self.last_epoch
    }

    /// The counters, to resume exactly.
    pub fn state_dict(&self) -> Vec<(String, f64)> {
        vec![
            ("best".into(), self.best),
            ("num_bad_epochs".into(), self.num_bad_epochs as f64),
            ("cooldown_counter".into(), self.cooldown_counter as f64),
            ("last_epoch".into(), self.last_epoch as f64),
        ]
    }

    pub fn load_state_dict(&mut self, state: &[(String, f64)]) -> Result<()> {
        let get = |key: &str| {
            state
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| Error::Format {
                    what: "scheduler state".into(),
                    msg: format!("{key} is missing"),
                })
        };
        let count = |key: &str| -> Result<usize> {
            let v = get(key)?;
            if v >= 0.0 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(Error::Format {
                    what: "scheduler state".into(),
                    msg: format!("{key} = {v} is not a count"),
                })
            }
        };
        let (best, bad, cool, last) = (
            get("best")?,
            count("num_bad_epochs")?,
            count("cooldown_counter")?,
            count("last_epoch")?,
        );
        self.best = best;
        self.num_bad_epochs = bad;
        self.cooldown_counter = cool;
        self.last_epoch = last;
        Ok(())
    }
}
