//! `Dropout`, with the inverted (PyTorch) or the classic (lecture) scaling.

use crate::module::{Entry, Module};
use tapegrad_autograd::{rng, DropoutMode, Error, Result, Rng, Var};

/// `nn.Dropout`: drops each element with probability `p` in training mode, with its own seeded
/// generator so runs repeat.
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
    fn visit(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
    fn set_training(&mut self, on: bool) {
        self.training = on;
    }
}
