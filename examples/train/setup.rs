//! Building the parts of a run from the names a command line gives: optimisers, learning-rate
//! schedules and augmentations; normalising a dataset once; naming a run's folder by time.

use std::sync::Arc;
use tapegrad::autograd::{Error, Result};
use tapegrad::data::{Compose, Dataset, PcaColor, RandomCrop, RandomHorizontalFlip, Transform};
use tapegrad::nn::optim::{
    Adam, AdamConfig, AdamW, CosineAnnealingLR, MultiStepLR, Optimizer, PlateauConfig,
    ReduceLROnPlateau, RmsProp, RmsPropConfig, Sgd, SgdConfig, StepLR,
};
use tapegrad::train::Schedule;

/// The optimisers [`optimizer_by_name`] knows.
pub const OPTIMIZERS: &[&str] = &["sgd", "adam", "adamw", "rmsprop"];
/// The schedules [`schedule_by_name`] knows.
pub const SCHEDULES: &[&str] = &["none", "step", "multistep", "cosine", "plateau"];
/// The augmentations [`augmentation`] knows.
pub const AUGMENTATIONS: &[&str] = &["none", "flip", "crop", "pca"];

/// Settings shared by the optimisers; each uses those that apply to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSettings {
    /// `None`: [`default_lr`].
    pub lr: Option<f32>,
    /// SGD and RMSprop.
    pub momentum: f32,
    pub weight_decay: f32,
    /// SGD.
    pub nesterov: bool,
}

/// The learning rate an optimiser gets when none is given: 0.05 for SGD with momentum, 0.002
/// for Adam and AdamW, 0.001 for RMSprop.
pub fn default_lr(name: &str) -> f32 {
    match name {
        "sgd" => 0.05,
        "rmsprop" => 0.001,
        _ => 0.002,
    }
}

fn unknown(what: &str, name: &str, known: &[&str]) -> Error {
    Error::invalid(
        "train",
        format!("unknown {what} '{name}' (known: {})", known.join(", ")),
    )
}

/// An optimiser by name (see [`OPTIMIZERS`]).
pub fn optimizer_by_name(name: &str, s: &OptimizerSettings) -> Result<Box<dyn Optimizer>> {
    let lr = s.lr.unwrap_or_else(|| default_lr(name));
    let adam = AdamConfig {
        lr,
        weight_decay: s.weight_decay,
        ..Default::default()
    };
    Ok(match name {
        "sgd" => Box::new(Sgd::new(SgdConfig {
            lr,
            momentum: s.momentum,
            weight_decay: s.weight_decay,
            nesterov: s.nesterov,
            ..Default::default()
        })?),
        "adam" => Box::new(Adam::new(adam)?),
        "adamw" => Box::new(AdamW::new(adam)?),
        "rmsprop" => Box::new(RmsProp::new(RmsPropConfig {
            lr,
            momentum: s.momentum,
            weight_decay: s.weight_decay,
            ..Default::default()
        })?),
        other => return Err(unknown("optimizer", other, OPTIMIZERS)),
    })
}

/// Settings of the schedules.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleSettings {
    /// Length of the run: the cosine's period, and the defaults below.
    pub epochs: usize,
    /// Step schedule: epochs between cuts (default: a third of the run).
    pub step_size: Option<usize>,
    /// Multi-step schedule: when to cut (default: at half and three quarters of the run).
    pub milestones: Vec<usize>,
    /// Factor of each cut (step, multistep, plateau).
    pub gamma: f32,
    /// Plateau: epochs without improvement of the watched loss before a cut.
    pub patience: usize,
}

/// A schedule by name (see [`SCHEDULES`]), for `opt`'s current rates.
pub fn schedule_by_name(name: &str, s: &ScheduleSettings, opt: &dyn Optimizer) -> Result<Schedule> {
    let e = s.epochs.max(1);
    Ok(match name {
        "none" => Schedule::None,
        "step" => {
            let size = s.step_size.unwrap_or((e / 3).max(1));
            Schedule::Epoch(Box::new(StepLR::new(opt, size, s.gamma)?))
        }
        "multistep" => {
            let m = if s.milestones.is_empty() {
                vec![e / 2, e * 3 / 4]
            } else {
                s.milestones.clone()
            };
            Schedule::Epoch(Box::new(MultiStepLR::new(opt, &m, s.gamma)?))
        }
        "cosine" => Schedule::Epoch(Box::new(CosineAnnealingLR::new(opt, e, 0.0)?)),
        "plateau" => Schedule::Plateau(ReduceLROnPlateau::new(PlateauConfig {
            patience: s.patience,
            factor: s.gamma,
            ..Default::default()
        })?),
        other => return Err(unknown("schedule", other, SCHEDULES)),
    })
}

/// Training augmentations from a comma-separated list (see [`AUGMENTATIONS`]): `flip` mirrors
/// half the images, `crop` pads by an eighth of the side with `fill` and crops back at a random
/// place, `pca` shifts the colour along the principal axes of `train`'s RGB values (AlexNet's).
/// `None` when the list asks for nothing.
pub fn augmentation(spec: &str, train: &Dataset, fill: f32) -> Result<Option<Arc<dyn Transform>>> {
    let [c, h, _] = train.sample_shape();
    let mut t = Compose::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        t = match name {
            "none" => t,
            "flip" => t.then(RandomHorizontalFlip::new(0.5)),
            "crop" => t.then(RandomCrop::new(h, (h / 8).max(1), fill)),
            "pca" if c == 3 => t.then(PcaColor::fit(train)?),
            "pca" => {
                return Err(Error::invalid(
                    "train",
                    format!("PCA colour augmentation needs RGB images, not {c} channels"),
                ))
            }
            other => return Err(unknown("augmentation", other, AUGMENTATIONS)),
        };
    }
    Ok((!t.is_empty()).then(|| Arc::new(t) as Arc<dyn Transform>))
}

/// `(x - mean[c]) / std[c]` applied once to the stored pixels, so that batches need no
/// per-sample work.
pub fn normalize_dataset(ds: &Dataset, mean: &[f32], std: &[f32]) -> Result<Dataset> {
    let [c, h, w] = ds.sample_shape();
    if mean.len() != c || std.len() != c || std.iter().any(|&s| s.is_nan() || s <= 0.0) {
        return Err(Error::invalid(
            "normalize_dataset",
            format!("need {c} means and {c} positive stds, got {mean:?} and {std:?}"),
        ));
    }
    let mut px = ds.pixels().to_vec();
    for sample in px.chunks_mut(c * h * w) {
        for (ch, plane) in sample.chunks_mut(h * w).enumerate() {
            plane
                .iter_mut()
                .for_each(|v| *v = (*v - mean[ch]) / std[ch]);
        }
    }
    Dataset::new(px, [c, h, w], ds.labels().to_vec(), ds.classes().to_vec())
}

/// `YYYYmmdd-HHMMSS` (UTC) of `secs` since 1970-01-01.
pub fn utc_timestamp(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // The civil date of a day number (Howard Hinnant's `civil_from_days`): eras of 400 years
    // of 146,097 days, years starting in March so that the leap day comes last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// [`utc_timestamp`] of now.
pub fn now_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_timestamp(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapegrad::autograd::{rng, Tensor};
    use tapegrad::data::Dataset;

    #[test]
    fn timestamps_of_known_instants() {
        assert_eq!(utc_timestamp(0), "19700101-000000");
        // 2000-02-29 is 11,016 days after 1970-01-01 (30 years of 365 days plus 7 leap days,
        // then 31 + 28 days); one second before midnight.
        assert_eq!(utc_timestamp(11_016 * 86_400 + 86_399), "20000229-235959");
        assert_eq!(utc_timestamp(11_017 * 86_400), "20000301-000000");
    }

    #[test]
    fn optimisers_by_name_with_their_default_rates() {
        let s = OptimizerSettings {
            lr: None,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: true,
        };
        for name in OPTIMIZERS {
            let opt = optimizer_by_name(name, &s).unwrap();
            assert_eq!(opt.lr(), default_lr(name), "{name}");
        }
        let err = optimizer_by_name("lbfgs", &s).err().unwrap().to_string();
        assert!(err.contains("lbfgs") && err.contains("adamw"), "{err}");
    }

    #[test]
    fn schedules_by_name() {
        let opt = optimizer_by_name(
            "sgd",
            &OptimizerSettings {
                lr: Some(1.0),
                momentum: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            },
        )
        .unwrap();
        let s = ScheduleSettings {
            epochs: 9,
            step_size: None,
            milestones: vec![],
            gamma: 0.1,
            patience: 1,
        };
        for name in SCHEDULES {
            schedule_by_name(name, &s, opt.as_ref()).unwrap();
        }
        // The step schedule cuts every 9 / 3 = 3 epochs: epoch 3 runs at 1.0 * 0.1.
        let Schedule::Epoch(step) = schedule_by_name("step", &s, opt.as_ref()).unwrap() else {
            panic!("step is an epoch schedule")
        };
        assert!((step.lrs_at(3)[0] - 0.1).abs() < 1e-7 && step.lrs_at(2)[0] == 1.0);
        assert!(schedule_by_name("linear", &s, opt.as_ref()).is_err());
    }

    #[test]
    fn augmentations_from_a_list() {
        let grey = Dataset::new(
            vec![0.5; 2 * 64],
            [1, 8, 8],
            vec![0, 1],
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        assert!(augmentation("none", &grey, 0.0).unwrap().is_none());
        let t = augmentation("crop, flip", &grey, 0.0).unwrap().unwrap();
        let y = t.apply(&Tensor::ones([1, 8, 8]), &mut rng(0)).unwrap();
        assert_eq!(y.dims(), &[1, 8, 8]);
        assert!(augmentation("pca", &grey, 0.0).is_err());
        assert!(augmentation("rotate", &grey, 0.0).is_err());
    }

    #[test]
    fn normalised_pixels() {
        // Values 1 and 3: mean 2, std 1, so they become -1 and 1.
        let ds = Dataset::new(vec![1.0, 3.0], [1, 1, 1], vec![0, 0], vec!["a".into()]).unwrap();
        let n = normalize_dataset(&ds, &[2.0], &[1.0]).unwrap();
        assert_eq!(n.pixels(), &[-1.0, 1.0]);
        assert!(normalize_dataset(&ds, &[2.0], &[0.0]).is_err());
        assert!(normalize_dataset(&ds, &[2.0, 1.0], &[1.0, 1.0]).is_err());
    }
}
