//! Dropout: a multiply by a random mask, a composition.

use crate::error::{Error, Result};
use crate::tape::Var;
use crate::tensor::{Rng, Tensor};
use rand::Rng as _;

/// How dropout keeps the expected activation unchanged between training and test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DropoutMode {
    /// Scale kept units by `1/(1-p)` in training; identity at test (PyTorch's, the default).
    #[default]
    Inverted,
    /// The lecture's (AlexNet's): no scaling in training; multiply by `1-p` at test.
    Classic,
}

impl<'t> Var<'t> {
    /// Zeroes each element with probability `p` in training (the same mask scales its
    /// gradient); at test, the identity (inverted) or a multiply by `1 - p` (classic).
    pub fn dropout(
        self,
        p: f32,
        training: bool,
        mode: DropoutMode,
        rng: &mut Rng,
    ) -> Result<Var<'t>> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout",
                format!("probability {p} must be in [0, 1]"),
            ));
        }
        match (training, mode) {
            (false, DropoutMode::Inverted) => Ok(self),
            (false, DropoutMode::Classic) => Ok(self.mul_scalar(1.0 - p)),
            (true, _) if p == 0.0 => Ok(self),
            (true, _) => {
                let keep = match mode {
                    DropoutMode::Inverted if p < 1.0 => 1.0 / (1.0 - p),
                    DropoutMode::Inverted => 0.0,
                    DropoutMode::Classic => 1.0,
                };
                let mask: Vec<f32> = (0..self.shape().numel())
                    .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
                    .collect();
                self.mul(self.constant(Tensor::from_vec(mask, self.shape())?))
            }
        }
    }
}
