//! Output of a training run: a [`Console`] that puts a tag (such as `[synthetic]`) in front of
//! every line it prints, and a [`Progress`] bar per epoch with the running loss, accuracy and
//! images per second.

use super::trainer::StepOutcome;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Display;
use std::time::Instant;

/// Prints lines, each prefixed by the tag when there is one.
#[derive(Clone, Debug, Default)]
pub struct Console {
    tag: Option<String>,
    quiet: bool,
}

impl Console {
    pub fn new(tag: Option<&str>) -> Console {
        Console {
            tag: tag.map(str::to_string),
            quiet: false,
        }
    }

    /// Prints no lines and draws no progress bar (errors still go to stderr): the console of
    /// every rank but 0 in data-parallel training.
    pub fn quiet(mut self, on: bool) -> Console {
        self.quiet = on;
        self
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Changes the tag, keeping the rest.
    pub fn set_tag(&mut self, tag: Option<&str>) {
        self.tag = tag.map(str::to_string);
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `text` with the tag in front of each of its lines.
    pub fn tagged(&self, text: impl Display) -> String {
        let text = text.to_string();
        match &self.tag {
            None => text,
            Some(tag) => {
                let lines: Vec<String> = if text.is_empty() {
                    vec![tag.clone()]
                } else {
                    text.lines()
                        .map(|l| {
                            if l.is_empty() {
                                tag.clone()
                            } else {
                                format!("{tag} {l}")
                            }
                        })
                        .collect()
                };
                lines.join("\n")
            }
        }
    }

    /// Prints `text` to stdout, tagged.
    pub fn line(&self, text: impl Display) {
        if !self.quiet {
            println!("{}", self.tagged(text));
        }
    }

    /// Prints `text` to stderr, tagged.
    pub fn error(&self, text: impl Display) {
        eprintln!("{}", self.tagged(text));
    }
}

/// A progress bar over the batches of one epoch, drawn on stderr when it is a terminal.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    images: u64,
}

impl Progress {
    /// A bar of `batches` steps labelled `label` (tagged by `console`), starting at `done`.
    pub fn new(console: &Console, label: &str, batches: usize, done: usize) -> Progress {
        let target = if console.is_quiet() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(batches as u64), target);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:28.cyan/blue}] {pos:>5}/{len:5} {msg} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(console.tagged(label));
        bar.set_position(done as u64);
        Progress {
            bar,
            started: Instant::now(),
            images: 0,
        }
    }

    /// Advances by one step and shows the epoch's running loss and accuracy and the images
    /// per second since the bar started.
    pub fn step(&mut self, out: &StepOutcome) {
        self.images += out.batch_size as u64;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "loss {:.4} acc {:5.2}% {:6.0} img/s",
            out.totals.mean_loss(),
            100.0 * out.totals.accuracy(),
            self.images as f64 / secs
        ));
        self.bar.inc(1);
    }

    /// Removes the bar from the terminal.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_tagged() {
        let c = Console::new(Some("[synthetic]"));
        assert_eq!(c.tagged("a\nb"), "[synthetic] a\n[synthetic] b");
        assert_eq!(
            c.tagged("a\n\nb"),
            "[synthetic] a\n[synthetic]\n[synthetic] b"
        );
        assert_eq!(c.tagged(""), "[synthetic]");
        assert_eq!(Console::new(None).tagged("a\nb"), "a\nb");
    }
}
