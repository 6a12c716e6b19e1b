//! `gradcheck`: compares the tape's gradients of any function with central finite differences.
//!
//! The function may return any shape: it is reduced to a scalar `L = sum(f(x) * r)` with a fixed
//! random `r`, so every output element takes part. Analytic gradients come from
//! `backward_with(r)`; numerical ones from `(L(x + eps) - L(x - eps)) / 2 eps` per input element,
//! with `L` summed in f64.

use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{rng, Tensor};

/// Settings of a gradient check.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f32,
    /// The check passes where `|analytic - numeric| <= atol + rtol * |numeric|`.
    pub atol: f32,
    pub rtol: f32,
    /// Seed of the random projection of the output.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-3,
            atol: 1e-2,
            rtol: 1e-2,
            seed: 0,
        }
    }
}

/// The worst disagreement found for one input.
#[derive(Clone, Debug)]
pub struct InputReport {
    pub max_abs_err: f32,
    pub max_rel_err: f32,
    /// Flat index of the element with the largest excess over the tolerance.
    pub worst_index: usize,
    pub analytic: Tensor,
    pub numeric: Tensor,
    pub passed: bool,
}

/// Result of [`gradcheck`]: one report per input.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    /// Whether every element of every input was within tolerance.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "input {i}: max abs err {:.3e}, max rel err {:.3e}, worst at {} (analytic {}, numeric {}) {}",
                r.max_abs_err,
                r.max_rel_err,
                r.worst_index,
                r.analytic.data().get(r.worst_index).copied().unwrap_or(0.0),
                r.numeric.data().get(r.worst_index).copied().unwrap_or(0.0),
                if r.passed { "ok" } else { "FAILED" }
            )?;
        }
        Ok(())
    }
}

/// Checks the gradients of `f` at `inputs` with the default options.
pub fn gradcheck<F>(f: F, inputs: &[Tensor]) -> Result<GradcheckReport>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    gradcheck_with(f, inputs, GradcheckOptions::default())
}

/// Checks the gradients of `f` at `inputs`.
pub fn gradcheck_with<F>(f: F, inputs: &[Tensor], opts: GradcheckOptions) -> Result<GradcheckReport>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    // Analytic: one backward seeded with r.
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let out = f(&tape, &vars)?;
    let r = Tensor::rand(out.shape(), -1.0, 1.0, &mut rng(opts.seed));
    let grads = out.backward_with(r.clone())?;
    let analytic: Vec<Tensor> = vars.iter().map(|&v| grads.get_or_zeros(v)).collect();

    let loss = |xs: &[Tensor]| -> Result<f64> {
        // A recording tape, not an inference one: `f` may itself run a backward pass (a
        // gradient penalty), which needs its forward recorded.
        let tape = Tape::new();
        let vars: Vec<Var> = xs.iter().map(|t| tape.var(t.clone())).collect();
        let y = f(&tape, &vars)?.value();
        if y.shape() != r.shape() {
            return Err(Error::invalid(
                "gradcheck",
                format!(
                    "the function's output shape changed from {} to {}",
                    r.shape(),
                    y.shape()
                ),
            ));
        }
        Ok(y.data()
            .iter()
            .zip(r.data())
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum())
    };

    let mut reports = Vec::with_capacity(inputs.len());
    for (k, x) in inputs.iter().enumerate() {
        let mut numeric = vec![0.0f32; x.numel()];
        let mut xs: Vec<Tensor> = inputs.to_vec();
        for (i, slot) in numeric.iter_mut().enumerate() {
            let mut plus = x.clone();
            plus.data_mut()[i] += opts.eps;
            xs[k] = plus;
            let lp = loss(&xs)?;
            let mut minus = x.clone();
            minus.data_mut()[i] -= opts.eps;
            xs[k] = minus;
            let lm = loss(&xs)?;
            // The step actually taken, after f32 rounding of x +- eps.
            let h = (x.data()[i] + opts.eps) as f64 - (x.data()[i] - opts.eps) as f64;
            *slot = ((lp - lm) / h) as f32;
        }
        let numeric = Tensor::from_vec(numeric, x.shape().clone())?;
        reports.push(compare(&analytic[k], &numeric, opts));
    }
    Ok(GradcheckReport { inputs: reports })
}

fn compare(a: &Tensor, n: &Tensor, opts: GradcheckOptions) -> InputReport {
    let (mut max_abs, mut max_rel, mut worst, mut worst_excess, mut passed) =
        (0.0f32, 0.0f32, 0, f32::NEG_INFINITY, true);
    for (i, (&x, &y)) in a.data().iter().zip(n.data()).enumerate() {
        let err = (x - y).abs();
        let rel = err / y.abs().max(1e-6);
        max_abs = max_abs.max(err);
        max_rel = max_rel.max(rel);
        let excess = err - (opts.atol + opts.rtol * y.abs());
        if excess > worst_excess || excess.is_nan() {
            worst_excess = excess;
            worst = i;
        }
        if excess.is_nan() || excess > 0.0 {
            passed = false;
        }
    }
    InputReport {
        max_abs_err: max_abs,
        max_rel_err: max_rel,
        worst_index: worst,
        analytic: a.clone(),
        numeric: n.clone(),
        passed,
    }
}
