//! Losses, their only home: compositions of `Var` ops (log_softmax, a constant target mask, a
//! sum), so their gradients come from the tape. Three ways to call them, all the same code:
//! the loss modules with PyTorch's options ([`CrossEntropyLoss`], [`NllLoss`]: class weights,
//! label smoothing, an ignored label), the functions ([`cross_entropy`], [`mse_loss`], ...), and
//! methods on `Var` ([`VarLosses`]: `logits.cross_entropy(&labels)`).
//!
//! Cross-entropy with class weights `w` and label smoothing `eps` over `C` classes is, per
//! sample, `loss_i = -sum_c q_ic log_softmax(x_i)_c` with
//! `q_ic = (1 - eps) w[t_i] [c = t_i] + (eps / C) w[c]`, and the mean divides the sum of the
//! `loss_i` by `sum_i w[t_i]` (not by N), as PyTorch's `F.cross_entropy(weight=...)`. Without
//! weights (`w = 1`) that is the plain mean. It is one constant mask times `log_softmax`, so the
//! gradient comes from the tape: `(softmax(x_i) sum_c q_ic - q_i) / sum_i w[t_i]` for the mean.
//!
//! Scores come in PyTorch's layouts: `[N, C]` with `N` labels, `[C]` with one label, or
//! `[N, C, d1, d2, ...]` (class axis 1, e.g. per-pixel classes) with `N * d1 * d2 ...` labels,
//! the targets `[N, d1, d2, ...]` flattened row-major. The last two are viewed as `[N, C]` rows
//! (see `class_rows`); each row is one sample `i` above, so the weighted mean runs over every
//! labelled element, and 'none' returns the targets' shape.
//!
//! ```
//! use tapegrad_autograd::{Tape, Tensor};
//! use tapegrad_nn::loss::CrossEntropyLoss;
//! let tape = Tape::new();
//! let logits = tape.var(Tensor::zeros([2, 3]));
//! // Uniform logits: every log-probability is -ln 3, whatever the weights.
//! let loss = CrossEntropyLoss::new()
//!     .weight(Tensor::from_slice(&[1.0, 2.0, 3.0]))
//!     .forward(logits, &[0, 2])
//!     .unwrap();
//! assert!((loss.item().unwrap() - 3f32.ln()).abs() < 1e-6);
//! ```

use tapegrad_autograd::{Error, Result, Shape, Tensor, Var};

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

impl Reduction {
    fn reduce<'t>(self, losses: Var<'t>) -> Result<Var<'t>> {
        match self {
            Reduction::Mean => losses.mean(&[], false),
            Reduction::Sum => losses.sum(&[], false),
            Reduction::None => Ok(losses),
        }
    }
}

/// The losses as methods of `Var`, for `logits.cross_entropy(&labels)`; each is the function
/// or module of the same name.
pub trait VarLosses<'t>: Sized {
    /// Mean squared error `mean((self - target)^2)`.
    fn mse(self, target: Var<'t>) -> Result<Var<'t>> {
        self.mse_with(target, Reduction::Mean)
    }

    /// Squared error `(self - target)^2`, reduced by `r`.
    fn mse_with(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>>;

    /// Negative log-likelihood of log-probabilities at integer labels, `-x[i, t_i]` per label,
    /// reduced by `r` (the mean is over all labels); see [`NllLoss`].
    fn nll_loss(self, labels: &[usize], r: Reduction) -> Result<Var<'t>>;

    /// Cross-entropy from logits and integer labels, mean over all labels; see
    /// [`CrossEntropyLoss`].
    fn cross_entropy(self, labels: &[usize]) -> Result<Var<'t>> {
        self.cross_entropy_with(labels, 0.0, Reduction::Mean)
    }

    /// Cross-entropy with label smoothing `eps` (the target distribution
    /// `(1 - eps) onehot + eps / C`), reduced by `r`.
    fn cross_entropy_with(self, labels: &[usize], eps: f32, r: Reduction) -> Result<Var<'t>>;

    /// Binary cross-entropy of logits against targets in `[0, 1]`, in the stable form
    /// `max(x, 0) - x y + log(1 + e^-|x|)`, reduced by `r`.
    fn bce_with_logits(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>>;
}

impl<'t> VarLosses<'t> for Var<'t> {
    fn mse_with(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
        mse_loss(self, target, r)
    }

    fn nll_loss(self, labels: &[usize], r: Reduction) -> Result<Var<'t>> {
        NllLoss::new().reduction(r).forward(self, labels)
    }

    fn cross_entropy_with(self, labels: &[usize], eps: f32, r: Reduction) -> Result<Var<'t>> {
        CrossEntropyLoss::new()
            .label_smoothing(eps)
            .reduction(r)
            .forward(self, labels)
    }

    fn bce_with_logits(self, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
        bce_with_logits(self, target, r)
    }
}

/// Cross-entropy of logits against integer labels (PyTorch's `nn.CrossEntropyLoss`); logits
/// `[N, C]`, `[C]` or `[N, C, d1, ...]` (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyLoss {
    /// Per-class weights `[C]` (`None`: all 1).
    pub class_weights: Option<Tensor>,
    /// Label smoothing in `[0, 1]`.
    pub label_smoothing: f32,
    pub reduction: Reduction,
    /// Labels equal to this add nothing to the loss nor to the mean's denominator (their 'none'
    /// loss is 0); they need not be a valid class (e.g. 255 for unlabelled pixels).
    pub ignore_index: Option<usize>,
}

impl CrossEntropyLoss {
    /// Mean reduction, no weights, no smoothing.
    pub fn new() -> CrossEntropyLoss {
        CrossEntropyLoss::default()
    }

    pub fn weight(mut self, w: Tensor) -> CrossEntropyLoss {
        self.class_weights = Some(w);
        self
    }

    pub fn label_smoothing(mut self, eps: f32) -> CrossEntropyLoss {
        self.label_smoothing = eps;
        self
    }

    pub fn reduction(mut self, r: Reduction) -> CrossEntropyLoss {
        self.reduction = r;
        self
    }

    pub fn ignore_index(mut self, label: usize) -> CrossEntropyLoss {
        self.ignore_index = Some(label);
        self
    }

    /// The loss of `logits` at `labels`: `[N, C]` with N labels, `[C]` with one, or
    /// `[N, C, d1, ...]` with `N * d1 * ...` (the targets `[N, d1, ...]` flattened row-major).
    pub fn forward<'t>(&self, logits: Var<'t>, labels: &[usize]) -> Result<Var<'t>> {
        let eps = self.label_smoothing;
        if !(0.0..=1.0).contains(&eps) {
            return Err(Error::invalid(
                "cross_entropy",
                format!("label smoothing {eps} must be in [0, 1]"),
            ));
        }
        let (rows, out) = class_rows(logits, "cross_entropy", labels.len())?;
        let logp = rows.log_softmax(1)?;
        let spec = Targets {
            op: "cross_entropy",
            weights: self.class_weights.as_ref(),
            eps,
            ignore: self.ignore_index,
        };
        spec.loss(logp, labels, self.reduction, out)
    }
}

/// Negative log-likelihood of log-probabilities (PyTorch's `nn.NLLLoss`); scores `[N, C]`, `[C]`
/// or `[N, C, d1, ...]`, as for [`CrossEntropyLoss`].
#[derive(Clone, Debug, Default)]
pub struct NllLoss {
    /// Per-class weights `[C]` (`None`: all 1); the mean divides by `sum_i w[t_i]`.
    pub class_weights: Option<Tensor>,
    pub reduction: Reduction,
    pub ignore_index: Option<usize>,
}

impl NllLoss {
    pub fn new() -> NllLoss {
        NllLoss::default()
    }

    pub fn weight(mut self, w: Tensor) -> NllLoss {
        self.class_weights = Some(w);
        self
    }

    pub fn reduction(mut self, r: Reduction) -> NllLoss {
        self.reduction = r;
        self
    }

    pub fn ignore_index(mut self, label: usize) -> NllLoss {
        self.ignore_index = Some(label);
        self
    }

    /// `-w[t_i] logp[i, t_i]` per label, reduced; `logp` `[N, C]`, `[C]` or `[N, C, d1, ...]`
    /// with the targets `[N, d1, ...]` flattened row-major.
    pub fn forward<'t>(&self, logp: Var<'t>, labels: &[usize]) -> Result<Var<'t>> {
        let (rows, out) = class_rows(logp, "nll_loss", labels.len())?;
        let spec = Targets {
            op: "nll_loss",
            weights: self.class_weights.as_ref(),
            eps: 0.0,
            ignore: self.ignore_index,
        };
        spec.loss(rows, labels, self.reduction, out)
    }
}

/// Cross-entropy from logits, mean over all labels.
pub fn cross_entropy<'t>(logits: Var<'t>, labels: &[usize]) -> Result<Var<'t>> {
    CrossEntropyLoss::new().forward(logits, labels)
}

/// Negative log-likelihood of log-probabilities, mean over all labels.
pub fn nll_loss<'t>(logp: Var<'t>, labels: &[usize]) -> Result<Var<'t>> {
    NllLoss::new().forward(logp, labels)
}

/// Squared error `(input - target)^2`, reduced.
pub fn mse_loss<'t>(input: Var<'t>, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
    equal_shapes("mse", input, target)?;
    r.reduce(input.sub(target)?.square())
}

/// Binary cross-entropy of logits against targets in `[0, 1]`, in the stable form
/// `max(x, 0) - x y + log(1 + e^-|x|)`, reduced.
pub fn bce_with_logits<'t>(input: Var<'t>, target: Var<'t>, r: Reduction) -> Result<Var<'t>> {
    equal_shapes("bce_with_logits", input, target)?;
    let soft = input.abs().neg().exp().add_scalar(1.0).log();
    r.reduce(input.relu().sub(input.mul(target)?)?.add(soft)?)
}

fn equal_shapes<'t>(op: &'static str, input: Var<'t>, target: Var<'t>) -> Result<()> {
    input.same_tape(op, target)?;
    if input.shape() == target.shape() {
        return Ok(());
    }
    Err(Error::shape(
        op,
        &[&input.shape(), &target.shape()],
        "equal shapes",
    ))
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
fn class_rows<'t>(scores: Var<'t>, op: &'static str, n_labels: usize) -> Result<(Var<'t>, Shape)> {
    let shape = scores.shape();
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
        scores.permute(&perm)?
    } else {
        scores
    };
    Ok((class_last.reshape([rows, c])?, out))
}

/// What the label-based losses share: the target distribution and the mean's denominator.
struct Targets<'a> {
    op: &'static str,
    weights: Option<&'a Tensor>,
    eps: f32,
    ignore: Option<usize>,
}

impl Targets<'_> {
    /// `-sum_c q_ic logp_ic` per row of `[M, C]` log-probabilities, then reduced; the mean
    /// divides by `sum_i w[t_i]`, and 'none' has the shape `out`.
    fn loss<'t>(
        &self,
        logp: Var<'t>,
        labels: &[usize],
        r: Reduction,
        out: Shape,
    ) -> Result<Var<'t>> {
        let (q, denom) = self.distribution(&logp.dims(), labels)?;
        let per_sample = logp.mul(logp.constant(q))?.sum(&[1], false)?.neg();
        match r {
            Reduction::None => per_sample.reshape(out),
            Reduction::Sum => per_sample.sum(&[], false),
            // With every sample ignored the denominator is 0 and the mean NaN, as PyTorch.
            Reduction::Mean => Ok(per_sample.sum(&[], false)?.div_scalar(denom)),
        }
    }

    /// The weighted target distribution `q` `[N, C]` and `sum_i w[t_i]` over kept samples.
    fn distribution(&self, dims: &[usize], labels: &[usize]) -> Result<(Tensor, f32)> {
        if dims.len() != 2 || dims[0] != labels.len() {
            return Err(Error::invalid(
                self.op,
                format!(
                    "expected [N, C] scores and N labels, got scores of shape {dims:?} and {} labels",
                    labels.len()
                ),
            ));
        }
        let c = dims[1];
        let ones;
        let w = match self.weights {
            Some(w) if w.dims() == [c] => w.data(),
            Some(w) => {
                return Err(Error::invalid(
                    self.op,
                    format!(
                        "class weights of shape {} do not match {c} classes",
                        w.shape()
                    ),
                ))
            }
            None => {
                ones = vec![1.0; c];
                &ones[..]
            }
        };
        let mut q = vec![0.0f32; labels.len() * c];
        let mut denom = 0.0f64;
        for (i, &t) in labels.iter().enumerate() {
            if Some(t) == self.ignore {
                continue;
            }
            if t >= c {
                return Err(Error::invalid(
                    self.op,
                    format!("label {t} at position {i} is out of range for {c} classes"),
                ));
            }
            let row = &mut q[i * c..(i + 1) * c];
            if self.eps > 0.0 {
                for (qc, &wc) in row.iter_mut().zip(w) {
                    *qc = self.eps / c as f32 * wc;
                }
            }
            row[t] += (1.0 - self.eps) * w[t];
            denom += w[t] as f64;
        }
        Ok((Tensor::from_vec(q, [labels.len(), c])?, denom as f32))
    }
}
