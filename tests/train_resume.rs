//! A run interrupted half-way, saved to a checkpoint file and resumed in a freshly built
//! trainer takes exactly the steps of an uninterrupted run: the same losses bit for bit, the
//! same final weights, optimiser state, schedule and history. The network has dropout, so the
//! masks drawn after the resume must be the uninterrupted run's too.

use std::sync::Arc;
use tapegrad::autograd::rng;
use tapegrad::data::{synthetic, DataLoader, LoaderOptions, RandomCrop};
use tapegrad::nn::checkpoint::state_dict;
use tapegrad::nn::layers::{BatchNorm2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d, ReLU};
use tapegrad::nn::optim::{AdamConfig, AdamW, StepLR};
use tapegrad::nn::Sequential;
use tapegrad::train::{load_training_checkpoint, save_training_checkpoint, Schedule, Trainer};

/// 200 synthetic images in batches of 20: 10 steps per epoch.
fn loader() -> DataLoader {
    let data = synthetic::shapes(20, 3).unwrap();
    let opts = LoaderOptions {
        seed: 11,
        // Random crops: each sample's augmentation must repeat after the resume too.
        transform: Some(Arc::new(RandomCrop::new(28, 2, 0.0))),
        ..Default::default()
    };
    DataLoader::new(Arc::new(data), 20, opts).unwrap()
}

/// A small network with batch norm, so that running statistics are part of the state, and
/// dropout, so that a generator is.
fn trainer() -> Trainer {
    let g = &mut rng(5);
    let model = Sequential::new()
        .add(
            Conv2dConfig::new(1, 4, 3)
                .padding(1)
                .bias(false)
                .init(g)
                .unwrap(),
        )
        .add(BatchNorm2d::new(4).unwrap())
        .add(ReLU)
        .add(MaxPool2d::new(4, 4))
        .add(Flatten::new(1))
        .add(Dropout::new(0.3, 17).unwrap())
        .add(Linear::new(4 * 7 * 7, 10, g).unwrap());
    let opt = AdamW::new(AdamConfig {
        lr: 0.01,
        ..AdamConfig::adamw()
    })
    .unwrap();
    // The rate drops after every epoch, so a resumed schedule that lost count would show.
    let sched = StepLR::new(&opt, 1, 0.5).unwrap();
    let mut t = Trainer::new(
        Box::new(model),
        Box::new(opt),
        Schedule::Epoch(Box::new(sched)),
    );
    t.loss = t.loss.label_smoothing(0.1);
    t
}

/// Trains until `stop` optimiser steps in all, ending epochs as they complete; the losses.
fn train_until(t: &mut Trainer, data: &DataLoader, stop: u64) -> Vec<f32> {
    let mut losses = Vec::new();
    while t.position.step < stop {
        let done = t
            .train_epoch(data, Some(stop), |s| losses.push(s.loss))
            .unwrap();
        if done {
            t.finish_epoch(None, 0.0).unwrap();
        }
    }
    losses
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    let data = loader();
    // 26 steps: two full epochs and 6 batches of the third; the interruption at step 13 falls
    // in the middle of the second epoch.
    let mut whole = trainer();
    let expected = train_until(&mut whole, &data, 26);
    assert_eq!(expected.len(), 26);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.safetensors");
    let mut first = trainer();
    let mut losses = train_until(&mut first, &data, 13);
    assert_eq!((first.position.epoch, first.position.batch), (1, 3));
    save_training_checkpoint(&path, &mut first, &[("note".into(), "half".into())]).unwrap();
    drop(first);

    let mut second = trainer();
    let ckpt = load_training_checkpoint(&path, &mut second).unwrap();
    assert_eq!(ckpt.metadata["note"], "half");
    assert_eq!(second.position.step, 13);
    losses.extend(train_until(&mut second, &data, 26));

    // Bit for bit: the same batches, augmentations, weights and optimiser moments.
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&losses), bits(&expected));
    let (a, b) = (
        state_dict(whole.model.as_mut()),
        state_dict(second.model.as_mut()),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(bits(ta.data()), bits(tb.data()), "{na}");
    }
    assert_eq!(whole.optimizer.state_dict(), second.optimizer.state_dict());
    // Two epochs ended: lr 0.01 * 0.5^2.
    assert!((second.optimizer.lr() - 0.0025).abs() < 1e-9);
    assert_eq!(whole.position, second.position);
    assert_eq!(whole.history.epochs.len(), 2);
    for (x, y) in whole.history.epochs.iter().zip(&second.history.epochs) {
        assert_eq!(
            (x.epoch, x.lr, x.train_loss, x.train_accuracy),
            (y.epoch, y.lr, y.train_loss, y.train_accuracy)
        );
    }
}

#[test]
fn a_checkpoint_of_another_network_is_refused() {
    let data = loader();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.safetensors");
    let mut t = trainer();
    train_until(&mut t, &data, 2);
    save_training_checkpoint(&path, &mut t, &[]).unwrap();

    let g = &mut rng(0);
    let other = Sequential::new()
        .add(Flatten::new(1))
        .add(Linear::new(784, 10, g).unwrap());
    let opt = AdamW::new(AdamConfig::adamw()).unwrap();
    let mut wrong = Trainer::new(Box::new(other), Box::new(opt), Schedule::None);
    let err = load_training_checkpoint(&path, &mut wrong)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.weight") || err.contains("missing"), "{err}");
    assert_eq!(wrong.position.step, 0);
}
