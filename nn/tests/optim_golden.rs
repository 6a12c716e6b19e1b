//! Every optimiser sequence of optimizers.json, reproduced at the case's tolerance:
//! `p = initial; for each t: p.grad = grads[t]; opt.step(); steps[t] == p`.

mod common;

use common::{assert_close, cases, tensor, tol};
use serde_json::Value;
use tapegrad_autograd::{Param, Result, Tensor, Var};
use tapegrad_nn::optim::{
    Adam, AdamConfig, AdamW, GradMap, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use tapegrad_nn::{Entry, EntryRef, Module};

fn f(params: &Value, key: &str) -> f32 {
    params[key]
        .as_f64()
        .unwrap_or_else(|| panic!("param {key}")) as f32
}

/// The optimiser a case describes (`op` and PyTorch's keyword arguments).
fn build(case: &Value) -> Box<dyn Optimizer> {
    let p = &case["params"];
    let opt: Box<dyn Optimizer> = match case["op"].as_str().unwrap() {
        "sgd" => Box::new(
            Sgd::new(SgdConfig {
                lr: f(p, "lr"),
                momentum: f(p, "momentum"),
                weight_decay: f(p, "weight_decay"),
                nesterov: p["nesterov"].as_bool().unwrap(),
                ..Default::default()
            })
            .unwrap(),
        ),
        "rmsprop" => Box::new(
            RmsProp::new(RmsPropConfig {
                lr: f(p, "lr"),
                alpha: f(p, "alpha"),
                eps: f(p, "eps"),
                momentum: f(p, "momentum"),
                ..Default::default()
            })
            .unwrap(),
        ),
        op @ ("adam" | "adamw") => {
            let cfg = AdamConfig {
                lr: f(p, "lr"),
                betas: (
                    p["betas"][0].as_f64().unwrap() as f32,
                    p["betas"][1].as_f64().unwrap() as f32,
                ),
                eps: f(p, "eps"),
                weight_decay: f(p, "weight_decay"),
                amsgrad: false,
            };
            if op == "adam" {
                Box::new(Adam::new(cfg).unwrap())
            } else {
                Box::new(AdamW::new(cfg).unwrap())
            }
        }
        other => panic!("case {}: unknown optimiser {other}", case["name"]),
    };
    opt
}

fn grads(case: &Value) -> Vec<Tensor> {
    case["grads"]
        .as_array()
        .unwrap()
        .iter()
        .map(tensor)
        .collect()
}

fn steps(case: &Value) -> Vec<Tensor> {
    case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(tensor)
        .collect()
}

#[test]
fn every_sequence_matches_pytorch_through_step_param() {
    let all = cases("optimizers.json");
    assert_eq!(all.len(), 6, "the public set has six sequences");
    for case in &all {
        let name = case["name"].as_str().unwrap();
        let mut opt = build(case);
        let mut p = Param::new(tensor(&case["initial_param"]));
        let want = steps(case);
        assert_eq!(want.len(), 5);
        for (t, g) in grads(case).iter().enumerate() {
            opt.step_param("p", &mut p, g).unwrap();
            assert_close(
                &format!("{name} step {}", t + 1),
                p.value(),
                &want[t],
                tol(case),
            );
        }
        assert_eq!(opt.core().slot("p").unwrap().step, 5);
    }
}

/// A module holding one parameter named `p`.
struct One(Param);

impl Module for One {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        x.mul(x.tape().param(&self.0))
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        f(&format!("{prefix}p"), EntryRef::Param(&self.0));
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&format!("{prefix}p"), Entry::Param(&mut self.0));
    }
}

#[test]
fn every_sequence_matches_through_a_model_and_a_resumed_state() {
    for case in &cases("optimizers.json") {
        let name = case["name"].as_str().unwrap();
        let want = steps(case);
        let gs = grads(case);
        let mut model = One(Param::new(tensor(&case["initial_param"])));
        let mut opt = build(case);
        for (t, g) in gs.iter().enumerate() {
            if t == 2 {
                // Resume from a saved state in a fresh optimiser, through the flat tensor form
                // a checkpoint would store.
                let flat = opt.state_dict().to_tensors();
                let state = tapegrad_nn::optim::OptimizerState::from_tensors(&flat).unwrap();
                assert_eq!(state, opt.state_dict());
                opt = build(case);
                opt.load_state_dict(&state).unwrap();
            }
            let mut map = GradMap::new();
            map.insert("p", g.clone());
            opt.step_with(&mut model, &map).unwrap();
            assert_close(
                &format!("{name} step {}", t + 1),
                model.0.value(),
                &want[t],
                tol(case),
            );
        }
    }
}
