//! CIFAR-10, binary version: `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`.
//!
//! Each record is one label byte followed by 3072 pixel bytes: the 1024 red values of a 32x32
//! image row by row, then the green, then the blue. That is already [C, H, W] order, so a record
//! becomes a sample by scaling alone.

use super::dataset::{Dataset, Split};
use super::{format_error, io_error};
use std::path::Path;
use tapegrad_autograd::Result;

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;

/// The CIFAR-10 loader.
pub struct Cifar10;

impl Cifar10 {
    pub const CLASSES: [&'static str; 10] = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];

    /// The class names from `batches.meta.txt` in `dir` when it lists ten, else the standard ones.
    pub fn class_names(dir: &Path) -> Vec<String> {
        let listed: Vec<String> = std::fs::read_to_string(dir.join("batches.meta.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if listed.len() == Self::CLASSES.len() {
            listed
        } else {
            Self::CLASSES.iter().map(|s| s.to_string()).collect()
        }
    }

    /// The records of one or more batch files, in order, as one dataset with pixels in [0, 1].
    pub fn load_batches(paths: &[&Path], classes: Vec<String>) -> Result<Dataset> {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for &path in paths {
            let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
            if bytes.is_empty() || bytes.len() % RECORD != 0 {
                return Err(format_error(
                    path,
                    format!(
                        "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records \
                         (1 label byte + 3x32x32 pixels)",
                        bytes.len()
                    ),
                ));
            }
            for (r, rec) in bytes.chunks_exact(RECORD).enumerate() {
                let label = rec[0] as usize;
                if label >= classes.len() {
                    return Err(format_error(
                        path,
                        format!("record {r} has label {label}, outside 0..{}", classes.len()),
                    ));
                }
                labels.push(label);
                pixels.extend(rec[1..].iter().map(|&p| p as f32 / 255.0));
            }
        }
        Dataset::new(pixels, [3, SIDE, SIDE], labels, classes)
    }

    /// Both splits from `dir`: the five training batches (50,000 images) and the test batch.
    pub fn load(dir: &Path) -> Result<Split> {
        let classes = Self::class_names(dir);
        let train: Vec<_> = (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect();
        let train_refs: Vec<&Path> = train.iter().map(|p| p.as_path()).collect();
        let test = dir.join("test_batch.bin");
        Ok(Split {
            train: Self::load_batches(&train_refs, classes.clone())?,
            test: Self::load_batches(&[&test], classes)?,
        })
    }
}
