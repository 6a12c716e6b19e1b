//! tapegrad-train, the training loop's machinery: a [`Trainer`] that steps a model over a
//! [`DataLoader`](tapegrad_data::DataLoader) and evaluates it, per-layer gradient statistics, the
//! per-epoch [`History`] written as CSV
//! and JSON, loss and accuracy curves as a PNG, the final [`Report`] (top-1/top-5 error,
//! confusion matrix, per-class accuracy), a progress bar, and exact resumption from a
//! [`Checkpoint`](tapegrad_nn::checkpoint::Checkpoint).
//!
//! ```
//! use std::sync::Arc;
//! use tapegrad_autograd::rng;
//! use tapegrad_data::{synthetic, DataLoader, LoaderOptions};
//! use tapegrad_nn::layers::{Flatten, Linear};
//! use tapegrad_nn::optim::{Adam, AdamConfig};
//! use tapegrad_train::{Schedule, Trainer};
//! use tapegrad_nn::Sequential;
//!
//! let split = synthetic::split(20, 5, 0).unwrap();
//! let train = DataLoader::new(Arc::new(split.train), 50, LoaderOptions::default()).unwrap();
//! let test_opts = LoaderOptions { shuffle: false, ..Default::default() };
//! let test = DataLoader::new(Arc::new(split.test), 50, test_opts).unwrap();
//! let model = Sequential::new().add(Flatten::new(1)).add(Linear::new(784, 10, &mut rng(0)).unwrap());
//! let opt = Adam::new(AdamConfig::default()).unwrap();
//! let mut trainer = Trainer::new(Box::new(model), Box::new(opt), Schedule::None);
//! trainer.train_epoch(&train, None, |_| {}).unwrap();
//! let eval = trainer.evaluate(&test).unwrap();
//! let record = trainer.finish_epoch(Some(&eval), 0.1).unwrap();
//! assert_eq!(record.epoch, 1);
//! assert_eq!(eval.count(), 50);
//! ```

mod epoch_files;
mod evaluation;
mod finite;
mod grad_stats;
mod history;
mod plot;
mod progress;
mod report;
mod resume;
mod trainer;

pub use epoch_files::{
    write_epoch_files, EpochFiles, BEST_FILE, CHECKPOINT_FILE, CURVES_PNG, METRICS_CSV,
    METRICS_JSON,
};
pub use evaluation::{Evaluation, TestTime};
pub use grad_stats::{format_grad_stats, grad_stats, GradStatsEpoch, LayerGradStats};
pub use history::{EpochRecord, History};
pub use plot::{plot_history, PlotText};
pub use progress::{Console, Progress};
pub use report::Report;
pub use resume::{load_training_checkpoint, save_training_checkpoint};
pub use trainer::{EpochTotals, Position, Schedule, StepOutcome, Trainer};
