//! `BatchNorm2d` and `LocalResponseNorm`.

use crate::{Entry, EntryRef, Module};
use tapegrad_autograd::{Error, Param, Result, RunningStats, Tensor, Var};

/// `nn.BatchNorm2d` (works for any `[N, C, ...]` input): weight 1, bias 0, running mean 0,
/// running variance 1, momentum 0.1, eps 1e-5. Its state also holds `num_batches_tracked`,
/// the number of training batches seen, as PyTorch's (an integer).
#[derive(Module)]
pub struct BatchNorm2d {
    pub weight: Option<Param>,
    pub bias: Option<Param>,
    #[module(buffer)]
    pub running_mean: Tensor,
    #[module(buffer)]
    pub running_var: Tensor,
    #[module(counter)]
    pub num_batches_tracked: u64,
    #[module(skip)]
    pub momentum: f32,
    #[module(skip)]
    pub eps: f32,
    #[module(training)]
    training: bool,
}

impl BatchNorm2d {
    /// `nn.BatchNorm2d(channels)`: with a learned scale and shift. An error for no channels.
    pub fn new(channels: usize) -> Result<BatchNorm2d> {
        BatchNorm2d::with_affine(channels, true)
    }

    /// Without the learned scale and shift when `affine` is false.
    pub fn with_affine(channels: usize, affine: bool) -> Result<BatchNorm2d> {
        if channels == 0 {
            return Err(Error::invalid(
                "BatchNorm2d",
                "channels (0) must be positive",
            ));
        }
        let param = |t: Result<Tensor>| t.map(Param::new);
        Ok(BatchNorm2d {
            weight: affine
                .then(|| param(Tensor::try_ones([channels])))
                .transpose()?,
            bias: affine
                .then(|| param(Tensor::try_zeros([channels])))
                .transpose()?,
            running_mean: Tensor::try_zeros([channels])?,
            running_var: Tensor::try_ones([channels])?,
            num_batches_tracked: 0,
            momentum: 0.1,
            eps: 1e-5,
            training: true,
        })
    }

    pub fn channels(&self) -> usize {
        self.running_mean.numel()
    }
}

impl BatchNorm2d {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let tape = x.tape();
        let w = self.weight.as_ref().map(|p| tape.param(p));
        let b = self.bias.as_ref().map(|p| tape.param(p));
        let stats = RunningStats {
            mean: &mut self.running_mean,
            var: &mut self.running_var,
            momentum: self.momentum,
        };
        let y = x.batch_norm(Some(stats), w, b, self.training, self.eps)?;
        if self.training {
            self.num_batches_tracked = self.num_batches_tracked.saturating_add(1);
        }
        Ok(y)
    }
}

/// `nn.LocalResponseNorm` (AlexNet: size 5, alpha 1e-4, beta 0.75, k 2), PyTorch's convention
/// (alpha divided by size).
pub struct LocalResponseNorm {
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
}

impl LocalResponseNorm {
    pub fn new(size: usize, alpha: f32, beta: f32, k: f32) -> Result<LocalResponseNorm> {
        if size == 0 {
            return Err(Error::invalid("LocalResponseNorm", "size must be positive"));
        }
        Ok(LocalResponseNorm {
            size,
            alpha,
            beta,
            k,
        })
    }

    /// AlexNet's setting.
    pub fn alexnet() -> LocalResponseNorm {
        LocalResponseNorm {
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 2.0,
        }
    }
}

impl Module for LocalResponseNorm {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| {
            x.local_response_norm(m.size, m.alpha, m.beta, m.k)
        })
    }

    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}

    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}
