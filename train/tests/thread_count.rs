//! A training run continues bit for bit on a machine with another number of cores: training
//! steps of a small CNN, and the colour statistics of a dataset, give the same bits inside rayon
//! pools of 1, 2, 3 and 7 threads (3 and 7 catch splits keyed on the count that 1 and 2 would
//! miss).

use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_data::{rgb_covariance, Dataset};
use tapegrad_nn::layers::{BatchNorm2d, Conv2dConfig, Flatten, Linear, MaxPool2d, ReLU};
use tapegrad_nn::loss::VarLosses;
use tapegrad_nn::optim::{clip_grad_norm, GradMap, Optimizer, Sgd, SgdConfig};
use tapegrad_nn::{Entry, Module, Sequential};

/// `f` run inside a pool of `threads` threads.
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Every parameter and buffer of `model`, by name, as bits.
fn state_bits(model: &mut dyn Module) -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();
    model.visit_mut("", &mut |name, e| {
        let t: &Tensor = match e {
            Entry::Param(p) => p.value(),
            Entry::Buffer(b) => b,
            Entry::Counter(c) => {
                out.push((name.to_string(), vec![*c as u32, (*c >> 32) as u32]));
                return;
            }
            Entry::Rng(_) => return,
        };
        out.push((
            name.to_string(),
            t.data().iter().map(|v| v.to_bits()).collect(),
        ));
    });
    out
}

/// Three training steps of conv -> batch norm -> relu -> max pool -> linear, cross-entropy, the
/// gradients clipped, SGD with momentum and weight decay; returns the losses and the final state.
fn train(images: &Tensor, labels: &[usize]) -> (Vec<u32>, Vec<(String, Vec<u32>)>) {
    let mut g = rng(7);
    // The conv weight gradient sums 16 products of [8, 256] x [256, 27]: over the size at which
    // the batch is split.
    let mut model = Sequential::new()
        .add(Conv2dConfig::new(3, 8, 3).padding(1).init(&mut g).unwrap())
        .add(BatchNorm2d::new(8).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(2, 2))
        .add(Flatten::new(1))
        .add(Linear::new(8 * 8 * 8, 10, &mut g).unwrap());
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
        ..Default::default()
    })
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let mut grads = {
            let tape = Tape::new();
            let loss = model
                .forward(tape.input(images.clone()))
                .unwrap()
                .cross_entropy(labels)
                .unwrap();
            losses.push(loss.value().item().unwrap().to_bits());
            GradMap::from_grads(&model, &loss.backward().unwrap())
        };
        clip_grad_norm(&mut grads, 5.0).unwrap();
        opt.step_with(&mut model, &grads).unwrap();
    }
    (losses, state_bits(&mut model))
}

#[test]
fn training_steps_give_the_same_bits_on_any_number_of_threads() {
    let images = Tensor::randn([16, 3, 16, 16], &mut rng(1));
    let labels: Vec<usize> = (0..16).map(|i| i % 10).collect();
    let (want_losses, want) = on_threads(1, || train(&images, &labels));
    for threads in [2, 3, 7] {
        let (losses, got) = on_threads(threads, || train(&images, &labels));
        assert_eq!(losses, want_losses, "losses on {threads} threads");
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert!(g == w, "{name} on {threads} threads differs from 1 thread");
        }
    }
}

#[test]
fn colour_statistics_give_the_same_bits_on_any_number_of_threads() {
    // 200 RGB images of 8 x 8 with values spread over [0, 1).
    let n = 200;
    let pixels = Tensor::rand([n * 3 * 64], 0.0, 1.0, &mut rng(2)).to_vec();
    let data = Dataset::new(pixels, [3, 8, 8], vec![0; n], vec!["a".into()]).unwrap();
    let bits = |cov: [[f64; 3]; 3]| cov.map(|row| row.map(f64::to_bits));
    let want = bits(on_threads(1, || rgb_covariance(&data).unwrap()));
    for threads in [2, 3, 7] {
        let got = bits(on_threads(threads, || rgb_covariance(&data).unwrap()));
        assert_eq!(got, want, "covariance on {threads} threads");
    }
}
