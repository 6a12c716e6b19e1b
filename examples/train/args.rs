//! The training program's command line and how a resumed run merges it with the checkpoint's.

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tapegrad::autograd::{Error, Result};
use tapegrad::nn::checkpoint::Checkpoint;

/// The default network: a small VGG (3x3 convolutions with batch norm and ReLU in three stages
/// of 32, 64 and 128 channels, each closed by a 2x2 max pool, then one linear layer: 104,426
/// parameters, 7.5 M multiply-adds per image), and the default recipe below (two replicas of
/// batch 16, Adam at 0.002 on a cosine schedule, label smoothing 0.1, random flips, 7 epochs,
/// evaluated on each image and its mirror image). Both were chosen on a validation split (the
/// last 10,000 training images, `--validation 10000`), never the test set: see
/// `docs/main-job.md` for every recipe tried. `--model lenet5-modern` trains the lecture's
/// LeNet-5 with the same recipe.
pub const DEFAULT_MODEL: &str = "small-vgg-32-64-128";
/// Replicas of the default run, each on its own threads: a small network's operations are too
/// short to split well over the cores, so two replicas on one core each train faster than one
/// on both (see `docs/main-job.md`).
pub const DEFAULT_REPLICAS: usize = 2;
pub const SYNTHETIC: &str = "[synthetic]";
/// The tag of runs on the repository's 7,000-image subset of Fashion-MNIST.
pub const SUBSET: &str = "[subset]";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    FashionMnist,
    /// The 7,000 real Fashion-MNIST images that ship with the repository.
    FashionMnistSubset,
    Mnist,
    Cifar10,
    Folder,
    Synthetic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
    Rmsprop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TtaKind {
    None,
    Flip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    None,
    Step,
    Multistep,
    Cosine,
    Plateau,
}

/// Train an image classifier (tapegrad).
#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
#[command(version)]
pub struct Args {
    /// Network: small-vgg-16-64-128 (default), small-vgg-S1-S2...[-fcH][-dropP] (a stage S is a
    /// width W or WxN, N convolutions), lenet5-modern, lenet5, lenet5-wide (16-32-128-84),
    /// lenet5[-modern]-C1-C2-C3-H, or any zoo name.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Folder of the dataset (Fashion-MNIST: else $FASHION_MNIST_DIR or the system folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DatasetKind::FashionMnist)]
    pub dataset: DatasetKind,
    #[arg(long, default_value_t = 7)]
    pub epochs: usize,
    /// Images per step of each rank (replica or MPI process).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Learning rate (default: 0.002 for Adam/AdamW, 0.001 for RMSprop, 0.05 for SGD).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Momentum of SGD and RMSprop.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long)]
    pub nesterov: bool,
    #[arg(long, value_enum, default_value_t = ScheduleKind::Cosine)]
    pub schedule: ScheduleKind,
    /// Epochs between cuts of the step schedule (default: a third of the epochs).
    #[arg(long)]
    pub step_size: Option<usize>,
    /// Epochs at which the multistep schedule cuts (default: at 1/2 and 3/4 of the epochs).
    #[arg(long, value_delimiter = ',')]
    pub milestones: Vec<usize>,
    /// Factor of each cut (step, multistep, plateau).
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f32,
    /// Epochs without improvement of the test loss before the plateau schedule cuts.
    #[arg(long, default_value_t = 1)]
    pub patience: usize,
    /// Augmentations, comma-separated: none, flip, crop (pad by 1/8 and crop back), pca
    /// (AlexNet's colour shift, RGB only).
    #[arg(long, default_value = "flip")]
    pub augment: String,
    /// Test-time augmentation of every evaluation: none, or flip (each image scored by the mean
    /// of its logits and its mirror image's; the images alone are reported too). Default: flip
    /// when --augment has flip, else none.
    #[arg(long, value_enum)]
    #[serde(default)]
    pub tta: Option<TtaKind>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores). Results are reproducible for a given count.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output folder (default: runs/<model>-<dataset>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run saved in this checkpoint, with its settings.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Test on the first N test images only.
    #[arg(long)]
    pub limit_test: Option<usize>,
    /// Hold out the last N training images and evaluate on them instead of the test set (to
    /// choose a recipe without looking at the test set).
    #[arg(long)]
    pub validation: Option<usize>,
    /// Print each layer's mean gradient norm and fraction of zero gradients every epoch.
    #[arg(long)]
    pub grad_stats: bool,
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f32,
    /// Clip the total gradient norm to this before each step.
    #[arg(long)]
    pub clip_grad: Option<f32>,
    /// Stop (with a checkpoint) after this many optimiser steps in all, as if interrupted.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Image folder: resize to this side (shorter side, then centre crop).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Image folder: read images as grey.
    #[arg(long)]
    pub grayscale: bool,
    /// Synthetic set: training images per class (test: a sixth of it).
    #[arg(long, default_value_t = 600)]
    pub synthetic_per_class: usize,
    /// Data-parallel training over MPI: start with `mpirun -np N`; each rank takes a shard of
    /// every global batch of N x --batch-size (needs the program built with --features mpi).
    #[arg(long)]
    #[serde(default)]
    pub distributed: bool,
    /// Data-parallel training on N threads of this process (replicas), each on a shard of
    /// every global batch of N x --batch-size, gradients averaged as over MPI (default: 2, or 1
    /// with --distributed). Threads per replica default to the cores shared out.
    #[arg(long)]
    #[serde(default)]
    pub replicas: Option<usize>,
}

impl Args {
    /// Whether evaluations show the model each image's mirror image too: `--tta`, else when
    /// the model was trained on flips.
    pub fn test_time_flip(&self) -> bool {
        match self.tta {
            Some(t) => t == TtaKind::Flip,
            None => self.augment.split(',').any(|a| a.trim() == "flip"),
        }
    }

    /// Replicas on threads of this process: `--replicas`, else 2 (1 under MPI, where each
    /// process is one).
    pub fn thread_replicas(&self) -> Result<usize> {
        match (self.replicas, self.distributed) {
            (Some(0), _) => Err(Error::invalid("train", "--replicas must be at least 1")),
            (Some(n), true) if n > 1 => Err(Error::invalid(
                "train",
                "--replicas and --distributed: each MPI process is one replica; choose one",
            )),
            (Some(n), _) => Ok(n),
            (None, true) => Ok(1),
            (None, false) => Ok(DEFAULT_REPLICAS),
        }
    }
}

/// Flags that a resumed run takes from its own command line, not from the checkpoint.
pub const RESUME_FRESH: &[&str] = &[
    "resume",
    "out",
    "max_steps",
    "grad_stats",
    "distributed",
    "replicas",
];
/// Flags that a resumed run takes from the checkpoint unless given again.
pub const RESUME_MAY_CHANGE: &[&str] = &["epochs", "threads", "data", "tta"];

pub fn json_err(e: serde_json::Error) -> Error {
    Error::invalid("train", e.to_string())
}

/// The settings to resume with: the checkpoint's, except the flags that may change.
pub fn resumed_args(args: &Args, matches: &clap::ArgMatches, ckpt: &Checkpoint) -> Result<Args> {
    let saved = ckpt.metadata.get("run.args").ok_or_else(|| {
        Error::invalid("train", "the checkpoint holds no run settings (run.args)")
    })?;
    let mut saved: serde_json::Value = serde_json::from_str(saved).map_err(json_err)?;
    let given = serde_json::to_value(args).map_err(json_err)?;
    for (key, value) in given.as_object().expect("Args is a struct") {
        let given_now = matches.value_source(key) == Some(clap::parser::ValueSource::CommandLine);
        if RESUME_FRESH.contains(&key.as_str()) {
            saved[key] = value.clone();
        } else if !given_now {
            continue;
        } else if RESUME_MAY_CHANGE.contains(&key.as_str()) {
            saved[key] = value.clone();
        } else if saved[key] != *value {
            return Err(Error::invalid(
                "train",
                format!(
                    "--{} {value} differs from the checkpoint's {}; a resumed run keeps its \
                     settings (only --{} may change)",
                    key.replace('_', "-"),
                    match &saved[key] {
                        serde_json::Value::Null => "default".to_string(),
                        v => v.to_string(),
                    },
                    [RESUME_MAY_CHANGE, RESUME_FRESH]
                        .concat()
                        .join(", --")
                        .replace('_', "-")
                ),
            ));
        }
    }
    serde_json::from_value(saved).map_err(json_err)
}
/// The command-line spelling of a choice.
pub fn name_of(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Args {
        Args::try_parse_from([&["train"], words].concat()).unwrap()
    }

    #[test]
    fn replicas_default_to_two_and_to_one_under_mpi() {
        assert_eq!(parse(&[]).thread_replicas().unwrap(), DEFAULT_REPLICAS);
        assert_eq!(parse(&["--replicas", "3"]).thread_replicas().unwrap(), 3);
        assert_eq!(parse(&["--distributed"]).thread_replicas().unwrap(), 1);
        let both = parse(&["--distributed", "--replicas", "1"]);
        assert_eq!(both.thread_replicas().unwrap(), 1);
        let e = parse(&["--distributed", "--replicas", "2"]).thread_replicas();
        assert!(e.unwrap_err().to_string().contains("choose one"));
        let e = parse(&["--replicas", "0"]).thread_replicas();
        assert!(e.unwrap_err().to_string().contains("at least 1"));
    }

    #[test]
    fn test_time_flips_follow_training_flips_unless_asked() {
        assert!(parse(&[]).test_time_flip());
        assert!(!parse(&["--augment", "none"]).test_time_flip());
        assert!(parse(&["--augment", "crop, flip"]).test_time_flip());
        assert!(!parse(&["--tta", "none"]).test_time_flip());
        assert!(parse(&["--augment", "none", "--tta", "flip"]).test_time_flip());
    }
}
