//! Evaluation: loss, top-k errors and the confusion matrix of a model over a data set, with the
//! image as it is or with its mirror image too (test-time augmentation).

use super::trainer::Trainer;
use tapegrad_autograd::{Result, Tape, Var};
use tapegrad_data::metrics::Accumulator;
use tapegrad_data::{mirror, DataLoader};
use tapegrad_nn::loss::cross_entropy;

/// What [`Trainer::evaluate`] shows the model of each image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TestTime {
    /// The image as it is.
    #[default]
    Plain,
    /// The image and its mirror image (flipped left to right), scored by the mean of the two
    /// logits: for a model trained with random flips, to which both are images of the class.
    Flip,
}

/// Metrics of one pass over an evaluation set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub metrics: Accumulator,
    /// With [`TestTime::Flip`], the metrics of the images as they are, alone.
    pub single_view: Option<Accumulator>,
    classes: Vec<String>,
    top5: bool,
}

impl Evaluation {
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn count(&self) -> u64 {
        self.metrics.count()
    }

    /// Mean cross-entropy (without label smoothing).
    pub fn loss(&self) -> f32 {
        self.metrics.mean_loss().unwrap_or(f32::NAN)
    }

    pub fn accuracy(&self) -> f32 {
        1.0 - self.top1_error()
    }

    pub fn top1_error(&self) -> f32 {
        self.metrics.top_k_error(1).unwrap_or(f32::NAN)
    }

    /// `None` with fewer than five classes.
    pub fn top5_error(&self) -> Option<f32> {
        self.top5
            .then(|| self.metrics.top_k_error(5).ok())
            .flatten()
    }

    /// The accuracy on the images as they are, when test-time augmentation was on.
    pub fn single_view_accuracy(&self) -> Option<f32> {
        let single = self.single_view.as_ref()?;
        Some(1.0 - single.top_k_error(1).unwrap_or(f32::NAN))
    }
}

/// Adds a batch's scores and their mean cross-entropy to `metrics`.
fn record(metrics: &mut Accumulator, scores: Var<'_>, labels: &[usize]) -> Result<()> {
    let loss = cross_entropy(scores, labels)?.item()?;
    metrics.update(&scores.value(), labels)?;
    metrics.add_loss(loss, labels.len());
    Ok(())
}

impl Trainer {
    /// Loss, top-1/top-5 error and the confusion matrix over every batch of `loader`, in
    /// evaluation mode (batch norm uses its running statistics, dropout is off), with the
    /// images as [`Trainer::test_time`] says. In data-parallel training each rank evaluates its
    /// shard (`ShardTail::Uneven` counts each sample once) and the counts are added up, so
    /// every rank gets the metrics of the whole.
    pub fn evaluate(&mut self, loader: &DataLoader) -> Result<Evaluation> {
        let classes = loader.dataset().classes().to_vec();
        let top5 = classes.len() >= 5;
        let ks: &[usize] = if top5 { &[1, 5] } else { &[1] };
        let mut metrics = Accumulator::new(&classes, ks)?;
        let mut single = match self.test_time {
            TestTime::Plain => None,
            TestTime::Flip => Some(Accumulator::new(&classes, ks)?),
        };
        // The last step's forward moved each rank's running statistics its own way: evaluate
        // every shard with rank 0's, the ones its checkpoint saves.
        if let Some(p) = &mut self.parallel {
            p.sync_buffers(self.model.as_mut())?;
        }
        self.model.set_training(false);
        let result = (|| {
            for batch in loader.epoch(0) {
                let batch = batch?;
                let tape = Tape::inference();
                // The images' storage is shared, not copied, with the input.
                let logits = self.model.forward(tape.input(batch.images.clone()))?;
                let scores = match single.as_mut() {
                    None => logits,
                    Some(single) => {
                        record(single, logits, &batch.labels)?;
                        let mirrored = tape.input(mirror(&batch.images)?);
                        logits.add(self.model.forward(mirrored)?)?.mul_scalar(0.5)
                    }
                };
                record(&mut metrics, scores, &batch.labels)?;
            }
            Ok(())
        })();
        self.model.set_training(true);
        result?;
        if let Some(p) = &self.parallel {
            for m in std::iter::once(&mut metrics).chain(single.as_mut()) {
                let mut sums = m.sums();
                p.sum(&mut sums)?;
                m.set_sums(&sums)?;
            }
        }
        Ok(Evaluation {
            metrics,
            single_view: single,
            classes,
            top5,
        })
    }
}
