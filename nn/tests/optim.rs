//! Optimiser behaviour beyond the reference sequences: groups, skipped and frozen parameters,
//! the variants (centered, amsgrad, dampening) by hand, and state errors.

use tapegrad_autograd::{Param, Tensor};
use tapegrad_nn::optim::{
    Adam, AdamConfig, AdamW, GradMap, Optimizer, OptimizerState, ParamGroup, RmsProp,
    RmsPropConfig, Sgd, SgdConfig,
};
use tapegrad_nn::Module;

/// Two named parameters, `fc.weight` and `fc.bias`, with no forward of interest.
#[derive(Module)]
struct Two {
    #[module(rename = "fc.weight")]
    w: Param,
    #[module(rename = "fc.bias")]
    b: Param,
}

impl Two {
    fn new() -> Two {
        Two {
            w: Param::new(Tensor::from_slice(&[1.0, -2.0])),
            b: Param::new(Tensor::from_slice(&[0.5])),
        }
    }
}

impl Two {
    fn forward<'t>(
        &mut self,
        x: tapegrad_autograd::Var<'t>,
    ) -> tapegrad_autograd::Result<tapegrad_autograd::Var<'t>> {
        Ok(x)
    }
}

fn zero_grads() -> GradMap {
    let mut g = GradMap::new();
    g.insert("fc.weight", Tensor::zeros([2]));
    g.insert("fc.bias", Tensor::zeros([1]));
    g
}

#[test]
fn groups_give_biases_their_own_rate_and_no_decay() {
    // Zero gradients: only weight decay moves a parameter, p -= lr * wd * p.
    let mut m = Two::new();
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    })
    .unwrap();
    opt.add_group(ParamGroup::matching("biases", |n| n.ends_with("bias")).weight_decay(0.0))
        .unwrap();
    opt.step_with(&mut m, &zero_grads()).unwrap();
    // w = [1, -2] * (1 - 0.05) = [0.95, -1.9]; the bias keeps 0.5.
    assert_eq!(m.w.value().to_vec(), vec![0.95, -1.9]);
    assert_eq!(m.b.value().to_vec(), vec![0.5]);
    assert_eq!(opt.group_lrs(), vec![0.1, 0.1]);
    // A group by prefix with its own rate: gradient 1, lr 0.01 -> w -= 0.01 (+ decay 0.5 w).
    let mut m = Two::new();
    let mut opt = Sgd::new(SgdConfig::default()).unwrap();
    opt.add_group(ParamGroup::prefix("fc.w").lr(0.01)).unwrap();
    opt.add_group(ParamGroup::names(["fc.bias"]).lr(0.0))
        .unwrap();
    let mut g = GradMap::new();
    g.insert("fc.weight", Tensor::ones([2]));
    g.insert("fc.bias", Tensor::ones([1]));
    opt.step_with(&mut m, &g).unwrap();
    assert_eq!(m.w.value().to_vec(), vec![0.99, -2.01]);
    assert_eq!(m.b.value().to_vec(), vec![0.5]);
    opt.set_lr(0.2).unwrap();
    assert_eq!(opt.group_lrs(), vec![0.2; 3]);
    assert!(opt.set_lr(-1.0).is_err());
    assert!(opt.set_group_lrs(&[0.1]).is_err());
    assert!(opt.add_group(ParamGroup::prefix("x").lr(f32::NAN)).is_err());
}

#[test]
fn parameters_without_gradients_are_skipped() {
    let mut m = Two::new();
    let mut opt = Adam::new(AdamConfig::default()).unwrap();
    let mut g = GradMap::new();
    g.insert("fc.weight", Tensor::ones([2]));
    opt.step_with(&mut m, &g).unwrap();
    assert_eq!(m.b.value().to_vec(), vec![0.5]);
    assert!(opt.core().slot("fc.bias").is_none());
    assert_eq!(opt.core().slot("fc.weight").unwrap().step, 1);
    // Adam's first step moves by lr * g / (|g| + eps) ~ lr in the gradient's direction.
    assert!((m.w.value().to_vec()[0] - (1.0 - 1e-3)).abs() < 1e-6);
}

#[test]
fn sgd_dampening_by_hand() {
    // momentum 0.5, dampening 0.5, g = 2 each step, lr 1: b1 = 2 (no dampening on the first
    // step), b2 = 0.5 * 2 + 0.5 * 2 = 2; p = 0 - 2 - 2 = -4.
    let mut p = Param::new(Tensor::zeros([1]));
    let mut opt = Sgd::new(SgdConfig {
        lr: 1.0,
        momentum: 0.5,
        dampening: 0.5,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..2 {
        opt.step_param("p", &mut p, &Tensor::full([1], 2.0))
            .unwrap();
    }
    assert_eq!(p.value().to_vec(), vec![-4.0]);
    assert_eq!(
        opt.core().buffer("p", "momentum_buffer").unwrap().to_vec(),
        vec![2.0]
    );
    let nesterov_without_momentum = SgdConfig {
        nesterov: true,
        ..Default::default()
    };
    assert!(Sgd::new(nesterov_without_momentum).is_err());
}

#[test]
fn centered_rmsprop_by_hand() {
    // First step, alpha 0.99: v = 0.01 g^2, a = 0.01 g, avg = sqrt(v - a^2) + eps
    // = |g| sqrt(0.01 - 0.0001) + eps, so p -= lr * g / avg = lr * sign(g) / sqrt(0.0099).
    let mut p = Param::new(Tensor::from_slice(&[0.0, 0.0]));
    let mut opt = RmsProp::new(RmsPropConfig {
        lr: 0.01,
        centered: true,
        eps: 0.0,
        ..Default::default()
    })
    .unwrap();
    opt.step_param("p", &mut p, &Tensor::from_slice(&[3.0, -0.5]))
        .unwrap();
    let d = 0.01 / 0.0099f32.sqrt();
    let got = p.value().to_vec();
    assert!(
        (got[0] + d).abs() < 1e-6 && (got[1] - d).abs() < 1e-6,
        "{got:?}"
    );
    assert!(RmsProp::new(RmsPropConfig {
        alpha: -1.0,
        ..Default::default()
    })
    .is_err());
}

#[test]
fn amsgrad_uses_the_largest_second_moment() {
    // Gradients 1 then 0.01, lr 1, eps 0. Step 2: m = 0.9 * 0.1 + 0.1 * 0.01 = 0.091,
    // v2 = 0.999 * 0.001 + 0.001 * 1e-4 = 0.0009991 < v1 = 0.001, so amsgrad divides by
    // sqrt(0.001) where Adam divides by sqrt(0.0009991); both by sqrt(1 - 0.999^2).
    let run = |amsgrad: bool| {
        let cfg = AdamConfig {
            lr: 1.0,
            eps: 0.0,
            amsgrad,
            ..Default::default()
        };
        let mut opt = Adam::new(cfg).unwrap();
        let mut p = Param::new(Tensor::zeros([1]));
        opt.step_param("p", &mut p, &Tensor::ones([1])).unwrap();
        let after1 = p.value().to_vec()[0];
        opt.step_param("p", &mut p, &Tensor::full([1], 0.01))
            .unwrap();
        (p.value().to_vec()[0] - after1) as f64
    };
    let (bc1, bc2) = (1.0 - 0.9f64.powi(2), (1.0 - 0.999f64.powi(2)).sqrt());
    let want = |v: f64| -(0.091 / bc1) / (v.sqrt() / bc2);
    assert!((run(false) - want(0.0009991)).abs() < 1e-4);
    assert!((run(true) - want(0.001)).abs() < 1e-4);
    assert!(run(true).abs() < run(false).abs());
}

#[test]
fn adamw_decays_decoupled_from_the_moments() {
    // Zero gradient: Adam's m and v stay 0 and p only shrinks by (1 - lr wd) = 1 - 0.1 * 0.5.
    let mut p = Param::new(Tensor::from_slice(&[2.0]));
    let mut opt = AdamW::new(AdamConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..Default::default()
    })
    .unwrap();
    opt.step_param("p", &mut p, &Tensor::zeros([1])).unwrap();
    assert!((p.value().to_vec()[0] - 1.9).abs() < 1e-6);
    assert_eq!(
        opt.core().buffer("p", "exp_avg").unwrap().to_vec(),
        vec![0.0]
    );
    assert_eq!(AdamConfig::adamw().weight_decay, 0.01);
    assert!(Adam::new(AdamConfig {
        betas: (1.0, 0.999),
        ..Default::default()
    })
    .is_err());
}

#[test]
fn state_errors_leave_the_optimiser_unchanged() {
    let mut opt = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..Default::default()
    })
    .unwrap();
    let mut p = Param::new(Tensor::ones([2]));
    opt.step_param("w", &mut p, &Tensor::ones([2])).unwrap();
    let good = opt.state_dict();
    assert_eq!(good.steps, vec![("w".to_string(), 1)]);
    assert_eq!(good.buffers[0].0, "w.momentum_buffer");
    // Adam's buffers are not SGD's.
    let mut adam_state = good.clone();
    adam_state.buffers[0].0 = "w.exp_avg".into();
    assert!(opt.load_state_dict(&adam_state).is_err());
    let mut orphan = good.clone();
    orphan.steps.clear();
    assert!(opt.load_state_dict(&orphan).is_err());
    let mut lrs = good.clone();
    lrs.lrs = vec![0.1, 0.2];
    assert!(opt.load_state_dict(&lrs).is_err());
    assert_eq!(opt.state_dict(), good);
    // A saved buffer of another shape is refused at the next step.
    let mut q = Param::new(Tensor::ones([3]));
    assert!(opt.step_param("w", &mut q, &Tensor::ones([3])).is_err());
    assert!(opt.step_param("w", &mut p, &Tensor::ones([3])).is_err());
    // Step counts survive the flat form exactly, even beyond f32's 2^24.
    let big = OptimizerState {
        steps: vec![("w".into(), (1 << 40) + 12345)],
        lrs: vec![0.5],
        ..Default::default()
    };
    assert_eq!(
        OptimizerState::from_tensors(&big.to_tensors()).unwrap(),
        big
    );
    assert!(OptimizerState::from_tensors(&[("oops".into(), Tensor::ones([1]))]).is_err());
}
