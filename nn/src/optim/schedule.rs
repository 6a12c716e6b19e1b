//! Learning-rate schedules, with PyTorch's semantics. Call `step` once per epoch, after the
//! epoch's optimiser steps; every parameter group is scaled from its own base rate (the rates
//! when the scheduler was made).
//!
//! `StepLR`, `MultiStepLR` and `CosineAnnealingLR` use PyTorch's closed forms, so the rate at
//! epoch `e` depends on `e` alone (a rate set by hand in between is overwritten).
//! `ReduceLROnPlateau` watches a metric: AlexNet's "divide the learning rate by 10 when the
//! validation error stops improving".
//!
//! ```
//! use tapegrad_nn::optim::{LrScheduler, Optimizer, Sgd, SgdConfig, StepLR};
//! let mut opt = Sgd::new(SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
//! let mut sched = StepLR::new(&opt, 2, 0.1).unwrap();
//! let mut lrs = vec![];
//! for _epoch in 0..5 {
//!     lrs.push(opt.lr()); // ... train one epoch ...
//!     sched.step(&mut opt).unwrap();
//! }
//! // lr * 0.1^(e / 2): 0.1, 0.1, 0.01, 0.01, 0.001
//! assert!((lrs[4] - 0.001).abs() < 1e-9 && (lrs[2] - 0.01).abs() < 1e-9);
//! ```

use super::Optimizer;
use tapegrad_autograd::{Error, Result};

/// An epoch-driven schedule.
pub trait LrScheduler {
    /// Ends an epoch: advances the epoch count and sets every group's learning rate.
    fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()>;

    /// Epochs completed (0 before the first `step`).
    fn last_epoch(&self) -> usize;

    /// The learning rate of each group at `epoch`, default group first.
    fn lrs_at(&self, epoch: usize) -> Vec<f32>;

    /// Base rates and epoch count, to resume a schedule exactly.
    fn state_dict(&self) -> Vec<(String, f64)>;

    fn load_state_dict(&mut self, state: &[(String, f64)]) -> Result<()>;
}

/// What the closed-form schedules share: the base rates and the epoch count.
#[derive(Clone, Debug)]
struct Epochs {
    base_lrs: Vec<f32>,
    epoch: usize,
}

impl Epochs {
    fn new(opt: &dyn Optimizer) -> Epochs {
        Epochs {
            base_lrs: opt.group_lrs(),
            epoch: 0,
        }
    }

    fn at(&self, epoch: usize, f: impl Fn(f64, usize) -> f64) -> Vec<f32> {
        self.base_lrs
            .iter()
            .map(|&b| f(b as f64, epoch) as f32)
            .collect()
    }

    fn advance(&mut self, opt: &mut dyn Optimizer, lrs: Vec<f32>) -> Result<()> {
        opt.set_group_lrs(&lrs)?;
        self.epoch += 1;
        Ok(())
    }

    fn state(&self) -> Vec<(String, f64)> {
        let mut s = vec![("last_epoch".to_string(), self.epoch as f64)];
        for (i, &b) in self.base_lrs.iter().enumerate() {
            s.push((format!("base_lr.{i}"), b as f64));
        }
        s
    }

    fn load(&mut self, state: &[(String, f64)]) -> Result<()> {
        let bad = |msg: String| Error::Format {
            what: "scheduler state".into(),
            msg,
        };
        let mut epoch = None;
        let mut base: Vec<(usize, f32)> = Vec::new();
        for (k, v) in state {
            if k == "last_epoch" && *v >= 0.0 && v.fract() == 0.0 {
                epoch = Some(*v as usize);
            } else if let Some(i) = k.strip_prefix("base_lr.").and_then(|i| i.parse().ok()) {
                base.push((i, *v as f32));
            } else {
                return Err(bad(format!("unexpected entry {k} = {v}")));
            }
        }
        base.sort_by_key(|&(i, _)| i);
        if base.iter().enumerate().any(|(j, &(i, _))| i != j) {
            return Err(bad("the base rates must be numbered 0, 1, ...".into()));
        }
        self.epoch = epoch.ok_or_else(|| bad("last_epoch is missing".into()))?;
        self.base_lrs = base.into_iter().map(|(_, b)| b).collect();
        Ok(())
    }
}

/// `lr = base * gamma^floor(epoch / step_size)`.
#[derive(Clone, Debug)]
pub struct StepLR {
    e: Epochs,
    step_size: usize,
    gamma: f32,
}

impl StepLR {
    pub fn new(opt: &dyn Optimizer, step_size: usize, gamma: f32) -> Result<StepLR> {
        if step_size == 0 || !gamma.is_finite() {
            return Err(Error::invalid(
                "StepLR::new",
                format!("step_size {step_size} must be > 0 and gamma {gamma} finite"),
            ));
        }
        Ok(StepLR {
            e: Epochs::new(opt),
            step_size,
            gamma,
        })
    }
}

/// `lr = base * gamma^(number of milestones <= epoch)` (a repeated milestone counts twice).
#[derive(Clone, Debug)]
pub struct MultiStepLR {
    e: Epochs,
    milestones: Vec<usize>,
    gamma: f32,
}

impl MultiStepLR {
    pub fn new(opt: &dyn Optimizer, milestones: &[usize], gamma: f32) -> Result<MultiStepLR> {
        if !gamma.is_finite() {
            return Err(Error::invalid(
                "MultiStepLR::new",
                format!("gamma {gamma} must be finite"),
            ));
        }
        let mut milestones = milestones.to_vec();
        milestones.sort_unstable();
        Ok(MultiStepLR {
            e: Epochs::new(opt),
            milestones,
            gamma,
        })
    }
}

/// `lr = eta_min + (base - eta_min) (1 + cos(pi * epoch / t_max)) / 2`: half a cosine from the
/// base rate down to `eta_min` over `t_max` epochs (and back up after, as PyTorch's).
#[derive(Clone, Debug)]
pub struct CosineAnnealingLR {
    e: Epochs,
    t_max: usize,
    eta_min: f32,
}

impl CosineAnnealingLR {
    pub fn new(opt: &dyn Optimizer, t_max: usize, eta_min: f32) -> Result<CosineAnnealingLR> {
        if t_max == 0 || !(eta_min >= 0.0 && eta_min.is_finite()) {
            return Err(Error::invalid(
                "CosineAnnealingLR::new",
                format!("t_max {t_max} must be > 0 and eta_min {eta_min} finite and >= 0"),
            ));
        }
        Ok(CosineAnnealingLR {
            e: Epochs::new(opt),
            t_max,
            eta_min,
        })
    }
}

/// Implements `LrScheduler` for a closed-form schedule `lr(self, base, epoch)`.
macro_rules! closed_form {
    ($t:ty, |$s:ident, $base:ident, $epoch:ident| $f:expr) => {
        impl LrScheduler for $t {
            fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
                let lrs = self.lrs_at(self.e.epoch + 1);
                self.e.advance(opt, lrs)
            }
            fn last_epoch(&self) -> usize {
                self.e.epoch
            }
            fn lrs_at(&self, epoch: usize) -> Vec<f32> {
                let $s = self;
                self.e.at(epoch, |$base, $epoch| $f)
            }
            fn state_dict(&self) -> Vec<(String, f64)> {
                self.e.state()
            }
            fn load_state_dict(&mut self, state: &[(String, f64)]) -> Result<()> {
                self.e.load(state)
            }
        }
    };
}

closed_form!(StepLR, |s, base, e| base
    * (s.gamma as f64).powi((e / s.step_size) as i32));
closed_form!(MultiStepLR, |s, base, e| {
    let passed = s.milestones.iter().take_while(|&&m| m <= e).count();
    base * (s.gamma as f64).powi(passed as i32)
});
closed_form!(CosineAnnealingLR, |s, base, e| {
    let eta = s.eta_min as f64;
    let c = (std::f64::consts::PI * e as f64 / s.t_max as f64).cos();
    eta + (base - eta) * (1.0 + c) / 2.0
});
