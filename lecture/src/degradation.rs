//! The degradation experiment: plain and residual networks of two depths trained the same way.
//! In the ResNet paper, plain-34 is worse than plain-18 (top-1 error 28.54 vs 27.94) while
//! ResNet-34 beats ResNet-18 (25.03 vs 27.88): depth alone makes a plain network harder to
//! optimise, and the shortcuts take that difficulty away.
//!
//! The networks come from the caller (`build(depth, residual)`), so this module needs no model
//! zoo; it trains each one with SGD on the same data, in the same order, and records curves.

use std::sync::Arc;
use tapegrad_autograd::{Error, Result};
use tapegrad_data::{synthetic, DataLoader, Dataset, FashionMnist, LoaderOptions};
use tapegrad_nn::optim::{CosineAnnealingLR, LrScheduler, Sgd, SgdConfig};
use tapegrad_nn::Module;
use tapegrad_train::{Schedule, Trainer};

/// How the networks are trained.
#[derive(Clone, Debug, PartialEq)]
pub struct DegradationOptions {
    /// The two (or more) depths to compare, each built plain and residual.
    pub depths: Vec<usize>,
    /// Which kinds to train, in this order: `true` residual, `false` plain.
    pub kinds: Vec<bool>,
    pub epochs: usize,
    /// Use only this many training images (all when `None`).
    pub limit_train: Option<usize>,
    /// Use only this many test images (all when `None`).
    pub limit_test: Option<usize>,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// Anneal the learning rate along half a cosine from `lr` to 0 over the whole run, stepped
    /// after every batch (else constant). Annealed runs end near a minimum, so their final
    /// errors compare what each network can fit rather than where the noise of a large step
    /// left it.
    pub cosine: bool,
    /// Points per epoch on the training curve (each the mean over its share of the batches).
    pub points_per_epoch: usize,
    pub seed: u64,
}

impl Default for DegradationOptions {
    fn default() -> Self {
        DegradationOptions {
            depths: vec![18, 34],
            kinds: vec![true, false],
            epochs: 4,
            limit_train: None,
            limit_test: None,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
            cosine: true,
            points_per_epoch: 5,
            seed: 0,
        }
    }
}

/// One point of a training curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Fractional epochs of training done.
    pub epoch: f32,
    /// Mean loss and top-1 error over the batches since the previous point.
    pub train_loss: f32,
    pub train_error: f32,
}

/// The record of one network's training.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub depth: usize,
    pub residual: bool,
    pub params: usize,
    pub points: Vec<CurvePoint>,
    /// Top-1 test error after each epoch.
    pub test_error: Vec<f32>,
    pub seconds: f32,
}

impl Curve {
    /// `plain-18`, `resnet-34`, ...
    pub fn name(&self) -> String {
        let kind = if self.residual { "resnet" } else { "plain" };
        format!("{kind}-{}", self.depth)
    }

    /// Mean training error over the last epoch's points.
    pub fn final_train_error(&self) -> f32 {
        last_epoch_mean(&self.points, |p| p.train_error)
    }

    /// Top-1 test error after the last epoch (NaN before the first).
    pub fn final_test_error(&self) -> f32 {
        self.test_error.last().copied().unwrap_or(f32::NAN)
    }

    /// Mean training loss over the last epoch's points.
    pub fn final_train_loss(&self) -> f32 {
        last_epoch_mean(&self.points, |p| p.train_loss)
    }

    /// Whether every recorded number is finite.
    pub fn is_finite(&self) -> bool {
        self.points
            .iter()
            .all(|p| p.train_loss.is_finite() && p.train_error.is_finite())
            && self.test_error.iter().all(|e| e.is_finite())
    }
}

fn last_epoch_mean(points: &[CurvePoint], f: impl Fn(&CurvePoint) -> f32) -> f32 {
    let Some(last) = points.last() else {
        return f32::NAN;
    };
    let from = last.epoch.ceil() - 1.0;
    let tail: Vec<f32> = points.iter().filter(|p| p.epoch > from).map(f).collect();
    tail.iter().sum::<f32>() / tail.len() as f32
}

/// Fashion-MNIST if installed (see [`FashionMnist::find`]), else the built-in synthetic shapes;
/// cut to the limits of `opts`. Returns the name of the data too.
pub fn load_data(opts: &DegradationOptions) -> Result<(Dataset, Dataset, &'static str)> {
    let (split, name) = match FashionMnist::open(None) {
        Ok(s) => (s, "Fashion-MNIST"),
        Err(_) => {
            let per_class = |n: Option<usize>, d: usize| n.map_or(d, |n| n.div_ceil(10).max(1));
            (
                synthetic::split(
                    per_class(opts.limit_train, 1000),
                    per_class(opts.limit_test, 200),
                    opts.seed,
                )?,
                "synthetic shapes",
            )
        }
    };
    let cut = |d: Dataset, n: Option<usize>| match n {
        Some(n) if n < d.len() => d.subset(&(0..n).collect::<Vec<_>>()),
        _ => Ok(d),
    };
    Ok((
        cut(split.train, opts.limit_train)?,
        cut(split.test, opts.limit_test)?,
        name,
    ))
}

/// Trains `model` on `train` with the library's [`Trainer`] and records its curve; `on_point`
/// sees each point as it comes. The cosine schedule, when on, is stepped after every batch
/// (the trainer's own schedules step per epoch).
pub fn train_curve(
    model: Box<dyn Module>,
    (depth, residual): (usize, bool),
    train: &Arc<Dataset>,
    test: &Dataset,
    opts: &DegradationOptions,
    on_point: &mut dyn FnMut(&Curve),
) -> Result<Curve> {
    let start = std::time::Instant::now();
    let loader_opts = LoaderOptions {
        seed: opts.seed,
        ..LoaderOptions::default()
    };
    let loader = DataLoader::new(train.clone(), opts.batch_size, loader_opts)?;
    let test_loader = evaluation_loader(test, opts.batch_size)?;
    let sgd = Sgd::new(SgdConfig {
        lr: opts.lr,
        momentum: opts.momentum,
        weight_decay: opts.weight_decay,
        ..SgdConfig::default()
    })?;
    let batches = loader.len();
    let mut schedule = opts
        .cosine
        .then(|| CosineAnnealingLR::new(&sgd, (opts.epochs * batches).max(1), 0.0))
        .transpose()?;
    let mut curve = Curve {
        depth,
        residual,
        params: model.num_parameters(),
        points: Vec::new(),
        test_error: Vec::new(),
        seconds: 0.0,
    };
    let mut trainer = Trainer::new(model, Box::new(sgd), Schedule::None);
    let per_point = batches.div_ceil(opts.points_per_epoch.max(1)).max(1);
    for epoch in 0..opts.epochs {
        let (mut loss_sum, mut wrong, mut n) = (0f64, 0usize, 0usize);
        for (b, batch) in loader.epoch(epoch as u64).enumerate() {
            let batch = batch?;
            let step = trainer.train_step(&batch.images, &batch.labels)?;
            if let Some(s) = schedule.as_mut() {
                s.step(trainer.optimizer.as_mut())?;
            }
            loss_sum += step.loss as f64 * step.batch_size as f64;
            wrong += step.batch_size - step.correct;
            n += step.batch_size;
            if (b + 1) % per_point == 0 || b + 1 == batches {
                curve.points.push(CurvePoint {
                    epoch: epoch as f32 + (b + 1) as f32 / batches as f32,
                    train_loss: (loss_sum / n as f64) as f32,
                    train_error: (wrong as f64 / n as f64) as f32,
                });
                (loss_sum, wrong, n) = (0.0, 0, 0);
                curve.seconds = start.elapsed().as_secs_f32();
                on_point(&curve);
            }
        }
        curve
            .test_error
            .push(trainer.evaluate(&test_loader)?.top1_error());
        curve.seconds = start.elapsed().as_secs_f32();
        on_point(&curve);
    }
    Ok(curve)
}

/// Every image of `data` once, in order.
fn evaluation_loader(data: &Dataset, batch_size: usize) -> Result<DataLoader> {
    let opts = LoaderOptions {
        shuffle: false,
        ..LoaderOptions::default()
    };
    DataLoader::new(Arc::new(data.clone()), batch_size, opts)
}

/// Trains every depth of `opts.depths` for each kind of `opts.kinds` (residual first by
/// default), built by `build(depth, residual)`.
pub fn run(
    build: &dyn Fn(usize, bool) -> Result<Box<dyn Module>>,
    train: Dataset,
    test: &Dataset,
    opts: &DegradationOptions,
    on_point: &mut dyn FnMut(&Curve),
) -> Result<Vec<Curve>> {
    if opts.depths.is_empty() || opts.kinds.is_empty() || opts.batch_size == 0 {
        return Err(Error::invalid(
            "degradation::run",
            "needs at least one depth, one kind of network and a positive batch size",
        ));
    }
    let train = Arc::new(train);
    let mut curves = Vec::new();
    for &residual in &opts.kinds {
        for &depth in &opts.depths {
            curves.push(train_curve(
                build(depth, residual)?,
                (depth, residual),
                &train,
                test,
                opts,
                on_point,
            )?);
        }
    }
    Ok(curves)
}
