//! Losses as compositions: mse, nll, cross-entropy (with label smoothing), binary cross-entropy
//! with logits.
//!
//! The class losses take scores in PyTorch's layouts: `[N, C]` with `N` labels, `[C]` with one
//! label, or `[N, C, d1, d2, ...]` (class axis 1, e.g. one class per pixel) with `N * d1 * d2 ...`
//! labels, the targets `[N, d1, d2, ...]` flattened in row-major order. The last two are viewed
//! as `[N, C]` rows (moving the class axis last, then a reshape), so their gradients come from
//! the tape and a mean averages over every labelled element.

use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

/// How per-element losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    #[default]
    Mean,
    Sum,
    /// One loss per element; for cross-entropy and nll one per label, in the targets' shape
    /// (`[N]`, `[N, d1, ...]`, or a scalar for `[C]` scores).
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
        // `record`'s check, under this composition's name (its ops would name themselves).
        self.tape().check_own("mse", &[self, target])?;
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "mse",
                &[&self.shape(), &target.shape()],
                "equal shapes",
            ));
        }
        self.sub(target)?.square().reduce_loss(r)
    }

    /// Negative log-likelihood of log-probabilities at integer labels, `-x[i, t_i]` per label,
    /// then reduced (the mean is over all labels). Scores are `[N, C]` (N labels), `[C]` (one
    /// label) or `[N, C, d1, ...]` (`N * d1 * ...` labels, the targets `[N, d1, ...]` flattened
    /// row-major); see [`Var::class_rows`].
    pub fn nll_loss(self, labels: &[usize], r: Reduction) -> Result<Var<'t>> {
        let (rows, out) = self.class_rows("nll_loss", labels.len())?;
        let onehot = one_hot("nll_loss", &rows.shape(), labels, 0.0)?;
        rows.mul(rows.constant(onehot))?
            .sum(&[1], false)?
            .neg()
            .reshape(out)?
            .reduce_loss(r)
    }

    /// Cross-entropy from logits and integer labels, mean over all labels. Scores are `[N, C]`,
    /// `[C]` or `[N, C, d1, ...]`, as for [`Var::nll_loss`].
    pub fn cross_entropy(self, labels: &[usize]) -> Result<Var<'t>> {
        self.cross_entropy_with(labels, 0.0, Reduction::Mean)
    }

    /// Cross-entropy with label smoothing `eps`: the target distribution is
    /// `q = (1 - eps) onehot + eps / C`, and the loss `-sum_c q_c log_softmax(x)_c` per label
    /// (log_softmax over the classes, then a pick by the one-hot mask, then the reduction).
    /// Scores are `[N, C]`, `[C]` or `[N, C, d1, ...]`, as for [`Var::nll_loss`]; 'none' gives
    /// the targets' shape `[N, d1, ...]`.
    pub fn cross_entropy_with(self, labels: &[usize], eps: f32, r: Reduction) -> Result<Var<'t>> {
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::invalid(
                "cross_entropy",
                format!("label smoothing {eps} must be in [0, 1]"),
            ));
        }
        let (rows, out) = self.class_rows("cross_entropy", labels.len())?;
        let q = one_hot("cross_entropy", &rows.shape(), labels, eps)?;
        let logp = rows.log_softmax(1)?;
        logp.mul(rows.constant(q))?
            .sum(&[1], false)?
            .neg()
            .reshape(out)?
            .reduce_loss(r)
    }

    /// Views class scores as `[M, C]` rows, one per label, for the losses of `op` given
    /// `n_labels` labels, and returns the shape of the per-label losses:
    /// - `[N, C]` stays as it is, per-label shape `[N]`;
    /// - `[C]` becomes `[1, C]` (one label), per-label shape `[]`;
    /// - `[N, C, d1, ..., dk]` moves the class axis last and becomes `[N * d1 * ... * dk, C]`,
    ///   per-label shape `[N, d1, ..., dk]`: row `m` holds the scores of the `m`-th element of
    ///   the targets `[N, d1, ..., dk]` in row-major order.
    ///
    /// A permute and a reshape on the tape, so gradients flow back to the original layout.
    /// Errors (naming `op`) on rank-0 scores or a label count other than `M`.
    pub fn class_rows(self, op: &'static str, n_labels: usize) -> Result<(Var<'t>, Shape)> {
        let shape = self.shape();
        let dims = shape.dims();
        let (rows, out) = match dims.len() {
            0 => {
                return Err(Error::invalid(
                    op,
                    format!(
                        "expected scores [C], [N, C] or [N, C, d1, ...], got a scalar of shape \
                         {shape} (and {n_labels} labels)"
                    ),
                ))
            }
            1 => (1, Shape::scalar()),
            _ => {
                let mut out = vec![dims[0]];
                out.extend_from_slice(&dims[2..]);
                (out.iter().product(), Shape::new(&out))
            }
        };
        if n_labels != rows {
            let expected = match dims.len() {
                1 => "one label".to_string(),
                2 => format!("N = {rows} labels"),
                _ => format!("N * d1 * ... = {rows} labels (targets {out} flattened)"),
            };
            return Err(Error::invalid(
                op,
                format!("scores of shape {shape} need {expected}, got {n_labels} labels"),
            ));
        }
        let c = if dims.len() == 1 { dims[0] } else { dims[1] };
        let class_last = if dims.len() > 2 {
            let mut perm: Vec<usize> = (0..dims.len()).filter(|&a| a != 1).collect();
            perm.push(1);
            self.permute(&perm)?
        } else {
            self
        };
        Ok((class_last.reshape([rows, c])?, out))
    }

    /// Binary cross-entropy of logits against targets in [0, 1], in the stable form
    /// `max(x, 0) - x y + log(1 + e^-|x|)`.
    pub fn bce_with_logits(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
        self.tape().check_own("bce_with_logits", &[self, target])?;
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

/// The target distribution `(1 - eps) onehot + eps / C` for `[N, C]` score rows, checking labels.
fn one_hot(op: &'static str, shape: &Shape, labels: &[usize], eps: f32) -> Result<Tensor> {
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
