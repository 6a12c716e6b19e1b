//! The per-epoch record of a run, written as CSV (one row per epoch) and JSON (an array of
//! objects), and read back from JSON when a run resumes.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use tapegrad_autograd::{Error, Result};
use tapegrad_nn::checkpoint::write_atomic;

/// JSON has no NaN: a diverged loss is written as `null` and read back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f32(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
    }
}

/// One epoch: its learning rate, training loss and accuracy (means over the epoch's batches),
/// and the evaluation after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1 for the first epoch.
    pub epoch: usize,
    /// The learning rate the epoch trained with.
    pub lr: f32,
    #[serde(with = "nan_as_null")]
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub val_loss: Option<f32>,
    pub val_accuracy: Option<f32>,
    pub val_top5_error: Option<f32>,
    /// Wall time of the epoch (training and evaluation).
    pub seconds: f64,
    /// Training throughput (steps only).
    pub images_per_second: f64,
}

/// Every epoch of a run, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
}

const CSV_HEADER: &str = "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,\
                          val_top5_error,seconds,images_per_second";

fn opt(v: Option<f32>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl History {
    /// The best validation accuracy so far and its epoch.
    pub fn best_val_accuracy(&self) -> Option<(usize, f32)> {
        self.epochs
            .iter()
            .filter_map(|r| r.val_accuracy.map(|a| (r.epoch, a)))
            .fold(None, |best, (e, a)| match best {
                Some((_, b)) if b >= a => best,
                _ => Some((e, a)),
            })
    }

    /// A header and one row per epoch; missing values are empty fields.
    pub fn to_csv(&self) -> String {
        let mut out = format!("{CSV_HEADER}\n");
        for r in &self.epochs {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{:.3},{:.1}",
                r.epoch,
                r.lr,
                r.train_loss,
                r.train_accuracy,
                opt(r.val_loss),
                opt(r.val_accuracy),
                opt(r.val_top5_error),
                r.seconds,
                r.images_per_second
            );
        }
        out
    }

    /// An array of one object per epoch.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.epochs).expect("plain numbers always serialise")
    }

    /// The inverse of [`History::to_json`].
    pub fn from_json(text: &str) -> Result<History> {
        let epochs = serde_json::from_str(text).map_err(|e| Error::Format {
            what: "training history".into(),
            msg: e.to_string(),
        })?;
        Ok(History { epochs })
    }

    /// Writes [`History::to_csv`] to `path`, atomically.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }

    /// Writes [`History::to_json`] to `path`, atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, val: Option<f32>, train_loss: f32) -> EpochRecord {
        EpochRecord {
            epoch,
            lr: 0.001,
            train_loss,
            train_accuracy: 0.5,
            val_loss: val.map(|_| 0.7),
            val_accuracy: val,
            val_top5_error: None,
            seconds: 1.5,
            images_per_second: 100.0,
        }
    }

    #[test]
    fn csv_has_a_row_per_epoch_and_blanks_for_missing_values() {
        let h = History {
            epochs: vec![record(1, Some(0.8), 0.9), record(2, None, 0.6)],
        };
        let csv = h.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].split(',').count(), 9);
        assert_eq!(lines[1], "1,0.001,0.9,0.5,0.7,0.8,,1.500,100.0");
        assert_eq!(lines[2], "2,0.001,0.6,0.5,,,,1.500,100.0");
    }

    #[test]
    fn json_round_trips_even_a_nan_loss() {
        let h = History {
            epochs: vec![record(1, Some(0.8), 0.9), record(2, Some(0.85), f32::NAN)],
        };
        let back = History::from_json(&h.to_json()).unwrap();
        assert_eq!(back.epochs[0], h.epochs[0]);
        assert!(back.epochs[1].train_loss.is_nan());
        assert_eq!(back.epochs[1].val_accuracy, Some(0.85));
        assert!(History::from_json("{not json").is_err());
    }

    #[test]
    fn best_accuracy_keeps_the_earliest_of_equals() {
        let h = History {
            epochs: vec![
                record(1, Some(0.8), 1.0),
                record(2, Some(0.9), 1.0),
                record(3, Some(0.9), 1.0),
            ],
        };
        assert_eq!(h.best_val_accuracy(), Some((2, 0.9)));
        assert_eq!(History::default().best_val_accuracy(), None);
    }
}
