//! Normalisation as compositions: batch norm and local response normalisation. (Training-mode
//! batch norm runs as one fused node, `batch_norm.rs`, tested against the composition here.)

use crate::error::{Error, Result};
use crate::ops::present;
use crate::tape::Var;
use crate::tensor::Tensor;

op!(BATCH_NORM = "batch_norm", "a composition ((x - mean) * weight / sqrt(var + eps) + bias): its gradient comes from the tape");
op!(LOCAL_RESPONSE_NORM = "local_response_norm", "a composition (x / (k + alpha/size * window sum of x^2)^beta): its gradient comes from the tape");

/// Running statistics of batch norm, updated in training mode.
pub struct RunningStats<'a> {
    pub mean: &'a mut Tensor,
    pub var: &'a mut Tensor,
    pub momentum: f32,
}

impl<'t> Var<'t> {
    /// Batch normalisation over every axis but 1 (channels) of `[N, C, ...]` input:
    /// `y = (x - mean) / sqrt(var + eps) * weight + bias`, computed as
    /// `(x - mean) * (weight / sqrt(var + eps)) + bias`.
    ///
    /// Training uses the batch's mean and biased variance (computed in two passes, which stays
    /// accurate when |mean| >> std) and updates the running statistics with PyTorch's rule
    /// `r = (1 - m) r + m s`, using the unbiased variance. Evaluation uses the running
    /// statistics.
    pub fn batch_norm(
        self,
        running: Option<RunningStats<'_>>,
        weight: Option<Var<'t>>,
        bias: Option<Var<'t>>,
        training: bool,
        eps: f32,
    ) -> Result<Var<'t>> {
        let s = self.shape();
        if s.rank() < 2 {
            return Err(Error::shape("batch_norm", &[&s], "an [N, C, ...] input"));
        }
        let c = s.dim(1);
        for p in [weight, bias].into_iter().flatten() {
            if p.shape().dims() != [c] {
                return Err(Error::shape(
                    "batch_norm",
                    &[&s, &p.shape()],
                    format!("[{c}] weight and bias"),
                ));
            }
        }
        if training {
            // One node with fused kernels (`batch_norm.rs`), checked against the composition.
            return self.batch_norm_train(running, weight, bias, eps);
        }
        let inputs = present([Some(self), weight, bias]);
        if let (Some(r), Some(b)) = (&running, bias) {
            if !inputs.iter().any(|v| v.requires_grad()) {
                // Evaluation with nothing to differentiate (inference): the composition's
                // three passes over the activation as one, with its bits (the same
                // operations on each element, in the same order). 8% of a ResNet-18
                // inference pass (batch 8) was those passes. Only with a bias: without one the
                // composition adds nothing, and the kernel's `+ 0` would turn -0 into +0.
                check_stats(&s, c, r.mean, r.var)?;
                let mut scale = r.var.add_scalar(eps).powf(-0.5);
                if let Some(w) = weight {
                    scale = scale.mul(&w.value())?;
                }
                let shift = b.value();
                let y = self
                    .value()
                    .channel_affine(r.mean.data(), scale.data(), shift.data());
                return self
                    .tape()
                    .composite(BATCH_NORM, &inputs, || Ok(self.constant(y)));
            }
        }
        self.tape().composite(BATCH_NORM, &inputs, || {
            self.batch_norm_composition(running, weight, bias, training, eps)
        })
    }

    /// batch_norm's composition, for validated weight and bias: what evaluation mode runs, and
    /// the definition training mode's fused node is tested against.
    pub(crate) fn batch_norm_composition(
        self,
        running: Option<RunningStats<'_>>,
        weight: Option<Var<'t>>,
        bias: Option<Var<'t>>,
        training: bool,
        eps: f32,
    ) -> Result<Var<'t>> {
        let s = self.shape();
        let c = s.dim(1);
        let mut stat_shape = vec![1; s.rank()];
        stat_shape[1] = c;
        let axes: Vec<isize> = (0..s.rank() as isize).filter(|&a| a != 1).collect();
        let count = s.numel() / c.max(1);
        // `centred` is computed once and reused by the output in training mode.
        let (centred, var) = if training {
            if count < 2 {
                return Err(Error::invalid(
                    "batch_norm",
                    format!("training needs more than one value per channel, got input {s}"),
                ));
            }
            let mean = self.mean(&axes, true)?;
            let centred = self.sub(mean)?;
            let var = centred.square().mean(&axes, true)?;
            if let Some(r) = running {
                check_stats(&s, c, r.mean, r.var)?;
                let m = r.momentum;
                let bm = mean.value();
                let unbiased = count as f32 / (count - 1) as f32;
                let bv = var.value();
                for (i, rm) in r.mean.data_mut().iter_mut().enumerate() {
                    *rm = (1.0 - m) * *rm + m * bm.data()[i];
                }
                for (i, rv) in r.var.data_mut().iter_mut().enumerate() {
                    *rv = (1.0 - m) * *rv + m * bv.data()[i] * unbiased;
                }
            }
            (centred, var)
        } else {
            let r = running.ok_or_else(|| {
                Error::invalid("batch_norm", "evaluation mode needs running statistics")
            })?;
            check_stats(&s, c, r.mean, r.var)?;
            let mean = self.constant(r.mean.reshape(stat_shape.clone())?);
            (
                self.sub(mean)?,
                self.constant(r.var.reshape(stat_shape.clone())?),
            )
        };
        // One scale per channel, 1/sqrt(var + eps) times the weight, so the full-size tensor
        // is multiplied once (and its backward is a product's, not a quotient's).
        let mut scale = var.add_scalar(eps).powf(-0.5);
        if let Some(w) = weight {
            scale = scale.mul(w.reshape(stat_shape.clone())?)?;
        }
        let y = centred.mul(scale)?;
        match bias {
            Some(b) => y.add(b.reshape(stat_shape)?),
            None => Ok(y),
        }
    }

    /// Local response normalisation across channels (AlexNet: size 5, alpha 1e-4, beta 0.75,
    /// k 2), with PyTorch's convention: `b_c = a_c / (k + alpha/size * sum a_c'^2)^beta`, the sum
    /// over `c' in [c - size/2, c + (size-1)/2]` clipped to real channels, and alpha always divided
    /// by the full `size`.
    pub fn local_response_norm(
        self,
        size: usize,
        alpha: f32,
        beta: f32,
        k: f32,
    ) -> Result<Var<'t>> {
        let s = self.shape();
        if s.rank() < 3 || size == 0 {
            return Err(Error::invalid(
                "local_response_norm",
                format!("needs an [N, C, ...] input of rank 3 or more and size > 0, got {s} and size {size}"),
            ));
        }
        self.tape().composite(LOCAL_RESPONSE_NORM, &[self], || {
            self.local_response_norm_composition(size, alpha, beta, k)
        })
    }

    /// local_response_norm's composition, for a validated input and size.
    fn local_response_norm_composition(
        self,
        size: usize,
        alpha: f32,
        beta: f32,
        k: f32,
    ) -> Result<Var<'t>> {
        let s = self.shape();
        if s.numel() == 0 {
            // Nothing to normalise (and a window loop over up to 2^62 empty channels).
            return self.reshape(s);
        }
        let c = s.dim(1);
        let rest: usize = s.dims()[2..].iter().product();
        let sq = self.square().reshape([s.dim(0), c, rest])?;
        // Zero-pad the channel axis, then add the shifted copies: a sliding window sum. Of the
        // `size` copies only those at offsets in (before - c, before + c) reach a real channel
        // (the others are all padding and add zeros), so the padding is cut to at most `c` a
        // side and only those copies are added, in the same order: a size of 2^62 costs what
        // a size of 2c does.
        let (before, after) = (size / 2, (size - 1) / 2);
        let (pb, pa) = (before.min(c), after.min(c));
        let padded = sq.pad(&[(pb, pa), (0, 0)], 0.0)?;
        let first = (before + 1).saturating_sub(c);
        let end = size.min(before.saturating_add(c));
        let shifted = |j: usize| padded.narrow(1, j - (before - pb), c);
        let mut window = shifted(first)?;
        for j in first + 1..end {
            window = window.add(shifted(j)?)?;
        }
        let denom = window
            .mul_scalar(alpha / size as f32)
            .add_scalar(k)
            .powf(beta);
        self.div(denom.reshape(s)?)
    }
}

pub(crate) fn check_stats(s: &crate::Shape, c: usize, mean: &Tensor, var: &Tensor) -> Result<()> {
    if mean.dims() != [c] || var.dims() != [c] {
        return Err(Error::shape(
            "batch_norm",
            &[s, mean.shape(), var.shape()],
            format!("running mean and variance of shape [{c}]"),
        ));
    }
    Ok(())
}
