//! Initialisers: reproducible from a seed, and with the variances their formulas promise
//! (checked on large tensors, where the sample statistics are tight).

use tapegrad_autograd::{rng, Tensor};
use tapegrad_nn::init::{self, FanMode, Init, Nonlinearity};
use tapegrad_nn::layers::Linear;
use tapegrad_nn::Module;

/// Sample mean and standard deviation, in f64.
fn stats(t: &Tensor) -> (f64, f64) {
    let n = t.numel() as f64;
    let mean = t.data().iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = t
        .data()
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

/// Mean within 5 standard errors of 0, std within 1% of `std` (its relative standard error is
/// 1/sqrt(2n) < 0.2% here).
fn assert_centred_with_std(t: &Tensor, std: f64) {
    let (m, s) = stats(t);
    let se = std / (t.numel() as f64).sqrt();
    assert!(m.abs() < 5.0 * se, "mean {m}, standard error {se}");
    assert!((s / std - 1.0).abs() < 0.01, "std {s}, expected {std}");
}

fn assert_within(t: &Tensor, bound: f32) {
    let max = t.data().iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(max <= bound, "max |x| {max} exceeds {bound}");
    // With this many samples the extremes come within 1% of the bound.
    assert!(max > 0.99 * bound, "max |x| {max} far inside {bound}");
}

const CONV: [usize; 4] = [256, 128, 3, 3]; // fan_in 128*9 = 1152, fan_out 256*9 = 2304

#[test]
fn same_seed_same_tensor() {
    let a = init::kaiming_normal(&CONV, FanMode::FanIn, Nonlinearity::Relu, &mut rng(3)).unwrap();
    let b = init::kaiming_normal(&CONV, FanMode::FanIn, Nonlinearity::Relu, &mut rng(3)).unwrap();
    let c = init::kaiming_normal(&CONV, FanMode::FanIn, Nonlinearity::Relu, &mut rng(4)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let l1 = Linear::new(5, 4, &mut rng(9)).unwrap();
    let l2 = Linear::new(5, 4, &mut rng(9)).unwrap();
    assert_eq!(l1.weight.value(), l2.weight.value());
    assert_eq!(
        l1.bias.as_ref().unwrap().value(),
        l2.bias.as_ref().unwrap().value()
    );
}

#[test]
fn kaiming_normal_variance() {
    // std = gain / sqrt(fan): relu gain sqrt(2).
    let g = &mut rng(1);
    let t = init::kaiming_normal(&CONV, FanMode::FanIn, Nonlinearity::Relu, g).unwrap();
    assert_centred_with_std(&t, (2.0f64 / 1152.0).sqrt());
    let t = init::kaiming_normal(&CONV, FanMode::FanOut, Nonlinearity::Relu, g).unwrap();
    assert_centred_with_std(&t, (2.0f64 / 2304.0).sqrt());
    // leaky_relu(0.2): gain^2 = 2 / 1.04.
    let t = init::kaiming_normal(&CONV, FanMode::FanIn, Nonlinearity::LeakyRelu(0.2), g).unwrap();
    assert_centred_with_std(&t, (2.0f64 / 1.04 / 1152.0).sqrt());
}

#[test]
fn kaiming_uniform_bound_and_variance() {
    // bound = gain * sqrt(3 / fan); U(-b, b) has variance b^2 / 3 = gain^2 / fan.
    let t = init::kaiming_uniform(&CONV, FanMode::FanIn, Nonlinearity::Relu, &mut rng(2)).unwrap();
    assert_within(&t, 2f32.sqrt() * (3.0f32 / 1152.0).sqrt());
    assert_centred_with_std(&t, (2.0f64 / 1152.0).sqrt());
    let t =
        init::kaiming_uniform(&CONV, FanMode::FanOut, Nonlinearity::Linear, &mut rng(2)).unwrap();
    assert_within(&t, (3.0f32 / 2304.0).sqrt());
}

#[test]
fn xavier_variance() {
    // [300, 200]: fan_in + fan_out = 500. Uniform bound gain * sqrt(6 / 500); normal std
    // gain * sqrt(2 / 500); both have variance gain^2 * 2 / 500.
    let d = [300, 200];
    let t = init::xavier_uniform(&d, 1.0, &mut rng(5)).unwrap();
    assert_within(&t, (6.0f32 / 500.0).sqrt());
    assert_centred_with_std(&t, (2.0f64 / 500.0).sqrt());
    let tanh = init::gain(Nonlinearity::Tanh);
    let t = init::xavier_normal(&d, tanh, &mut rng(6)).unwrap();
    assert_centred_with_std(&t, 5.0 / 3.0 * (2.0f64 / 500.0).sqrt());
}

#[test]
fn pytorch_default_linear_init() {
    // Weight and bias U(-1/sqrt(in), 1/sqrt(in)): bound 1/sqrt(400) = 0.05, std 0.05/sqrt(3).
    let l = Linear::new(400, 300, &mut rng(7)).unwrap();
    let w = l.weight.value();
    assert_eq!(w.dims(), &[300, 400]);
    assert_within(w, 0.05);
    assert_centred_with_std(w, 0.05 / 3f64.sqrt());
    let b = l.bias.as_ref().unwrap().value();
    assert_eq!(b.dims(), &[300]);
    assert!(b.data().iter().all(|x| x.abs() <= 0.05));
    // A conv-shaped default weight uses fan_in = in * k * k: [64, 3, 11, 11] -> 1/sqrt(363).
    let c = init::default_weight(&[64, 3, 11, 11], &mut rng(8)).unwrap();
    assert_within(&c, 1.0 / 363f32.sqrt());
}

#[test]
fn normal_and_constant() {
    // AlexNet: N(0, 0.01) weights.
    let t = init::normal(&[1000, 300], 0.0, 0.01, &mut rng(10)).unwrap();
    assert_centred_with_std(&t, 0.01);
    let t = init::normal(&[1000, 300], 2.0, 0.5, &mut rng(10)).unwrap();
    let (m, s) = stats(&t);
    assert!((m - 2.0).abs() < 5.0 * 0.5 / (3e5f64).sqrt() && (s / 0.5 - 1.0).abs() < 0.01);
    assert_eq!(init::constant(&[2, 2], 1.0).to_vec(), vec![1.0; 4]);
    assert_eq!(init::zeros(&[3]).to_vec(), vec![0.0; 3]);
    assert_eq!(init::ones(&[1, 2]).to_vec(), vec![1.0; 2]);
}

#[test]
fn bad_arguments_are_errors() {
    let g = &mut rng(0);
    assert!(init::kaiming_normal(&[10], FanMode::FanIn, Nonlinearity::Relu, g).is_err());
    assert!(init::kaiming_normal(&[10, 0], FanMode::FanIn, Nonlinearity::Relu, g).is_err());
    assert!(init::xavier_uniform(&[0, 0], 1.0, g).is_err());
    assert!(init::normal(&[3], 0.0, -1.0, g).is_err());
    assert!(init::uniform(&[3], 1.0, 0.0, g).is_err());
    assert!(Init::Constant(f32::NAN).tensor(&[2], g).is_err());
}

#[test]
fn apply_reinitialises_by_name() {
    let mut fc = Linear::new(30, 20, &mut rng(0)).unwrap();
    init::apply(&mut fc, &mut rng(1), |name, dims| {
        assert!(dims == [20, 30] || dims == [20]);
        match name {
            "bias" => Some(Init::Constant(1.0)),
            _ => None,
        }
    })
    .unwrap();
    assert_eq!(fc.bias.as_ref().unwrap().value().to_vec(), vec![1.0; 20]);
    // A failing initialiser (kaiming on a rank-1 bias) is reported.
    let err = init::apply(&mut fc, &mut rng(1), |_, _| {
        Some(Init::KaimingNormal(FanMode::FanIn, Nonlinearity::Relu))
    });
    assert!(err.is_err());
    assert_eq!(fc.num_parameters(), 20 * 30 + 20);
}
