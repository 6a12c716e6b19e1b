//! The final report of a run: top-1 and top-5 error, loss, per-class accuracy and the
//! confusion matrix, as text.

use super::evaluation::Evaluation;
use std::fmt;

/// The evaluation of a trained model on a test set, printable.
pub struct Report<'a> {
    pub title: String,
    pub eval: &'a Evaluation,
}

impl<'a> Report<'a> {
    pub fn new(title: impl Into<String>, eval: &'a Evaluation) -> Report<'a> {
        Report {
            title: title.into(),
            eval,
        }
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.eval;
        let cm = e.metrics.confusion();
        writeln!(f, "{}", self.title)?;
        writeln!(f, "  images        {}", e.count())?;
        writeln!(f, "  loss          {:.4}", e.loss())?;
        writeln!(
            f,
            "  top-1 error   {:6.2}%   (accuracy {:.2}%)",
            100.0 * e.top1_error(),
            100.0 * e.accuracy()
        )?;
        match e.top5_error() {
            Some(t5) => writeln!(f, "  top-5 error   {:6.2}%", 100.0 * t5)?,
            None => writeln!(f, "  top-5 error   -       (fewer than 5 classes)")?,
        }
        if let Some(a) = e.single_view_accuracy() {
            writeln!(
                f,
                "  (scores: the mean over each image and its mirror image; the image alone: accuracy {:.2}%)",
                100.0 * a
            )?;
        }
        writeln!(f)?;
        writeln!(f, "per-class accuracy:")?;
        let names = e.classes();
        let w = names.iter().map(String::len).max().unwrap_or(5).max(5);
        let support = cm.support();
        for (i, acc) in cm.per_class_accuracy().iter().enumerate() {
            match acc {
                Some(a) => {
                    // A bar of up to 40 characters, one per 2.5%.
                    let bar = "#".repeat((a * 40.0).round() as usize);
                    let line = format!(
                        "  {i:>2} {:<w$}  {:6.2}%  of {:>5}  {bar}",
                        names[i],
                        100.0 * a,
                        support[i]
                    );
                    writeln!(f, "{}", line.trim_end())?
                }
                None => writeln!(f, "  {i:>2} {:<w$}       -  (no samples)", names[i])?,
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "confusion matrix (rows: true class, columns: predicted):"
        )?;
        write!(f, "{cm}")
    }
}
