//! `Dropout`, with the inverted (PyTorch) or the classic (lecture) scaling.

use crate::Module;
use tapegrad_autograd::{rng, DropoutMode, Error, Result, Rng, Var};

/// `nn.Dropout`: drops each element with probability `p` in training mode, with its own seeded
/// generator so runs repeat. Checkpoints save the generator's state (`<name>.rng_state`), so a
/// resumed run draws the same masks.
#[derive(Module)]
pub struct Dropout {
    #[module(skip)]
    pub p: f32,
    #[module(skip)]
    pub mode: DropoutMode,
    /// Visited, so that a checkpoint saves where it stands and a resumed run draws the masks
    /// the uninterrupted one would.
    #[module(rename = "rng_state")]
    rng: Rng,
    #[module(training)]
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

impl Dropout {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        x.dropout(self.p, self.training, self.mode, &mut self.rng)
    }
}
