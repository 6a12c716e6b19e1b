//! A short run on the real Fashion-MNIST (`apt-get install dataset-fashion-mnist`, or
//! `$FASHION_MNIST_DIR`): 2,000 training images for two epochs already classify 1,000 test
//! images far better than the 10% of chance. Ignored by default (it needs the package); the
//! same run on the subset that ships in `assets/` is in `fashion_subset.rs`.

use std::sync::Arc;
use tapegrad::autograd::rng;
use tapegrad::data::{DataLoader, FashionMnist, LoaderOptions};
use tapegrad::models::{LeNet5, LeNetConfig};
use tapegrad::nn::optim::{Adam, AdamConfig};
use tapegrad::train::{Schedule, Trainer};

#[test]
#[ignore = "needs the full Fashion-MNIST: apt-get install dataset-fashion-mnist"]
fn a_short_run_on_fashion_mnist_beats_chance() {
    let split = FashionMnist::open(None).unwrap_or_else(|e| panic!("{e}"));
    let first = |n: usize| (0..n).collect::<Vec<_>>();
    let train = split.train.subset(&first(2000)).unwrap();
    let test = split.test.subset(&first(1000)).unwrap();
    let train = DataLoader::new(Arc::new(train), 32, LoaderOptions::default()).unwrap();
    let test_opts = LoaderOptions {
        shuffle: false,
        ..Default::default()
    };
    let test = DataLoader::new(Arc::new(test), 250, test_opts).unwrap();
    let model = LeNet5::new(LeNetConfig::modern(28, 10), &mut rng(0)).unwrap();
    let opt = Adam::new(AdamConfig {
        lr: 0.002,
        ..Default::default()
    })
    .unwrap();
    let mut t = Trainer::new(Box::new(model), Box::new(opt), Schedule::None);
    let before = t.evaluate(&test).unwrap().accuracy();
    for _ in 0..2 {
        assert!(t.train_epoch(&train, None, |_| {}).unwrap());
        t.finish_epoch(None, 0.0).unwrap();
    }
    let eval = t.evaluate(&test).unwrap();
    assert_eq!(eval.count(), 1000);
    assert!(
        eval.accuracy() > 0.6,
        "accuracy {} (before training {before})",
        eval.accuracy()
    );
    // Top-5 error is never above top-1 error.
    assert!(eval.top5_error().unwrap() <= eval.top1_error());
    assert!(t.history.epochs[1].train_loss < t.history.epochs[0].train_loss);
}
