//! Test-time flips: the evaluation scores each image by the mean of its logits and its mirror
//! image's logits, and reports the images alone as well.

use std::sync::Arc;
use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_data::{mirror, synthetic, DataLoader, LoaderOptions};
use tapegrad_nn::layers::{Flatten, Linear};
use tapegrad_nn::loss::cross_entropy;
use tapegrad_nn::optim::{Sgd, SgdConfig};
use tapegrad_nn::{Module, Sequential};
use tapegrad_train::{Schedule, TestTime, Trainer};

/// A linear classifier of 28x28 images: nothing makes it treat an image and its mirror alike.
fn model() -> Sequential {
    Sequential::new()
        .add(Flatten::new(1))
        .add(Linear::new(28 * 28, 10, &mut rng(4)).unwrap())
}

#[test]
fn flip_evaluation_averages_each_image_with_its_mirror() {
    let data = Arc::new(synthetic::shapes(10, 2).unwrap());
    let opts = LoaderOptions {
        shuffle: false,
        ..Default::default()
    };
    let loader = DataLoader::new(data.clone(), 32, opts).unwrap();
    let sgd = Sgd::new(SgdConfig::default()).unwrap();
    let mut t = Trainer::new(Box::new(model()), Box::new(sgd), Schedule::None);
    let plain = t.evaluate(&loader).unwrap();
    assert!(plain.single_view.is_none());
    t.test_time = TestTime::Flip;
    let flip = t.evaluate(&loader).unwrap();
    // The images alone are the plain evaluation.
    assert_eq!(flip.single_view_accuracy(), Some(plain.accuracy()));
    let single = flip.single_view.as_ref().unwrap();
    assert_eq!(single.mean_loss(), plain.metrics.mean_loss());
    // By hand, all images in one batch: the mean of the two logits.
    let n = data.len();
    let images = Tensor::from_vec(data.pixels().to_vec(), [n, 1, 28, 28]).unwrap();
    let mut m = model();
    let tape = Tape::inference();
    let a = m.forward(tape.input(images.clone())).unwrap();
    let b = m.forward(tape.input(mirror(&images).unwrap())).unwrap();
    let scores = a.add(b).unwrap().mul_scalar(0.5);
    let loss = cross_entropy(scores, data.labels())
        .unwrap()
        .item()
        .unwrap();
    let correct = scores
        .value()
        .data()
        .chunks(10)
        .zip(data.labels())
        .filter(|(row, &y)| (0..10).all(|k| row[k] <= row[y]))
        .count();
    assert_eq!(flip.count(), n as u64);
    assert!(
        (flip.loss() - loss).abs() < 1e-5,
        "{} vs {loss}",
        flip.loss()
    );
    assert!((flip.accuracy() - correct as f32 / n as f32).abs() < 1e-6);
    assert!(
        (flip.loss() - plain.loss()).abs() > 1e-3,
        "the mirror images changed the scores"
    );
}
