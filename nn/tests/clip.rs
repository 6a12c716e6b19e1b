//! Gradient clipping and the GradMap path into the optimiser.

use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_nn::layers::Linear;
use tapegrad_nn::optim::{
    clip_grad_norm, clip_grad_norm_with, clip_grad_value, GradMap, Optimizer, Sgd, SgdConfig,
};
use tapegrad_nn::Module;

/// Gradients [3, 4] and [12]: total 2-norm sqrt(9 + 16 + 144) = 13.
fn sample() -> GradMap {
    let mut g = GradMap::new();
    g.insert("a.weight", Tensor::from_slice(&[3.0, 4.0]));
    g.insert("b.bias", Tensor::from_slice(&[-12.0]));
    g
}

#[test]
fn clip_norm_rescales_all_gradients_together() {
    let mut g = sample();
    let n = clip_grad_norm(&mut g, 6.5).unwrap();
    assert_eq!(n, 13.0);
    // coef = 6.5 / (13 + 1e-6) = 0.5 (to 1e-7).
    let coef = 6.5f64 / (13.0 + 1e-6);
    let a = g.get("a.weight").unwrap().to_vec();
    assert!((a[0] as f64 - 3.0 * coef).abs() < 1e-6 && (a[1] as f64 - 4.0 * coef).abs() < 1e-6);
    assert!((g.get("b.bias").unwrap().to_vec()[0] as f64 + 12.0 * coef).abs() < 1e-6);
    assert!((g.total_norm(2.0).unwrap() - 6.5).abs() < 1e-5);
}

#[test]
fn clip_norm_leaves_small_gradients_alone() {
    let mut g = sample();
    assert_eq!(clip_grad_norm(&mut g, 100.0).unwrap(), 13.0);
    assert_eq!(g, sample());
}

#[test]
fn other_norms() {
    // Infinity norm: the largest magnitude, 12; clip to 3 scales by 3 / (12 + 1e-6).
    let mut g = sample();
    assert_eq!(
        clip_grad_norm_with(&mut g, 3.0, f32::INFINITY).unwrap(),
        12.0
    );
    assert!((g.get("b.bias").unwrap().to_vec()[0] + 3.0).abs() < 1e-5);
    // 1-norm: 3 + 4 + 12 = 19.
    assert_eq!(sample().total_norm(1.0).unwrap(), 19.0);
    assert!(sample().total_norm(0.0).is_err());
    assert!(clip_grad_norm(&mut sample(), -1.0).is_err());
    assert_eq!(GradMap::new().total_norm(2.0).unwrap(), 0.0);
}

#[test]
fn clip_value_clamps_each_element() {
    let mut g = sample();
    clip_grad_value(&mut g, 3.5).unwrap();
    assert_eq!(g.get("a.weight").unwrap().to_vec(), vec![3.0, 3.5]);
    assert_eq!(g.get("b.bias").unwrap().to_vec(), vec![-3.5]);
    assert!(clip_grad_value(&mut g, -1.0).is_err());
}

#[test]
fn accumulate_and_scale_average_micro_batches() {
    let mut acc = sample();
    acc.accumulate(&sample()).unwrap();
    acc.scale(0.5);
    assert_eq!(acc, sample());
    let mut extra = GradMap::new();
    extra.insert("c", Tensor::ones([2]));
    acc.accumulate(&extra).unwrap();
    assert_eq!(acc.len(), 3);
    let mut wrong = GradMap::new();
    wrong.insert("c", Tensor::ones([3]));
    assert!(acc.accumulate(&wrong).is_err());
}

#[test]
fn the_optimiser_uses_the_clipped_gradients() {
    // y = sum(x W^T + b) over a batch of 4 ones: dL/db = 4 per output, dL/dW = 4 per element.
    let mut model = Linear::new(3, 2, &mut rng(0)).unwrap();
    let before_w = model.weight.value().clone();
    let before_b = model.bias.as_ref().unwrap().value().clone();
    let tape = Tape::new();
    let y = model.forward(tape.input(Tensor::ones([4, 3]))).unwrap();
    let grads = y.sum(&[], false).unwrap().backward().unwrap();
    let mut map = GradMap::from_grads(&model, &grads);
    assert_eq!(map.len(), 2);
    assert_eq!(map.get("bias").unwrap().to_vec(), vec![4.0, 4.0]);
    // 8 elements of 4: norm sqrt(8 * 16) = 8 * sqrt(2); clip every value to 1 instead.
    clip_grad_value(&mut map, 1.0).unwrap();
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.1,
        ..Default::default()
    })
    .unwrap();
    opt.step_with(&mut model, &map).unwrap();
    // Each parameter moved by exactly -lr * 1.
    let dw = model.weight.value().sub(&before_w).unwrap();
    let db = model.bias.as_ref().unwrap().value().sub(&before_b).unwrap();
    assert!(dw
        .data()
        .iter()
        .chain(db.data())
        .all(|&d| (d + 0.1).abs() < 1e-6));
}

#[test]
fn a_wrong_gradient_shape_changes_nothing() {
    let mut model = Linear::new(2, 2, &mut rng(0)).unwrap();
    let before = model.weight.value().clone();
    let mut map = GradMap::new();
    map.insert("weight", Tensor::ones([2, 2]));
    map.insert("bias", Tensor::ones([3]));
    let mut opt = Sgd::new(SgdConfig::default()).unwrap();
    let err = opt.step_with(&mut model, &map).unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
    // The weight (visited first) was not updated either.
    assert_eq!(model.weight.value(), &before);
}
