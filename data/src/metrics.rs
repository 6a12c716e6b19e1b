//! Classification metrics: top-k error, per-class accuracy and the confusion matrix, computed
//! from score tensors `[N, classes]` (logits or probabilities: only their order matters) and
//! accumulated over the batches of an evaluation.
//!
//! Top-N error, as in the ImageNet results: the fraction of samples whose true class is not
//! among the N highest scores. A true class ranked 3rd is a top-1 error but not a top-5 error.
//!
//! ```
//! use tapegrad_autograd::Tensor;
//! use tapegrad_data::metrics::top_k_error;
//! // Scores of one sample; the true class 2 has the 3rd highest score (0.2 < 0.3 < 0.4).
//! let scores = Tensor::from_vec(vec![0.3, 0.4, 0.2, 0.1, 0.0, 0.0], [1, 6]).unwrap();
//! assert_eq!(top_k_error(&scores, &[2], 1).unwrap(), 1.0);
//! assert_eq!(top_k_error(&scores, &[2], 5).unwrap(), 0.0);
//! ```

use std::fmt;
use tapegrad_autograd::{Error, Result, Tensor};

/// NaN ranks above everything, as in `Tensor::topk`, so a diverged model is never rewarded.
fn key(v: f32) -> f32 {
    if v.is_nan() {
        f32::INFINITY
    } else {
        v
    }
}

/// The 0-based rank of class `t` in one row of scores: how many classes beat it. A tie goes to
/// the lower class index, the rule of `argmax` and `topk`.
pub fn rank_of(row: &[f32], t: usize) -> usize {
    let st = key(row[t]);
    row.iter()
        .enumerate()
        .filter(|&(j, &s)| key(s) > st || (key(s) == st && j < t))
        .count()
}

/// Checks `scores` is `[N, K]` with N labels in `0..K`, and returns K.
fn check(op: &'static str, scores: &Tensor, labels: &[usize]) -> Result<usize> {
    let [n, k] = *scores.dims() else {
        return Err(Error::shape(
            op,
            &[scores.shape()],
            "scores of shape [N, classes]",
        ));
    };
    if k == 0 {
        return Err(Error::shape(op, &[scores.shape()], "at least one class"));
    }
    if n != labels.len() {
        return Err(Error::invalid(
            op,
            format!(
                "{} labels for scores of shape {}",
                labels.len(),
                scores.shape()
            ),
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(Error::invalid(
            op,
            format!(
                "label {bad} is outside the {k} classes of scores {}",
                scores.shape()
            ),
        ));
    }
    Ok(k)
}

/// Fraction of rows whose true class is not among the `k` highest scores (0 for no rows).
pub fn top_k_error(scores: &Tensor, labels: &[usize], k: usize) -> Result<f32> {
    let classes = check("top_k_error", scores, labels)?;
    if k == 0 {
        return Err(Error::invalid("top_k_error", "k must be at least 1"));
    }
    if labels.is_empty() {
        return Ok(0.0);
    }
    let misses = scores
        .data()
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &t)| rank_of(row, t) >= k)
        .count();
    Ok(misses as f32 / labels.len() as f32)
}

/// Counts of (true class, predicted class) pairs: row = truth, column = prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionMatrix {
    classes: Vec<String>,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix over named classes.
    pub fn new(classes: &[impl AsRef<str>]) -> ConfusionMatrix {
        let k = classes.len();
        ConfusionMatrix {
            classes: classes.iter().map(|c| c.as_ref().to_string()).collect(),
            counts: vec![0; k * k],
        }
    }

    /// An empty matrix over classes named by their index.
    pub fn unnamed(k: usize) -> ConfusionMatrix {
        ConfusionMatrix::new(&(0..k).map(|i| i.to_string()).collect::<Vec<_>>())
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Counts one sample of class `truth` predicted as `predicted`.
    pub fn add(&mut self, truth: usize, predicted: usize) -> Result<()> {
        let k = self.num_classes();
        if truth >= k || predicted >= k {
            return Err(Error::invalid(
                "ConfusionMatrix::add",
                format!("classes ({truth}, {predicted}) outside 0..{k}"),
            ));
        }
        self.counts[truth * k + predicted] += 1;
        Ok(())
    }

    /// Counts each row's top-1 prediction (ties to the lower index) against its label.
    pub fn add_scores(&mut self, scores: &Tensor, labels: &[usize]) -> Result<()> {
        let k = check("ConfusionMatrix::add_scores", scores, labels)?;
        if k != self.num_classes() {
            return Err(Error::shape(
                "ConfusionMatrix::add_scores",
                &[scores.shape()],
                format!("{} classes", self.num_classes()),
            ));
        }
        for (row, &t) in scores.data().chunks(k).zip(labels) {
            // The first index holding the largest key is the one of rank 0.
            let pred = (0..k).fold(0, |b, j| if key(row[j]) > key(row[b]) { j } else { b });
            self.add(t, pred)?;
        }
        Ok(())
    }

    /// Samples of class `truth` predicted as `predicted` (0 outside the matrix).
    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        let k = self.num_classes();
        if truth < k && predicted < k {
            self.counts[truth * k + predicted]
        } else {
            0
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples of each true class (row sums).
    pub fn support(&self) -> Vec<u64> {
        self.counts
            .chunks(self.num_classes().max(1))
            .map(|r| r.iter().sum())
            .collect()
    }

    /// Fraction on the diagonal (0 when empty).
    pub fn accuracy(&self) -> f32 {
        let k = self.num_classes();
        let right: u64 = (0..k).map(|i| self.counts[i * k + i]).sum();
        right as f32 / self.total().max(1) as f32
    }

    /// For each class, the fraction of its samples predicted correctly (recall); `None` for a
    /// class with no samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f32>> {
        let k = self.num_classes();
        self.support()
            .iter()
            .enumerate()
            .map(|(i, &n)| (n > 0).then(|| self.counts[i * k + i] as f32 / n as f32))
            .collect()
    }
}

impl fmt::Display for ConfusionMatrix {
    /// A table: one row per true class (name, counts per predicted class, accuracy), with the
    /// predicted classes numbered across the top.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.num_classes();
        if k == 0 {
            return write!(f, "(no classes)");
        }
        let name_w = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(0)
            .max(10);
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let cell = max
            .to_string()
            .len()
            .max(k.saturating_sub(1).to_string().len())
            + 1;
        write!(f, "{:>w$} |", "true \\ pred", w = name_w + 4)?;
        for j in 0..k {
            write!(f, "{j:>cell$}")?;
        }
        writeln!(f, " | accuracy")?;
        writeln!(f, "{}", "-".repeat(name_w + 7 + cell * k + 11))?;
        let acc = self.per_class_accuracy();
        for (i, (name, row)) in self.classes.iter().zip(self.counts.chunks(k)).enumerate() {
            write!(f, "{i:>2} {name:<name_w$}  |")?;
            for n in row {
                write!(f, "{n:>cell$}")?;
            }
            match acc[i] {
                Some(a) => writeln!(f, " | {:>6.2}%", 100.0 * a)?,
                None => writeln!(f, " |      -")?,
            }
        }
        write!(
            f,
            "overall accuracy {:.2}% of {} samples",
            100.0 * self.accuracy(),
            self.total()
        )
    }
}

/// Running metrics over the batches of an evaluation: top-k misses for chosen k, the confusion
/// matrix, and the mean loss if losses are given.
#[derive(Clone, Debug)]
pub struct Accumulator {
    ks: Vec<usize>,
    misses: Vec<u64>,
    seen: u64,
    loss_sum: f64,
    loss_count: u64,
    confusion: ConfusionMatrix,
}

impl Accumulator {
    /// Tracks top-k error for each k in `ks` (e.g. `&[1, 5]`) over the named classes.
    pub fn new(classes: &[impl AsRef<str>], ks: &[usize]) -> Result<Accumulator> {
        if let Some(&k) = ks.iter().find(|&&k| k == 0 || k > classes.len()) {
            return Err(Error::invalid(
                "Accumulator::new",
                format!("top-{k} error needs 1 <= k <= {} classes", classes.len()),
            ));
        }
        Ok(Accumulator {
            ks: ks.to_vec(),
            misses: vec![0; ks.len()],
            seen: 0,
            loss_sum: 0.0,
            loss_count: 0,
            confusion: ConfusionMatrix::new(classes),
        })
    }

    /// Adds a batch of scores `[N, classes]` and their labels.
    pub fn update(&mut self, scores: &Tensor, labels: &[usize]) -> Result<()> {
        self.confusion.add_scores(scores, labels)?;
        let k = self.confusion.num_classes();
        for (row, &t) in scores.data().chunks(k).zip(labels) {
            let r = rank_of(row, t);
            for (m, &kk) in self.misses.iter_mut().zip(&self.ks) {
                *m += u64::from(r >= kk);
            }
        }
        self.seen += labels.len() as u64;
        Ok(())
    }

    /// Adds a batch's mean loss, weighted by its `n` samples.
    pub fn add_loss(&mut self, mean_loss: f32, n: usize) {
        self.loss_sum += mean_loss as f64 * n as f64;
        self.loss_count += n as u64;
    }

    /// Samples seen by [`Self::update`].
    pub fn count(&self) -> u64 {
        self.seen
    }

    /// Top-k error so far, for a `k` given at construction.
    pub fn top_k_error(&self, k: usize) -> Result<f32> {
        let i = self.ks.iter().position(|&x| x == k).ok_or_else(|| {
            Error::invalid(
                "Accumulator::top_k_error",
                format!("top-{k} is not tracked (tracked: {:?})", self.ks),
            )
        })?;
        Ok(self.misses[i] as f32 / self.seen.max(1) as f32)
    }

    /// The sample-weighted mean of the losses added, if any.
    pub fn mean_loss(&self) -> Option<f32> {
        (self.loss_count > 0).then(|| (self.loss_sum / self.loss_count as f64) as f32)
    }

    pub fn confusion(&self) -> &ConfusionMatrix {
        &self.confusion
    }

    pub fn per_class_accuracy(&self) -> Vec<Option<f32>> {
        self.confusion.per_class_accuracy()
    }

    /// Every count and sum, as f64 (exact to 2^53): the misses, samples seen, loss sum and
    /// count, and the confusion matrix. Adding these element-wise over the shards of an
    /// evaluation (an all-reduce) and loading them back with [`Self::set_sums`] gives the
    /// metrics of the whole.
    pub fn sums(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.misses.iter().map(|&m| m as f64).collect();
        v.extend([self.seen as f64, self.loss_sum, self.loss_count as f64]);
        v.extend(self.confusion.counts.iter().map(|&c| c as f64));
        v
    }

    /// Loads what [`Self::sums`] gave (after adding them over shards).
    pub fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        let k = self.ks.len();
        let want = k + 3 + self.confusion.counts.len();
        if sums.len() != want {
            return Err(Error::invalid(
                "Accumulator::set_sums",
                format!("{} values, expected {want}", sums.len()),
            ));
        }
        if let Some(bad) = sums.iter().find(|v| !v.is_finite() || **v < 0.0) {
            return Err(Error::invalid(
                "Accumulator::set_sums",
                format!("{bad} among the sums: counts are finite and not negative"),
            ));
        }
        for (m, v) in self.misses.iter_mut().zip(sums) {
            *m = *v as u64;
        }
        self.seen = sums[k] as u64;
        self.loss_sum = sums[k + 1];
        self.loss_count = sums[k + 2] as u64;
        for (c, v) in self.confusion.counts.iter_mut().zip(&sums[k + 3..]) {
            *c = *v as u64;
        }
        Ok(())
    }
}
