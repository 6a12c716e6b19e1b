//! `gradcheck`: compares the tape's gradients of any function with finite differences, sharply
//! enough in f32 to catch a derivative rule that is wrong by 0.1%.
//!
//! The function may return any shape: it is reduced to a scalar `L = sum(f(x) * r)` with a fixed
//! random `r`, so every output element takes part. Analytic gradients `g` come from
//! `backward_with(r)`. The numeric side differentiates `phi(t) = L(x + t d)` at `t = 0` along a
//! direction `d`: a single element (the full mode, every element of every input in turn) or a
//! random direction and the analytic gradient's own (the directional mode, PyTorch's fast mode;
//! the full mode runs these too). A third directional check takes the random direction again
//! with the outputs' own change along it as the projection `r`: then no terms of both signs
//! cancel in `r . J d`, so a gradient that the random `r` nearly cancels still shows its size.
//!
//! Three things make the f32 check sharp:
//! - Central differences at steps `h`, `h/2`, `h/4`, extrapolated (Richardson): the error falls
//!   from `O(h^2)` to `O(h^6)`, so the step can be large (a tenth of each element's scale:
//!   its magnitude, the input's root mean square where that is larger, and at least 0.5),
//!   which keeps the rounding noise of `L(x + h d) - L(x - h d)` small.
//! - The steps actually taken: `x + h d` is rounded to f32, so the analytic prediction is
//!   `g . (x+ - x-)` for the perturbed inputs as stored, not `2 h g . d`.
//! - A tolerance from the estimated error of each derivative rather than a fixed one: the
//!   difference between the last two extrapolations, plus the rounding noise the differences
//!   carry (4 units of f32's epsilon times the magnitude of the output elements that changed,
//!   over the step). An output's magnitude is the larger of its own and that of the terms it
//!   was computed from: for each op on the way to it, its inputs weighted by the output's
//!   gradient with respect to them (one traced backward pass per output element), so a mean of
//!   values of both signs, small itself, still carries the rounding of its partial sums.
//!   An estimate counts once a step 8 times smaller agrees with it: where they disagree (a kink
//!   of `relu` or `max` within the step, a step leaving the function's domain), the smaller one
//!   is compared with the next.
//!
//! The defaults ([`GradcheckOptions::DEFAULT`]): the full mode, first step 0.1 of each
//! element's scale, `safety` 4, `rtol` 1e-4, `atol` 1e-5, projection seed 0.
//!
//! What it can see, with the defaults, measured by the mutation test of the rules
//! (`autograd/tests/rule_mutation`: 10,044 random cases of every primitive and composition,
//! each rule in turn scaled by 1.001): no true rule failed (the worst error was 0.25 of its
//! tolerance); every scaled rule that moved some check's analytic value by two tolerances or
//! more failed (29,176, 88% of them), and of all 33,166 scaled rules 32,122 failed (96.9%).
//!
//! What it cannot see:
//! - an error in a part of the gradient that is small beside the rest (a rule through which
//!   a twentieth of the gradient flows, off by 0.1%, is a 0.005% error of the whole);
//! - an error smaller than its tolerance at every check, where the function's outputs change
//!   over a step by few of their own rounding units (a saturated softmax, an output within 1e-3
//!   of 1), or where the differences of a normalisation over few values converge slowly (a
//!   batch norm of two values per channel); the report gives each check's tolerance;
//! - near a kink (a `relu`, a `max` whose winner changes within the step) it settles on smaller
//!   steps, with more noise; a rule wrong only exactly at a kink (the subgradient chosen at 0)
//!   cannot be seen by differences at all;
//! - an error in a gradient element whose size is below `atol` times the largest one of its
//!   input, or in a gradient that is zero (a scaled zero is still zero).

mod differences;
mod report;

pub use report::{CheckResult, GradcheckReport, InputReport, Site};

use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{rng, Tensor};
use differences::{check_along, element_scales, normalised_like, output_terms, Check, Loss};

/// Which finite differences a check takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradcheckMode {
    /// Every element of every input (at least 12 evaluations of `f` per element), and the
    /// three directional checks.
    Full,
    /// Per input, the derivative along a random direction and along the analytic gradient
    /// (`v^T J u` against the difference quotient of `v^T f` along `u`, PyTorch's fast mode),
    /// and along the random direction again with `v` the outputs' own change along it: at
    /// least 38 evaluations and two backward passes per input, whatever its size.
    Directional,
}

/// Settings of a gradient check.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub mode: GradcheckMode,
    /// First finite-difference step, as a fraction of each element's scale (its magnitude, or
    /// the input's root mean square where that is larger, and at least 0.5).
    pub step: f32,
    /// A check passes where `|numeric - analytic| <= safety * estimated error
    /// + rtol * |analytic| + atol * (largest |analytic| among the element checks of the input)`.
    pub safety: f32,
    pub rtol: f32,
    pub atol: f32,
    /// Seed of the random projection of the output and of the random direction.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions::DEFAULT
    }
}

impl GradcheckOptions {
    /// The defaults, usable in constants: `GradcheckOptions { seed: 7, ..GradcheckOptions::DEFAULT }`.
    pub const DEFAULT: GradcheckOptions = GradcheckOptions {
        mode: GradcheckMode::Full,
        step: 0.1,
        safety: 4.0,
        rtol: 1e-4,
        atol: 1e-5,
        seed: 0,
    };

    /// The directional (fast) mode with the other defaults.
    pub fn directional() -> Self {
        GradcheckOptions {
            mode: GradcheckMode::Directional,
            ..Default::default()
        }
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
    if !(opts.step > 0.0 && opts.step.is_finite()) {
        return Err(Error::invalid(
            "gradcheck",
            format!("step {} must be positive", opts.step),
        ));
    }
    let mut g = rng(opts.seed);
    let (r, analytic) = analytic_gradients(&f, inputs, |shape| {
        Ok(Tensor::rand(shape.clone(), -1.0, 1.0, &mut g))
    })?;
    let terms = output_terms(&f, inputs)?;
    let loss = Loss {
        f: &f,
        r: &r,
        terms: &terms,
    };

    let mut reports = Vec::with_capacity(inputs.len());
    for (k, x) in inputs.iter().enumerate() {
        let scale = element_scales(x);
        let g_k = &analytic[k];
        let elements: Vec<Check> = match opts.mode {
            GradcheckMode::Full => (0..x.numel())
                .map(|i| {
                    let mut d = vec![0.0; x.numel()];
                    d[i] = scale[i];
                    // Per unit of the element itself, not of its scaled step.
                    let c = check_along(&loss, inputs, k, g_k, &d, opts)?;
                    let s = scale[i] as f64;
                    Ok(Check {
                        analytic: c.analytic / s,
                        numeric: c.numeric / s,
                        error: c.error / s,
                    })
                })
                .collect::<Result<_>>()?,
            GradcheckMode::Directional => Vec::new(),
        };
        let u = Tensor::randn(x.shape().clone(), &mut g);
        let random: Vec<f32> = u.data().iter().zip(&scale).map(|(u, s)| u * s).collect();
        // Along the analytic gradient (scaled like the inputs): no cancellation between
        // elements, so an error in the gradient's size shows fully.
        let along: Vec<f32> = g_k
            .data()
            .iter()
            .zip(&scale)
            .map(|(a, s)| a * s * s)
            .collect();
        let along = normalised_like(&along, &random);
        // Along the random direction again, projected on the outputs' own change along it:
        // `sum_o (J u)_o^2` has no terms of both signs, so a gradient that the random
        // projection nearly cancels (a broadcast of one value to many) still shows its size.
        let changed = match loss.output_change(inputs, k, &random, opts.step)? {
            Some(r_u) => {
                let (_, g_u) = analytic_gradients(&f, inputs, |_| Ok(r_u.clone()))?;
                let loss_u = Loss {
                    f: &f,
                    r: &r_u,
                    terms: &terms,
                };
                check_along(&loss_u, inputs, k, &g_u[k], &random, opts)?
            }
            None => check_along(&loss, inputs, k, g_k, &random, opts)?,
        };
        let directions = [
            check_along(&loss, inputs, k, g_k, &random, opts)?,
            check_along(&loss, inputs, k, g_k, &along, opts)?,
            changed,
        ];
        reports.push(report::of(&elements, &directions, opts));
    }
    Ok(GradcheckReport { inputs: reports })
}

/// The projection `r` (made from the output's shape) and the gradients of `sum(f(x) * r)` for
/// every input, from one backward pass.
fn analytic_gradients<F>(
    f: &F,
    inputs: &[Tensor],
    projection: impl FnOnce(&crate::Shape) -> Result<Tensor>,
) -> Result<(Tensor, Vec<Tensor>)>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let out = f(&tape, &vars)?;
    let r = projection(&out.shape())?;
    let grads = out.backward_with(r.clone())?;
    Ok((r, vars.iter().map(|&v| grads.get_or_zeros(v)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = x^3 recorded with its rule scaled by `s`: dy/dx = 3 s x^2.
    fn cube<'t>(s: f32, t: &'t Tape, v: &[Var<'t>]) -> Result<Var<'t>> {
        let y = v[0].value().powf(3.0);
        t.record(crate::tape::Op::new("cube", ""), &[v[0]], y, move |c| {
            let d = c.input(0).square().mul_scalar(3.0 * s);
            Ok(crate::grads![c.grad().mul(d)?])
        })
    }

    #[test]
    fn a_rule_wrong_by_a_thousandth_fails_and_the_true_one_passes() {
        let x = Tensor::from_slice(&[0.7, -1.3, 2.1, 0.4]);
        for mode in [GradcheckMode::Full, GradcheckMode::Directional] {
            let opts = GradcheckOptions {
                mode,
                ..Default::default()
            };
            let good =
                gradcheck_with(|t, v| cube(1.0, t, v), std::slice::from_ref(&x), opts).unwrap();
            assert!(good.passed(), "{mode:?}: {good}");
            assert!(good.worst_ratio() < 0.5, "{mode:?}: {good}");
            let bad =
                gradcheck_with(|t, v| cube(1.001, t, v), std::slice::from_ref(&x), opts).unwrap();
            assert!(!bad.passed(), "{mode:?} missed a 0.1% error: {bad}");
        }
    }

    fn mean<'t>(_: &'t Tape, v: &[Var<'t>]) -> Result<Var<'t>> {
        v[0].mean(&[], true)
    }

    /// The mean, then an identity whose rule scales the gradient by 1.001.
    fn mean_off<'t>(t: &'t Tape, v: &[Var<'t>]) -> Result<Var<'t>> {
        let y = v[0].mean(&[], true)?;
        t.record(crate::tape::Op::new("scaled", ""), &[y], y.value(), |c| {
            Ok(crate::grads![c.grad().mul_scalar(1.001)])
        })
    }

    #[test]
    fn a_mean_of_terms_that_cancel_carries_their_rounding() {
        // A mean of +-v pairs is 0 but its partial sums are not: the result carries the
        // rounding of terms up to 2 in size, not of its own size. The first case is the worst
        // of 200,000 random [4, 3, 1, 2] inputs in [-2, 2) when the noise was taken from the
        // outputs' size alone (ratio 2.13; 118 of them failed); the second cancels exactly,
        // over 64 terms (then ratio 2.49 on every seed).
        let flaked = Tensor::rand([4, 3, 1, 2], -2.0, 2.0, &mut rng(21402));
        let v = Tensor::rand([32], 0.5, 2.0, &mut rng(3)).to_vec();
        let pairs: Vec<f32> = v.iter().flat_map(|&a| [a, -a]).collect();
        let cancelling = Tensor::from_vec(pairs, [4, 16]).unwrap();
        for x in [flaked, cancelling] {
            for seed in [7, 8, 9] {
                let opts = GradcheckOptions {
                    seed,
                    ..Default::default()
                };
                let r = gradcheck_with(mean, std::slice::from_ref(&x), opts).unwrap();
                assert!(r.passed(), "{:?}, seed {seed}: {r}", x.shape());
                // And the check still sees the mean's rule off by 0.1%.
                let r = gradcheck_with(mean_off, std::slice::from_ref(&x), opts).unwrap();
                assert!(!r.passed(), "{:?}, seed {seed}: missed {r}", x.shape());
            }
        }
    }

    #[test]
    fn kinks_within_the_step_are_stepped_over() {
        // relu at 0.05 and -0.02: the first step (0.1 x scale) straddles the kink; smaller
        // ones do not, and the check settles on them.
        let x = Tensor::from_slice(&[0.05, -0.02, 1.5, -2.0]);
        let r = gradcheck(|_, v| Ok(v[0].relu()), &[x]).unwrap();
        assert!(r.passed(), "{r}");
    }

    #[test]
    fn a_step_outside_the_domain_is_retried_smaller() {
        // log at 0.05: x - 0.1 x rms is negative, so the first step gives NaN.
        let x = Tensor::from_slice(&[0.05, 1.0, 3.0]);
        let r = gradcheck(|_, v| Ok(v[0].log()), &[x]).unwrap();
        assert!(r.passed(), "{r}");
    }
}
