//! `Dropout`, with the inverted (PyTorch) or the classic (lecture) scaling.

use crate::module::{Entry, Module};
use tapegrad_autograd::{rng, DropoutMode, Error, Result, Rng, Var};

/// `nn.Dropout`: drops each element with probability `p` in training mode, with its own seeded
/// generator so runs repeat. Checkpoints save the generator's state (`<name>.rng_state`), so a
/// resumed run draws the same masks.
pub struct Dropout {
    pub p: f32,
    pub mode: DropoutMode,
    rng: Rng,
    training: bool,
}

impl Dropout {
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        Dropout::with_mode(p, DropoutMode::Inverted, seed)
    }

    pub fn with_mode(p: f32, mode: DropoutMode, seed: u64) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "Dropout",
                format!("probability {p} must be in [0, 1]"),
            ));
        }
        Ok(Dropout {
            p,
            mode,
            rng: rng(seed),
            training: true,
        })
    }
}

impl Module for Dropout {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        x.dropout(self.p, self.training, self.mode, &mut self.rng)
    }
    /// The generator, so that a checkpoint saves where it stands and a resumed run draws the
    /// masks the uninterrupted one would.
    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(&format!("{prefix}rng_state"), Entry::Rng(&mut self.rng));
    }
    fn set_training(&mut self, on: bool) {
        self.training = on;
    }
}
