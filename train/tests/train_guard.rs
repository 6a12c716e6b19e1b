//! A run never saves what a diverged step left: a step that makes a weight infinite stops with
//! its name, a non-finite model is never written, and the end of an epoch writes `best`, then
//! the checkpoint, then the metrics, each atomically, so that a failure at any point keeps what
//! a resumed run needs.

use std::path::Path;
use std::sync::Arc;
use tapegrad_autograd::{rng, Tensor};
use tapegrad_data::{synthetic, DataLoader, LoaderOptions};
use tapegrad_nn::checkpoint::Checkpoint;
use tapegrad_nn::layers::{Flatten, Linear};
use tapegrad_nn::optim::{Sgd, SgdConfig};
use tapegrad_nn::{Entry, Module, Sequential};
use tapegrad_train::{
    save_training_checkpoint, write_epoch_files, Schedule, Trainer, BEST_FILE, CHECKPOINT_FILE,
    CURVES_PNG, METRICS_CSV, METRICS_JSON,
};

fn trainer(lr: f32) -> Trainer {
    let model = Sequential::new()
        .add(Flatten::new(1))
        .add(Linear::new(4, 3, &mut rng(1)).unwrap());
    let opt = Sgd::new(SgdConfig {
        lr,
        ..Default::default()
    })
    .unwrap();
    Trainer::new(Box::new(model), Box::new(opt), Schedule::None)
}

/// Sets every value of parameter `name` to `v`.
fn poison(t: &mut Trainer, name: &str, v: f32) {
    t.model.visit_mut("", &mut |n, e| {
        if let Entry::Param(p) = e {
            if n == name {
                let dims = p.value().dims().to_vec();
                p.set(Tensor::full(dims, v)).unwrap();
            }
        }
    });
}

#[test]
fn a_step_that_makes_a_weight_infinite_stops_with_its_name() {
    // Inputs of 1e10 give weight gradients near 1e10 (bias gradients below 1); times a learning
    // rate of 1e30 the weight's update is 1e40, past f32's 3.4e38: infinite. The loss before the
    // step is finite, so only the check after the update can see it.
    let mut t = trainer(1e30);
    let x = Tensor::full([2, 1, 2, 2], 1e10);
    let err = t.train_step(&x, &[0, 2]).unwrap_err().to_string();
    for word in [
        "after step 1",
        "parameter 1.weight",
        "inf",
        "lower learning rate",
    ] {
        assert!(err.contains(word), "expected {word:?} in: {err}");
    }
    assert_eq!(t.position.step, 0, "a diverged step is not counted");
    // A sane step goes through.
    let mut t = trainer(0.1);
    assert!(t
        .train_step(&Tensor::full([2, 1, 2, 2], 0.5), &[0, 2])
        .is_ok());
}

#[test]
fn a_non_finite_model_is_never_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let mut t = trainer(0.1);
    save_training_checkpoint(&path, &mut t, &[]).unwrap();
    let good = std::fs::read(&path).unwrap();
    poison(&mut t, "1.bias", f32::NAN);
    let err = save_training_checkpoint(&path, &mut t, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.bias") && err.contains("NaN"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the saved file changed"
    );
    let fresh = dir.path().join("never.safetensors");
    assert!(save_training_checkpoint(&fresh, &mut t, &[]).is_err());
    assert!(!fresh.exists());
}

fn loaders() -> (DataLoader, DataLoader) {
    let split = synthetic::split(2, 1, 0).unwrap();
    // 28x28 images, so a 784-input head.
    let opts = LoaderOptions::default();
    let train = DataLoader::new(Arc::new(split.train), 10, opts.clone()).unwrap();
    let test = DataLoader::new(Arc::new(split.test), 10, opts).unwrap();
    (train, test)
}

fn mnist_trainer() -> Trainer {
    let model = Sequential::new()
        .add(Flatten::new(1))
        .add(Linear::new(784, 10, &mut rng(2)).unwrap());
    let opt = Sgd::new(SgdConfig::default()).unwrap();
    Trainer::new(Box::new(model), Box::new(opt), Schedule::None)
}

/// One epoch of training and its evaluation, recorded in the history with `val_accuracy`.
fn epoch(t: &mut Trainer, (train, test): &(DataLoader, DataLoader), val_accuracy: f32) {
    t.train_epoch(train, None, |_| {}).unwrap();
    let eval = t.evaluate(test).unwrap();
    t.finish_epoch(Some(&eval), 0.0).unwrap();
    t.history.epochs.last_mut().unwrap().val_accuracy = Some(val_accuracy);
}

fn epoch_of(path: &Path) -> usize {
    let ckpt = Checkpoint::load(path).unwrap();
    let mut t = mnist_trainer();
    t.restore(&ckpt).unwrap();
    t.position.epoch
}

fn no_temporary_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "left behind: {name}");
    }
}

#[test]
fn an_epoch_writes_best_then_the_checkpoint_then_the_metrics() {
    let data = loaders();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut t = mnist_trainer();
    let meta = [("run".to_string(), "test".to_string())];

    // Epoch 1 is the best so far: every file.
    epoch(&mut t, &data, 0.5);
    let files = write_epoch_files(d, &mut t, &meta, "t").unwrap();
    assert!(files.best);
    for f in [
        BEST_FILE,
        CHECKPOINT_FILE,
        METRICS_CSV,
        METRICS_JSON,
        CURVES_PNG,
    ] {
        assert!(d.join(f).is_file(), "{f}");
    }
    assert_eq!(epoch_of(&d.join(CHECKPOINT_FILE)), 1);
    assert_eq!(
        Checkpoint::load(d.join(BEST_FILE)).unwrap().metadata["run"],
        "test"
    );
    no_temporary_files(d);

    // Epoch 2 is worse: best stays epoch 1's, the checkpoint moves on.
    epoch(&mut t, &data, 0.4);
    assert!(!write_epoch_files(d, &mut t, &meta, "t").unwrap().best);
    assert_eq!(epoch_of(&d.join(BEST_FILE)), 1);
    assert_eq!(epoch_of(&d.join(CHECKPOINT_FILE)), 2);
    assert_eq!(
        std::fs::read_to_string(d.join(METRICS_CSV))
            .unwrap()
            .lines()
            .count(),
        3
    );

    // Epoch 3 cannot write its metrics (a folder is in the way): an error naming the file,
    // after the checkpoint of epoch 3 is on disk.
    std::fs::remove_file(d.join(METRICS_CSV)).unwrap();
    std::fs::create_dir(d.join(METRICS_CSV)).unwrap();
    epoch(&mut t, &data, 0.3);
    let err = write_epoch_files(d, &mut t, &meta, "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(METRICS_CSV) && err.contains("checkpoint was saved"),
        "{err}"
    );
    assert_eq!(epoch_of(&d.join(CHECKPOINT_FILE)), 3);

    // Epoch 4 is the best but cannot write `best`: the checkpoint stays at epoch 3, so a resumed
    // run repeats epoch 4 and writes `best` then.
    std::fs::remove_file(d.join(BEST_FILE)).unwrap();
    std::fs::create_dir(d.join(BEST_FILE)).unwrap();
    epoch(&mut t, &data, 0.9);
    assert!(write_epoch_files(d, &mut t, &meta, "t").is_err());
    assert_eq!(epoch_of(&d.join(CHECKPOINT_FILE)), 3);

    // A model holding a NaN writes nothing at all.
    std::fs::remove_dir(d.join(BEST_FILE)).unwrap();
    std::fs::remove_dir(d.join(METRICS_CSV)).unwrap();
    let before: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let checkpoint = std::fs::read(d.join(CHECKPOINT_FILE)).unwrap();
    poison(&mut t, "1.weight", f32::INFINITY);
    let err = write_epoch_files(d, &mut t, &meta, "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("parameter 1.weight holds inf"), "{err}");
    let after: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after);
    assert_eq!(std::fs::read(d.join(CHECKPOINT_FILE)).unwrap(), checkpoint);
    no_temporary_files(d);
}
