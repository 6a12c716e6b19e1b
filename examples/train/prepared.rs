//! What every rank of a run shares, made once per process: the settings (a resumed run's,
//! merged with the command line), the checkpoint it resumes, and the data, loaded and
//! normalised. Replicas on threads share one; each MPI process makes its own.

use super::args::{resumed_args, Args};
use super::data::{hold_out, limit, load_data};
use super::distributed;
use super::setup::normalize_dataset;
use std::path::PathBuf;
use std::sync::Arc;
use tapegrad::autograd::{Error, Result};
use tapegrad::data::Dataset;
use tapegrad::nn::checkpoint::Checkpoint;
use tapegrad::train::Console;

pub struct Prepared {
    pub args: Args,
    pub resume: Option<(PathBuf, Checkpoint)>,
    /// Normalised by the training set's per-channel mean and std.
    pub train: Arc<Dataset>,
    pub test: Arc<Dataset>,
    pub data_name: String,
    /// What the evaluated split is called: "test", or "val" with `--validation`.
    pub eval_name: &'static str,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// The run's settings and the checkpoint it resumes (if any), for a run of `ranks` ranks.
pub fn settings(
    args: Args,
    matches: &clap::ArgMatches,
    ranks: usize,
) -> Result<(Args, Option<(PathBuf, Checkpoint)>)> {
    let resume = match &args.resume {
        Some(p) => Some((p.clone(), Checkpoint::load(p)?)),
        None => None,
    };
    let args = match &resume {
        Some((_, ckpt)) => {
            distributed::check_ranks(ckpt, ranks)?;
            resumed_args(&args, matches, ckpt)?
        }
        None => args,
    };
    Ok((args, resume))
}

/// Reads the data for a run with these settings. A run on the subset or on synthetic data
/// sets `console`'s tag.
pub fn prepare(
    (args, resume): (Args, Option<(PathBuf, Checkpoint)>),
    console: &mut Console,
) -> Result<Prepared> {
    let (split, data_name) = load_data(&args, console)?;
    // With --validation, "test" is the held-out part of the training set.
    let (train, test, eval_name, data_name) = match args.validation {
        Some(n) => {
            let (train, held) = hold_out(split.train, n)?;
            let name = format!("{data_name}, validating on its last {n} training images");
            (train, held, "val", name)
        }
        None => (split.train, split.test, "test", data_name),
    };
    let train = limit(train, args.limit_train)?;
    let test = limit(test, args.limit_test)?;
    if train.is_empty() || test.is_empty() {
        return Err(Error::invalid(
            "train",
            "the training and test sets must not be empty",
        ));
    }
    let (mean, std) = train.channel_mean_std();
    let std: Vec<f32> = std.iter().map(|&s| if s > 0.0 { s } else { 1.0 }).collect();
    let (train, test) = (
        normalize_dataset(&train, &mean, &std)?,
        normalize_dataset(&test, &mean, &std)?,
    );
    Ok(Prepared {
        args,
        resume,
        train: Arc::new(train),
        test: Arc::new(test),
        data_name,
        eval_name,
        mean,
        std,
    })
}
