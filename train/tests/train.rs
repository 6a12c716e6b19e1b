//! End to end: a small MLP learns three Gaussian blobs with every optimiser, and a run
//! interrupted and resumed from saved state ends exactly where an uninterrupted one does.

use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_nn::layers::{Linear, ReLU};
use tapegrad_nn::loss;
use tapegrad_nn::optim::{
    clip_grad_norm, Adam, AdamConfig, AdamW, GradMap, Optimizer, RmsProp, RmsPropConfig, Sgd,
    SgdConfig,
};
use tapegrad_nn::{Entry, Module, Sequential};

/// 90 points in 2-d, 30 around each of three centres (std 0.5), labelled by centre.
fn blobs() -> (Tensor, Vec<usize>) {
    let centres = [(2.0, 0.0), (-1.0, 1.7), (-1.0, -1.7)];
    let noise = Tensor::randn([90, 2], &mut rng(42));
    let mut x = Vec::with_capacity(180);
    let mut y = Vec::with_capacity(90);
    for i in 0..90 {
        let (cx, cy) = centres[i % 3];
        x.push(cx + 0.5 * noise.data()[2 * i]);
        x.push(cy + 0.5 * noise.data()[2 * i + 1]);
        y.push(i % 3);
    }
    (Tensor::from_vec(x, [90, 2]).unwrap(), y)
}

fn mlp(seed: u64) -> Sequential {
    let g = &mut rng(seed);
    Sequential::new()
        .add(Linear::new(2, 16, g).unwrap())
        .add(ReLU)
        .add(Linear::new(16, 3, g).unwrap())
}

/// One full-batch step; returns the loss before the step and the fraction classified right.
fn train_step(
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    y: &[usize],
) -> (f32, f32) {
    let tape = Tape::new();
    let logits = model.forward(tape.input(x.clone())).unwrap();
    let pred = logits.value().argmax(1, false).unwrap();
    let right = pred
        .data()
        .iter()
        .zip(y)
        .filter(|(&p, &t)| p as usize == t)
        .count();
    let l = loss::cross_entropy(logits, y).unwrap();
    let value = l.item().unwrap();
    let grads = l.backward().unwrap();
    opt.step(model, &grads).unwrap();
    (value, right as f32 / y.len() as f32)
}

fn optimisers() -> Vec<(&'static str, Box<dyn Optimizer>)> {
    vec![
        (
            "sgd momentum",
            Box::new(
                Sgd::new(SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    weight_decay: 5e-4,
                    ..Default::default()
                })
                .unwrap(),
            ),
        ),
        (
            "sgd nesterov",
            Box::new(
                Sgd::new(SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                })
                .unwrap(),
            ),
        ),
        (
            "sgd plain",
            Box::new(
                Sgd::new(SgdConfig {
                    lr: 0.3,
                    ..Default::default()
                })
                .unwrap(),
            ),
        ),
        (
            "rmsprop",
            Box::new(
                RmsProp::new(RmsPropConfig {
                    lr: 0.01,
                    ..Default::default()
                })
                .unwrap(),
            ),
        ),
        (
            "rmsprop centered momentum",
            Box::new(
                RmsProp::new(RmsPropConfig {
                    lr: 0.003,
                    momentum: 0.5,
                    centered: true,
                    ..Default::default()
                })
                .unwrap(),
            ),
        ),
        (
            "adam",
            Box::new(
                Adam::new(AdamConfig {
                    lr: 0.02,
                    ..Default::default()
                })
                .unwrap(),
            ),
        ),
        (
            "adamw",
            Box::new(
                AdamW::new(AdamConfig {
                    lr: 0.02,
                    ..AdamConfig::adamw()
                })
                .unwrap(),
            ),
        ),
    ]
}

#[test]
fn every_optimiser_reduces_the_loss() {
    let (x, y) = blobs();
    for (name, mut opt) in optimisers() {
        let mut model = mlp(1);
        let (first, _) = train_step(&mut model, opt.as_mut(), &x, &y);
        let mut last = (first, 0.0);
        for _ in 0..60 {
            last = train_step(&mut model, opt.as_mut(), &x, &y);
        }
        // The blobs are well separated: from ~ln 3 the loss falls below a tenth of its start,
        // and nearly every point is classified right.
        assert!(last.0 < first / 10.0, "{name}: loss {first} -> {}", last.0);
        assert!(last.1 >= 0.95, "{name}: accuracy {}", last.1);
    }
}

/// The parameters of a model, by name.
fn snapshot(m: &mut dyn Module) -> Vec<(String, Tensor)> {
    let mut out = vec![];
    m.visit_mut("", &mut |name, e| {
        if let Entry::Param(p) = e {
            out.push((name.to_string(), p.value().clone()));
        }
    });
    out
}

fn restore(m: &mut dyn Module, saved: &[(String, Tensor)]) {
    m.visit_mut("", &mut |name, e| {
        if let Entry::Param(p) = e {
            let (_, t) = saved.iter().find(|(n, _)| n == name).unwrap();
            p.set(t.clone()).unwrap();
        }
    });
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one_exactly() {
    let (x, y) = blobs();
    for (name, _) in optimisers() {
        let fresh = |n: &str| optimisers().into_iter().find(|(k, _)| *k == n).unwrap().1;
        let mut a = mlp(2);
        let mut oa = fresh(name);
        for _ in 0..10 {
            train_step(&mut a, oa.as_mut(), &x, &y);
        }
        let mut b = mlp(2);
        let mut ob = fresh(name);
        for _ in 0..5 {
            train_step(&mut b, ob.as_mut(), &x, &y);
        }
        // "Checkpoint": the parameters and the optimiser state; then a new model (other
        // initial values, new parameter ids) and a new optimiser take over.
        let (params, state) = (snapshot(&mut b), ob.state_dict());
        let mut c = mlp(3);
        restore(&mut c, &params);
        let mut oc = fresh(name);
        oc.load_state_dict(&state).unwrap();
        for _ in 0..5 {
            train_step(&mut c, oc.as_mut(), &x, &y);
        }
        assert_eq!(snapshot(&mut a), snapshot(&mut c), "{name}");
    }
}

#[test]
fn frozen_parameters_stay_put_and_clipped_steps_still_learn() {
    let (x, y) = blobs();
    let mut model = mlp(4);
    let mut frozen = Tensor::scalar(0.0);
    if let Some(first) = model.layers_mut().first_mut() {
        first.visit_mut("", &mut |name, e| {
            if let (Entry::Param(p), "bias") = (e, name) {
                p.set_requires_grad(false);
                frozen = p.value().clone();
            }
        });
    }
    let mut opt = Adam::new(AdamConfig {
        lr: 0.02,
        ..Default::default()
    })
    .unwrap();
    let mut losses = vec![];
    for _ in 0..40 {
        let map = {
            let tape = Tape::new();
            let l = loss::cross_entropy(model.forward(tape.input(x.clone())).unwrap(), &y).unwrap();
            losses.push(l.item().unwrap());
            let g = l.backward().unwrap();
            GradMap::from_grads(&model, &g)
        };
        let mut map = map;
        assert!(
            map.get("0.bias").is_none(),
            "a frozen parameter has no gradient"
        );
        clip_grad_norm(&mut map, 0.5).unwrap();
        assert!(map.total_norm(2.0).unwrap() <= 0.5 + 1e-4);
        opt.step_with(&mut model, &map).unwrap();
    }
    let now = snapshot(&mut model);
    assert_eq!(now.iter().find(|(n, _)| n == "0.bias").unwrap().1, frozen);
    assert!(opt.core().slot("0.bias").is_none());
    assert!(
        losses[39] < losses[0] / 2.0,
        "{} -> {}",
        losses[0],
        losses[39]
    );
}
