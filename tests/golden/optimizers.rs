//! optimizers.json (the Steps layout): starting from `initial_param`, apply `grads[t]` with one
//! optimiser step each and return the parameter after every step as `steps[t]`.
//!
//! Ops and params: `sgd` (lr, momentum, weight_decay, nesterov), `rmsprop` (lr, alpha, eps,
//! momentum), `adam` and `adamw` (lr, betas, eps, weight_decay), as PyTorch's keyword arguments.

use super::case::{Case, Outputs, Result};
use super::registry::OpFn;
use tapegrad_autograd::Param;
use tapegrad_nn::optim::{
    Adam, AdamConfig, AdamW, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};

pub const OPS: &[(&str, OpFn)] = &[
    ("sgd", sgd),
    ("rmsprop", rmsprop),
    ("adam", adam),
    ("adamw", adamw),
];

fn sgd(case: &Case) -> Result<Outputs> {
    let cfg = SgdConfig {
        lr: case.param_f32("lr")?,
        momentum: case.param_f32("momentum")?,
        weight_decay: case.param_f32("weight_decay")?,
        nesterov: case.param_bool("nesterov")?,
        ..Default::default()
    };
    run(case, Box::new(Sgd::new(cfg)?))
}

fn rmsprop(case: &Case) -> Result<Outputs> {
    let cfg = RmsPropConfig {
        lr: case.param_f32("lr")?,
        alpha: case.param_f32("alpha")?,
        eps: case.param_f32("eps")?,
        momentum: case.param_f32("momentum")?,
        ..Default::default()
    };
    run(case, Box::new(RmsProp::new(cfg)?))
}

fn adam_config(case: &Case) -> Result<AdamConfig> {
    let betas = case
        .param("betas")?
        .as_array()
        .filter(|b| b.len() == 2)
        .and_then(|b| Some((b[0].as_f64()? as f32, b[1].as_f64()? as f32)))
        .ok_or("param betas must be a pair of numbers")?;
    Ok(AdamConfig {
        lr: case.param_f32("lr")?,
        betas,
        eps: case.param_f32("eps")?,
        weight_decay: case.param_f32("weight_decay")?,
        amsgrad: false,
    })
}

fn adam(case: &Case) -> Result<Outputs> {
    run(case, Box::new(Adam::new(adam_config(case)?)?))
}

fn adamw(case: &Case) -> Result<Outputs> {
    run(case, Box::new(AdamW::new(adam_config(case)?)?))
}

/// PyTorch's procedure: `p.grad = grads[t]; opt.step()` for each t, recording `p`.
fn run(case: &Case, mut opt: Box<dyn Optimizer>) -> Result<Outputs> {
    let mut p = Param::new(case.tensor("initial_param")?);
    let mut out = Outputs::new();
    for (t, g) in case.tensor_list("grads")?.iter().enumerate() {
        opt.step_param("p", &mut p, g)?;
        out.insert(format!("steps[{t}]"), p.value().clone());
    }
    Ok(out)
}
