//! Training end to end on the built-in synthetic set: the loss falls, accuracy beats chance by
//! far, and the history, curves, report and gradient statistics describe the run.

use std::sync::Arc;
use tapegrad::autograd::rng;
use tapegrad::data::{synthetic, DataLoader, LoaderOptions};
use tapegrad::models::{LeNet5, LeNetConfig};
use tapegrad::nn::optim::{Adam, AdamConfig, CosineAnnealingLR};
use tapegrad::train::{plot_history, History, Report, Schedule, Trainer};

#[test]
fn lenet_learns_the_synthetic_shapes() {
    let split = synthetic::split(300, 30, 1).unwrap();
    let train = DataLoader::new(
        Arc::new(split.train),
        32,
        LoaderOptions {
            seed: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let test_opts = LoaderOptions {
        shuffle: false,
        ..Default::default()
    };
    let test = DataLoader::new(Arc::new(split.test), 100, test_opts).unwrap();
    let model = LeNet5::new(LeNetConfig::modern(28, 10), &mut rng(3)).unwrap();
    let opt = Adam::new(AdamConfig {
        lr: 0.003,
        ..Default::default()
    })
    .unwrap();
    let sched = CosineAnnealingLR::new(&opt, 3, 0.0).unwrap();
    let mut t = Trainer::new(
        Box::new(model),
        Box::new(opt),
        Schedule::Epoch(Box::new(sched)),
    );
    t.collect_grad_stats(true);

    let mut evals = Vec::new();
    for _ in 0..3 {
        let mut steps = 0;
        assert!(t.train_epoch(&train, None, |_| steps += 1).unwrap());
        // 3000 images in batches of 32: 93 full batches and one of 24.
        assert_eq!(steps, 94);
        let stats = t.grad_stats.as_ref().unwrap().summary();
        // conv1, conv2, conv3, fc1, fc2, each with a finite, non-zero gradient norm.
        assert_eq!(stats.len(), 5);
        assert!(
            stats.iter().all(|s| s.norm.is_finite() && s.norm > 0.0),
            "{stats:?}"
        );
        let eval = t.evaluate(&test).unwrap();
        t.finish_epoch(Some(&eval), 1.0).unwrap();
        evals.push(eval);
    }
    let h = &t.history.epochs;
    assert_eq!(h.len(), 3);
    // The training loss falls epoch after epoch, and ten classes give 10% by chance.
    assert!(h[2].train_loss < h[0].train_loss, "{h:?}");
    let last = evals.last().unwrap();
    assert_eq!(last.count(), 300);
    assert!(last.accuracy() > 0.7, "test accuracy {}", last.accuracy());
    // The cosine schedule: lr 0.003 for epoch 1, 0.003 (1 + cos(pi/3)) / 2 = 0.00225 for 2.
    assert!((h[1].lr - 0.00225).abs() < 1e-7, "{}", h[1].lr);

    // The report agrees with the evaluation.
    let text = Report::new("synthetic", last).to_string();
    let err = format!("{:6.2}%", 100.0 * last.top1_error());
    assert!(text.contains(&format!("top-1 error   {err}")), "{text}");
    assert!(
        text.contains("checkerboard") && text.contains("confusion matrix"),
        "{text}"
    );
    let confusion = last.metrics.confusion();
    assert_eq!(confusion.total(), 300);
    assert!((confusion.accuracy() - last.accuracy()).abs() < 1e-6);

    // History files and curves.
    let dir = tempfile::tempdir().unwrap();
    t.history.write_csv(&dir.path().join("m.csv")).unwrap();
    t.history.write_json(&dir.path().join("m.json")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("m.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    let json = std::fs::read_to_string(dir.path().join("m.json")).unwrap();
    assert_eq!(History::from_json(&json).unwrap(), t.history);
    plot_history(&t.history, &dir.path().join("c.png"), "synthetic").unwrap();
    let png = image::open(dir.path().join("c.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1100, 460));
}
