//! Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, with
//! PyTorch's `torch.optim.SGD` update:
//!
//! ```text
//! g = g + wd * p
//! b = g                                  on the first step (no dampening then)
//! b = momentum * b + (1 - dampening) * g afterwards
//! g = g + momentum * b  (nesterov)  or  g = b
//! p = p - lr * g
//! ```
//! Note the momentum convention: PyTorch (and so this) accumulates `b` in gradient units and
//! multiplies by `lr` at the end; the AlexNet paper's `v = 0.9 v - lr g` matches only while `lr`
//! is constant.

use super::groups::Groups;
use super::state::Core;
use super::Optimizer;
use tapegrad_autograd::{Error, Param, Result, Tensor};

/// Settings of [`Sgd`]; `..Default::default()` gives plain SGD with lr 0.001.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// SGD; state: `momentum_buffer` per parameter (when momentum > 0).
#[derive(Clone, Debug)]
pub struct Sgd {
    cfg: SgdConfig,
    core: Core,
}

impl Sgd {
    pub fn new(cfg: SgdConfig) -> Result<Sgd> {
        let op = "Sgd::new";
        if !(cfg.momentum >= 0.0 && cfg.momentum.is_finite()) {
            return Err(Error::invalid(
                op,
                format!("momentum {} must be >= 0", cfg.momentum),
            ));
        }
        if !cfg.dampening.is_finite() {
            return Err(Error::invalid(
                op,
                format!("dampening {} must be finite", cfg.dampening),
            ));
        }
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            return Err(Error::invalid(
                op,
                "Nesterov momentum needs momentum > 0 and zero dampening",
            ));
        }
        let groups = Groups::new(op, cfg.lr, cfg.weight_decay)?;
        Ok(Sgd {
            cfg,
            core: Core::new(groups, &["momentum_buffer"]),
        })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }
}

impl Optimizer for Sgd {
    fn step_param(&mut self, name: &str, param: &mut Param, grad: &Tensor) -> Result<()> {
        self.core.check(name, param.value(), grad)?;
        let h = self.core.groups.resolve(name);
        let SgdConfig {
            momentum: m,
            dampening,
            nesterov,
            ..
        } = self.cfg;
        let (lr, wd) = (h.lr, h.weight_decay);
        let slot = self.core.slot_mut(name);
        slot.step += 1;
        let p = param.data_mut();
        let g = grad.data();
        if m == 0.0 {
            for (p, &g) in p.iter_mut().zip(g) {
                let d = if wd != 0.0 { g + wd * *p } else { g };
                *p += -lr * d;
            }
            return Ok(());
        }
        let first = slot.buffers[0].is_none();
        let buf = slot.buffers[0]
            .get_or_insert_with(|| Tensor::zeros(grad.shape()))
            .data_mut();
        for ((p, &g), b) in p.iter_mut().zip(g).zip(buf) {
            let d = if wd != 0.0 { g + wd * *p } else { g };
            *b = if first {
                d
            } else {
                m * *b + (1.0 - dampening) * d
            };
            let d = if nesterov { d + m * *b } else { *b };
            *p += -lr * d;
        }
        Ok(())
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}
