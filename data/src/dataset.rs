//! `Dataset`: images held in memory as one flat f32 buffer of equally shaped [C, H, W] samples,
//! with a class label per sample and the class names.
//!
//! One buffer rather than a `Vec<Tensor>` keeps 60,000 small images in a single allocation and
//! makes a batch a run of slice copies.

use tapegrad_autograd::{Error, Result, Tensor};

/// Equally shaped images with labels in `0..classes.len()`.
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Vec<f32>,
    sample_shape: [usize; 3],
    labels: Vec<usize>,
    classes: Vec<String>,
}

/// A training set and a test set.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    /// A dataset from samples laid out one after another, each `sample_shape = [C, H, W]`.
    /// Fails unless `images` holds exactly `labels.len()` samples and every label names a class.
    pub fn new(
        images: Vec<f32>,
        sample_shape: [usize; 3],
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Result<Dataset> {
        let per: usize = sample_shape.iter().product();
        if per == 0 {
            return Err(Error::invalid(
                "Dataset::new",
                format!("sample shape {sample_shape:?} has no elements"),
            ));
        }
        if images.len() != per * labels.len() {
            return Err(Error::invalid(
                "Dataset::new",
                format!(
                    "{} labels need {} values of {sample_shape:?} samples, got {}",
                    labels.len(),
                    per * labels.len(),
                    images.len()
                ),
            ));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes.len()) {
            return Err(Error::invalid(
                "Dataset::new",
                format!(
                    "label {l} of sample {i} is outside the {} classes",
                    classes.len()
                ),
            ));
        }
        Ok(Dataset {
            images,
            sample_shape,
            labels,
            classes,
        })
    }

    /// A dataset from 8-bit pixels, scaled to [0, 1] by dividing by 255.
    pub fn from_u8(
        pixels: &[u8],
        sample_shape: [usize; 3],
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Result<Dataset> {
        let images = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        Dataset::new(images, sample_shape, labels, classes)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of every sample.
    pub fn sample_shape(&self) -> [usize; 3] {
        self.sample_shape
    }

    /// Values per sample, C * H * W.
    pub fn sample_numel(&self) -> usize {
        self.sample_shape.iter().product()
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// All samples, one after another.
    pub fn pixels(&self) -> &[f32] {
        &self.images
    }

    fn check_index(&self, op: &'static str, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::invalid(
                op,
                format!("index {i} is outside a dataset of {} samples", self.len()),
            ));
        }
        Ok(())
    }

    pub fn label(&self, i: usize) -> Result<usize> {
        self.check_index("Dataset::label", i)?;
        Ok(self.labels[i])
    }

    /// The values of sample `i`, [C, H, W] row-major.
    pub fn sample(&self, i: usize) -> Result<&[f32]> {
        self.check_index("Dataset::sample", i)?;
        let n = self.sample_numel();
        Ok(&self.images[i * n..(i + 1) * n])
    }

    /// Sample `i` as a `[C, H, W]` tensor.
    pub fn image(&self, i: usize) -> Result<Tensor> {
        Tensor::from_vec(self.sample(i)?.to_vec(), self.sample_shape)
    }

    /// How many samples each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// The samples at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let n = self.sample_numel();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.sample(i)?);
            labels.push(self.labels[i]);
        }
        Dataset::new(images, self.sample_shape, labels, self.classes.clone())
    }

    /// The smallest and largest value over all samples (`(inf, -inf)` when empty).
    pub fn value_range(&self) -> (f32, f32) {
        self.images
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// Per-channel mean and (population) standard deviation over every pixel of every sample,
    /// the statistics [`Normalize`](super::Normalize) wants. Sums run in f64 so that millions of
    /// pixels do not lose precision.
    pub fn channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.sample_shape;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for s in self.images.chunks(c * h * w) {
            for (ch, plane) in s.chunks(h * w).enumerate() {
                for &v in plane {
                    sum[ch] += v as f64;
                    sq[ch] += (v as f64) * (v as f64);
                }
            }
        }
        let count = (self.len() * h * w).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / count - m * m).max(0.0)).sqrt() as f32)
            .collect();
        (mean.iter().map(|&m| m as f32).collect(), std)
    }

    /// The mean image, [C, H, W]: what AlexNet subtracts from every input.
    pub fn mean_image(&self) -> Result<Tensor> {
        let n = self.sample_numel();
        let mut sum = vec![0f64; n];
        for s in self.images.chunks(n) {
            for (acc, &v) in sum.iter_mut().zip(s) {
                *acc += v as f64;
            }
        }
        let count = self.len().max(1) as f64;
        Tensor::from_vec(
            sum.iter().map(|&s| (s / count) as f32).collect(),
            self.sample_shape,
        )
    }
}
