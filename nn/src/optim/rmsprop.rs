//! RMSprop, with PyTorch's `torch.optim.RMSprop` update (note `eps` is added OUTSIDE the square
//! root, unlike Adam's placement inside the bias-corrected denominator):
//!
//! ```text
//! g = g + wd * p
//! v = alpha * v + (1 - alpha) * g^2                      (v starts at 0)
//! centered:  a = lerp(a, g, 1 - alpha);  avg = sqrt(v - a^2) + eps
//! otherwise: avg = sqrt(v) + eps
//! momentum > 0: b = momentum * b + g / avg;  p = p - lr * b   (b starts at 0)
//! otherwise:    p = p - lr * g / avg
//! ```

use super::groups::Groups;
use super::state::Core;
use super::{lerp, Optimizer};
use tapegrad_autograd::{Error, Param, Result, Tensor};

/// Settings of [`RmsProp`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

/// RMSprop; state: `square_avg`, `momentum_buffer` (momentum > 0) and `grad_avg` (centered).
#[derive(Clone, Debug)]
pub struct RmsProp {
    cfg: RmsPropConfig,
    core: Core,
}

impl RmsProp {
    pub fn new(cfg: RmsPropConfig) -> Result<RmsProp> {
        let op = "RmsProp::new";
        let check = |what: &str, v: f32| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::invalid(
                    op,
                    format!("{what} {v} must be finite and >= 0"),
                ))
            }
        };
        check("alpha", cfg.alpha)?;
        check("eps", cfg.eps)?;
        check("momentum", cfg.momentum)?;
        let groups = Groups::new(op, cfg.lr, cfg.weight_decay)?;
        Ok(RmsProp {
            cfg,
            core: Core::new(groups, &["square_avg", "momentum_buffer", "grad_avg"]),
        })
    }

    pub fn config(&self) -> &RmsPropConfig {
        &self.cfg
    }
}

impl Optimizer for RmsProp {
    fn step_param(&mut self, name: &str, param: &mut Param, grad: &Tensor) -> Result<()> {
        self.core.check(name, param.value(), grad)?;
        let h = self.core.groups.resolve(name);
        let RmsPropConfig {
            alpha,
            eps,
            momentum,
            centered,
            ..
        } = self.cfg;
        let (lr, wd) = (h.lr, h.weight_decay);
        let slot = self.core.slot_mut(name);
        slot.step += 1;
        slot.buffer_or_zeros(0, grad);
        if momentum > 0.0 {
            slot.buffer_or_zeros(1, grad);
        }
        if centered {
            slot.buffer_or_zeros(2, grad);
        }
        let [v, b, a] = &mut slot.buffers[..] else {
            unreachable!("RmsProp keeps three buffers")
        };
        let v = v.as_mut().expect("created above").data_mut();
        let mut b = b.as_mut().map(|t| t.data_mut());
        let mut a = a.as_mut().map(|t| t.data_mut());
        let p = param.data_mut();
        for (i, (p, &g)) in p.iter_mut().zip(grad.data()).enumerate() {
            let g = if wd != 0.0 { g + wd * *p } else { g };
            v[i] = alpha * v[i] + (1.0 - alpha) * g * g;
            let avg = match a.as_deref_mut().filter(|_| centered) {
                Some(a) => {
                    a[i] = lerp(a[i], g, 1.0 - alpha);
                    (v[i] - a[i] * a[i]).sqrt()
                }
                None => v[i].sqrt(),
            } + eps;
            match b.as_deref_mut().filter(|_| momentum > 0.0) {
                Some(b) => {
                    b[i] = momentum * b[i] + g / avg;
                    *p += -lr * b[i];
                }
                None => *p += -lr * (g / avg),
            }
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
