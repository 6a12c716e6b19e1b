//! Losses as compositions: mse, nll, cross-entropy (with label smoothing), binary cross-entropy
//! with logits.

use crate::error::{Error, Result};
use crate::tape::Var;
use crate::tensor::Tensor;

/// How per-element losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    /// One loss per element (per sample for cross-entropy and nll).
    None,
}

impl<'t> Var<'t> {
    fn reduce_loss(self, r: Reduction) -> Result<Var<'t>> {
        match r {
            Reduction::Mean => self.mean(&[], false),
            Reduction::Sum => self.sum(&[], false),
            Reduction::None => Ok(self),
        }
    }

    /// Mean squared error `mean((self - target)^2)`.
    pub fn mse(self, target: Var<'t>) -> Result<Var<'t>> {
        self.mse_with(target, Reduction::Mean)
    }

    pub fn mse_with(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
        self.same_tape("mse", target)?;
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "mse",
                &[&self.shape(), &target.shape()],
                "equal shapes",
            ));
        }
        self.sub(target)?.square().reduce_loss(r)
    }

    /// Negative log-likelihood of `[N, C]` log-probabilities at integer labels: `-mean_i x[i, t_i]`.
    pub fn nll_loss(self, labels: &[usize], r: Reduction) -> Result<Var<'t>> {
        let onehot = one_hot("nll_loss", &self.shape(), labels, 0.0)?;
        self.mul(self.constant(onehot))?
            .sum(&[1], false)?
            .neg()
            .reduce_loss(r)
    }

    /// Cross-entropy from `[N, C]` logits and integer labels, mean over the batch.
    pub fn cross_entropy(self, labels: &[usize]) -> Result<Var<'t>> {
        self.cross_entropy_with(labels, 0.0, Reduction::Mean)
    }

    /// Cross-entropy with label smoothing `eps`: the target distribution is
    /// `q = (1 - eps) onehot + eps / C`, and the loss `-sum_c q_c log_softmax(x)_c` per sample
    /// (log_softmax, then a pick by the one-hot mask, then the reduction).
    pub fn cross_entropy_with(self, labels: &[usize], eps: f32, r: Reduction) -> Result<Var<'t>> {
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::invalid(
                "cross_entropy",
                format!("label smoothing {eps} must be in [0, 1]"),
            ));
        }
        let q = one_hot("cross_entropy", &self.shape(), labels, eps)?;
        let logp = self.log_softmax(1)?;
        logp.mul(self.constant(q))?
            .sum(&[1], false)?
            .neg()
            .reduce_loss(r)
    }

    /// Binary cross-entropy of logits against targets in [0, 1], in the stable form
    /// `max(x, 0) - x y + log(1 + e^-|x|)`.
    pub fn bce_with_logits(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
        self.same_tape("bce_with_logits", target)?;
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "bce_with_logits",
                &[&self.shape(), &target.shape()],
                "equal shapes",
            ));
        }
        let soft = self.abs().neg().exp().add_scalar(1.0).log();
        self.relu()
            .sub(self.mul(target)?)?
            .add(soft)?
            .reduce_loss(r)
    }
}

/// The target distribution `(1 - eps) onehot + eps / C` for `[N, C]` scores, checking labels.
fn one_hot(op: &'static str, shape: &crate::Shape, labels: &[usize], eps: f32) -> Result<Tensor> {
    if shape.rank() != 2 || shape.dim(0) != labels.len() {
        return Err(Error::invalid(
            op,
            format!(
                "expected [N, C] scores and N labels, got scores of shape {shape} and {} labels",
                labels.len()
            ),
        ));
    }
    let c = shape.dim(1);
    let mut q = vec![eps / c as f32; labels.len() * c];
    for (i, &t) in labels.iter().enumerate() {
        if t >= c {
            return Err(Error::invalid(
                op,
                format!("label {t} at position {i} is out of range for {c} classes"),
            ));
        }
        q[i * c + t] += 1.0 - eps;
    }
    Tensor::from_vec(q, shape.clone())
}
