//! Adam and AdamW, with PyTorch's update (`eps` is added AFTER the bias correction of the
//! second moment):
//!
//! ```text
//! Adam:  g = g + wd * p                 (L2, coupled into the moments)
//! AdamW: p = p * (1 - lr * wd)          (decoupled, before the step)
//! m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g^2      (both start at 0; t = step)
//! amsgrad: v_max = max(v_max, v), used in place of v
//! p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```

use super::groups::Groups;
use super::state::Core;
use super::{lerp, Optimizer};
use tapegrad_autograd::{Error, Param, Result, Tensor};

/// Settings of [`Adam`] and [`AdamW`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    /// PyTorch's Adam defaults (AdamW's default weight decay is 0.01: see [`AdamW::new`]).
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

impl AdamConfig {
    /// PyTorch's AdamW defaults: Adam's, with weight decay 0.01.
    pub fn adamw() -> AdamConfig {
        AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        }
    }
}

/// Adam; state: `exp_avg`, `exp_avg_sq` and `max_exp_avg_sq` (amsgrad) per parameter.
#[derive(Clone, Debug)]
pub struct Adam {
    cfg: AdamConfig,
    decoupled: bool,
    core: Core,
}

const BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

impl Adam {
    /// Adam with L2 weight decay added to the gradient.
    pub fn new(cfg: AdamConfig) -> Result<Adam> {
        Adam::build("Adam::new", cfg, false)
    }

    fn build(op: &'static str, cfg: AdamConfig, decoupled: bool) -> Result<Adam> {
        let (b1, b2) = cfg.betas;
        for (what, b) in [("beta1", b1), ("beta2", b2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(op, format!("{what} {b} must be in [0, 1)")));
            }
        }
        if !(cfg.eps >= 0.0 && cfg.eps.is_finite()) {
            return Err(Error::invalid(
                op,
                format!("eps {} must be finite and >= 0", cfg.eps),
            ));
        }
        let groups = Groups::new(op, cfg.lr, cfg.weight_decay)?;
        Ok(Adam {
            cfg,
            decoupled,
            core: Core::new(groups, BUFFERS),
        })
    }

    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }
}

impl Optimizer for Adam {
    fn step_param(&mut self, name: &str, param: &mut Param, grad: &Tensor) -> Result<()> {
        self.core.check(name, param.value(), grad)?;
        let h = self.core.groups.resolve(name);
        let (lr, wd) = (h.lr, h.weight_decay);
        let AdamConfig {
            betas: (b1, b2),
            eps,
            amsgrad,
            ..
        } = self.cfg;
        let decoupled = self.decoupled;
        let slot = self.core.slot_mut(name);
        slot.step += 1;
        // Bias corrections in f64, as PyTorch computes them in Python floats.
        let t = slot.step as f64;
        let step_size = (lr as f64 / (1.0 - (b1 as f64).powf(t))) as f32;
        let bc2_sqrt = (1.0 - (b2 as f64).powf(t)).sqrt() as f32;
        for i in 0..if amsgrad { 3 } else { 2 } {
            slot.buffer_or_zeros(i, grad);
        }
        let [m, v, vmax] = &mut slot.buffers[..] else {
            unreachable!("Adam keeps three buffers")
        };
        let m = m.as_mut().expect("created above").data_mut();
        let v = v.as_mut().expect("created above").data_mut();
        let mut vmax = vmax.as_mut().filter(|_| amsgrad).map(|t| t.data_mut());
        let p = param.data_mut();
        for (i, (p, &g)) in p.iter_mut().zip(grad.data()).enumerate() {
            let g = if wd != 0.0 && !decoupled {
                g + wd * *p
            } else {
                g
            };
            if wd != 0.0 && decoupled {
                *p *= 1.0 - lr * wd;
            }
            m[i] = lerp(m[i], g, 1.0 - b1);
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let second = match vmax.as_deref_mut() {
                Some(vmax) => {
                    vmax[i] = vmax[i].max(v[i]);
                    vmax[i]
                }
                None => v[i],
            };
            let denom = second.sqrt() / bc2_sqrt + eps;
            *p += -step_size * (m[i] / denom);
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

/// AdamW: Adam with decoupled weight decay (`p *= 1 - lr * wd` before each step).
#[derive(Clone, Debug)]
pub struct AdamW(Adam);

impl AdamW {
    /// AdamW with the given settings; [`AdamConfig::adamw`] gives PyTorch's defaults (weight
    /// decay 0.01).
    pub fn new(cfg: AdamConfig) -> Result<AdamW> {
        Ok(AdamW(Adam::build("AdamW::new", cfg, true)?))
    }

    pub fn config(&self) -> &AdamConfig {
        &self.0.cfg
    }
}

impl Optimizer for AdamW {
    fn step_param(&mut self, name: &str, param: &mut Param, grad: &Tensor) -> Result<()> {
        self.0.step_param(name, param, grad)
    }

    fn core(&self) -> &Core {
        &self.0.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.0.core
    }
}
