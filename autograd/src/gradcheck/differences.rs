//! The numeric side of a gradient check: `phi(t) = L(x + t d)` differentiated at 0 by
//! extrapolated central differences, against the analytic `g . d`.

use super::GradcheckOptions;
use crate::error::{Error, Result};
use crate::tape::{BackwardOptions, Tape, Var};
use crate::tensor::Tensor;

/// `L(xs) = sum(f(xs) * r)` in f64, and what rounding noise to expect in it.
pub(super) struct Loss<'a, F> {
    pub(super) f: &'a F,
    pub(super) r: &'a Tensor,
    /// Per output element, the magnitude of the terms it is built from ([`output_terms`]).
    pub(super) terms: &'a [f64],
}

impl<F> Loss<'_, F>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    fn output(&self, xs: &[Tensor]) -> Result<Tensor> {
        // A recording tape, not an inference one: `f` may itself run a backward pass (a
        // gradient penalty), which needs its forward recorded.
        let tape = Tape::new();
        let vars: Vec<Var> = xs.iter().map(|t| tape.var(t.clone())).collect();
        let y = (self.f)(&tape, &vars)?.value();
        if y.shape() != self.r.shape() {
            return Err(Error::invalid(
                "gradcheck",
                format!(
                    "the function's output shape changed from {} to {}",
                    self.r.shape(),
                    y.shape()
                ),
            ));
        }
        Ok(y)
    }

    /// `f(x + s d) - f(x - s d)` for input `k`, scaled to a largest magnitude of 1: the
    /// outputs' own change along `d`, as a projection. The step `s` is `h`, or smaller where
    /// that leaves the function's domain; `None` where no change is finite and nonzero.
    pub(super) fn output_change(
        &self,
        inputs: &[Tensor],
        k: usize,
        d: &[f32],
        h: f32,
    ) -> Result<Option<Tensor>> {
        let mut xs = inputs.to_vec();
        let mut s = h;
        for _ in 0..ATTEMPTS {
            let mut moved = |sign: f32| -> Result<Tensor> {
                let x = &inputs[k];
                let v = x.data().iter().zip(d).map(|(&a, &b)| a + sign * s * b);
                xs[k] = Tensor::from_vec(v.collect(), x.shape().clone())?;
                self.output(&xs)
            };
            let (plus, minus) = (moved(1.0)?, moved(-1.0)?);
            let change: Vec<f32> = plus
                .data()
                .iter()
                .zip(minus.data())
                .map(|(a, b)| a - b)
                .collect();
            let largest = change.iter().fold(0.0f32, |m, c| m.max(c.abs()));
            if change.iter().all(|c| c.is_finite()) && largest > 0.0 && largest.is_finite() {
                let r = change.iter().map(|c| c / largest).collect();
                return Ok(Some(Tensor::from_vec(r, plus.shape().clone())?));
            }
            s /= 8.0;
        }
        Ok(None)
    }

    /// `(L(x+) - L(x-), noise)`: the difference of the projections, summed in f64 over the
    /// elements that changed (the others are equal bit for bit and cancel), and the rounding
    /// noise expected in it. An output's rounding is that of the largest values met on the way
    /// to it: its own, or the terms it was summed from when they cancel (a mean of values of
    /// both signs is small, its partial sums are not). When no output changed at all, the
    /// difference is 0 up to the outputs' resolution: half a unit in the last place of each.
    fn difference(&self, plus: &Tensor, minus: &Tensor) -> (f64, f64) {
        let (mut diff, mut magnitude) = (0.0f64, 0.0f64);
        let outputs = plus.data().iter().zip(minus.data());
        for (((&a, &b), &r), &terms) in outputs.zip(self.r.data()).zip(self.terms) {
            if a.to_bits() != b.to_bits() {
                diff += (a as f64 - b as f64) * r as f64;
                let own = a.abs() as f64 + b.abs() as f64;
                magnitude += own.max(2.0 * terms) * r.abs() as f64;
            }
        }
        if magnitude > 0.0 {
            return (diff, NOISE_ULPS * f32::EPSILON as f64 * magnitude);
        }
        let resolution: f64 = plus
            .data()
            .iter()
            .zip(self.r.data())
            .map(|(&a, &r)| 0.5 * f32::EPSILON as f64 * a.abs() as f64 * r.abs() as f64)
            .sum();
        (diff, resolution)
    }
}

/// Per output element `y_o`, the magnitude of the terms it was computed from: the largest, over
/// the ops on the way to it and each of their inputs `v`, of `sum_e |dy_o/dop * dop/dv_e| |v_e|`
/// (from one backward pass per output element, with the trace of what each rule sent to each
/// input). For a sum that is the sum of its terms' magnitudes (so a mean of values of both signs
/// that cancel still carries the rounding of its partial sums), for a product the product's own
/// magnitude. Each op counts with its own inputs, not the whole chain back to `x`: a batch norm
/// is invariant to its input's scale, and the leaves' `|dy/dx| |x|` would overstate it.
pub(super) fn output_terms<F>(f: &F, inputs: &[Tensor]) -> Result<Vec<f64>>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let out = f(&tape, &vars)?;
    let (shape, m) = (out.shape(), out.shape().numel());
    let traced = BackwardOptions {
        retain_graph: true,
        trace: true,
        ..Default::default()
    };
    let mut terms = vec![0.0f64; m];
    let mut seed = vec![0.0f32; m];
    for (o, t) in terms.iter_mut().enumerate() {
        seed[o] = 1.0;
        let grads =
            out.backward_with_options(Tensor::from_vec(seed.clone(), shape.clone())?, traced)?;
        seed[o] = 0.0;
        let Some(trace) = grads.trace() else { continue };
        let nodes = tape.nodes.borrow();
        for step in &trace.steps {
            for (input, sent) in step.inputs.iter().zip(&step.sent) {
                let (Some(g), Some(v)) = (sent, &nodes[input.index()].value) else {
                    continue;
                };
                let size: f64 = g
                    .data()
                    .iter()
                    .zip(v.data())
                    .map(|(&g, &v)| (g as f64 * v as f64).abs())
                    .sum();
                *t = t.max(size);
            }
        }
    }
    Ok(terms)
}

/// Rounding error assumed per output element that changed, in units of f32's epsilon relative
/// to its magnitude: an output is the end of a chain of f32 operations (a sum over a window, a
/// normalisation). Over the 10,044 random cases of the mutation test of the rules, the largest
/// error of a correct rule was a quarter of the tolerance this gives.
const NOISE_ULPS: f64 = 4.0;

/// One derivative checked: the analytic and numeric values of `g . d` (per unit step), the
/// estimated error of the numeric one, and the analytic magnitude for the tolerance.
pub(super) struct Check {
    pub(super) analytic: f64,
    pub(super) numeric: f64,
    pub(super) error: f64,
}

/// The smallest scale of an element's steps. An input of one small value (a scalar 0.05)
/// would otherwise step by 0.005: the rounding noise over so short a step hides a rule wrong by
/// 0.1% (`exp`, `sigmoid`, `softplus` at small scalars, in the mutation test of the rules).
const MIN_SCALE: f32 = 0.5;

/// The scale of each element for the steps: its magnitude, or the input's root mean square
/// where that is larger (so a zero element steps like its neighbours), and at least
/// [`MIN_SCALE`]; 1 for an input of zeros.
pub(super) fn element_scales(x: &Tensor) -> Vec<f32> {
    let n = x.numel().max(1) as f64;
    let rms = (x.data().iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n).sqrt() as f32;
    let floor = if rms > 0.0 && rms.is_finite() {
        rms.max(MIN_SCALE)
    } else {
        1.0
    };
    x.data().iter().map(|v| v.abs().max(floor)).collect()
}

/// `d` rescaled to the Euclidean norm of `like` (both nonzero), or `like` if `d` is all zeros.
pub(super) fn normalised_like(d: &[f32], like: &[f32]) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let (nd, nl) = (norm(d), norm(like));
    if nd == 0.0 || !nd.is_finite() {
        return like.to_vec();
    }
    d.iter().map(|&x| (x as f64 * nl / nd) as f32).collect()
}

/// Steps tried: `step`, `step / 8`, `step / 64`, `step / 512`.
const ATTEMPTS: usize = 4;

/// The derivative of `L` along `d` for input `k`, numeric (extrapolated central differences)
/// against analytic (`g . d`).
///
/// An estimate is trusted once the next step, 8 times smaller, agrees with it within their
/// estimated errors: a kink of `relu` or `max` within the larger step, or a step leaving the
/// function's domain, makes them disagree (extrapolation does not remove a kink, and its own
/// error estimate does not see one), and the smaller step is then compared with the next.
pub(super) fn check_along<F>(
    loss: &Loss<'_, F>,
    inputs: &[Tensor],
    k: usize,
    g: &Tensor,
    d: &[f32],
    opts: GradcheckOptions,
) -> Result<Check>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    let x = &inputs[k];
    let analytic: f64 = g
        .data()
        .iter()
        .zip(d)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    let mut prev: Option<Attempt> = None;
    let mut h = opts.step;
    for _ in 0..ATTEMPTS {
        let cur = extrapolate(loss, inputs, k, x, g, d, h)?;
        if let (Some(p), Some(c)) = (prev, cur) {
            let apart = (p.gap - c.gap).abs();
            if apart <= opts.safety as f64 * (p.error + c.error) {
                return Ok(Check {
                    analytic,
                    numeric: analytic + p.gap,
                    error: p.error.max(apart),
                });
            }
        }
        if cur.is_some() {
            prev = cur;
        }
        h /= 8.0;
    }
    // No two steps agreed: the smallest finite one, with a tolerance as wide as the
    // disagreement seen (or no estimate at all: the check fails).
    Ok(match prev {
        Some(p) => Check {
            analytic,
            numeric: analytic + p.gap,
            error: p.error.max(p.gap.abs()),
        },
        None => Check {
            analytic,
            numeric: f64::NAN,
            error: f64::NAN,
        },
    })
}

/// One extrapolation: `numeric - analytic` and its estimated error.
#[derive(Clone, Copy)]
struct Attempt {
    gap: f64,
    error: f64,
}

/// Richardson extrapolation of `D(s) = (L(x + s d) - L(x - s d)) / 2s - g . (x+ - x-) / 2s`
/// over `s = h, h/2, h/4`: the numeric derivative minus the analytic prediction for the steps
/// actually taken, which tends to `numeric - analytic` as `s -> 0`. `None` if an evaluation
/// was not finite (the step left the function's domain).
#[allow(clippy::too_many_arguments)]
fn extrapolate<F>(
    loss: &Loss<'_, F>,
    inputs: &[Tensor],
    k: usize,
    x: &Tensor,
    g: &Tensor,
    d: &[f32],
    h: f32,
) -> Result<Option<Attempt>>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    let mut xs = inputs.to_vec();
    let mut gap = [0.0f64; 3];
    let mut noise = [0.0f64; 3];
    for (j, s) in [h, h / 2.0, h / 4.0].into_iter().enumerate() {
        let moved = |sign: f32| -> Result<Tensor> {
            let v: Vec<f32> = x
                .data()
                .iter()
                .zip(d)
                .map(|(&a, &b)| a + sign * s * b)
                .collect();
            Tensor::from_vec(v, x.shape().clone())
        };
        let (plus, minus) = (moved(1.0)?, moved(-1.0)?);
        xs[k] = plus.clone();
        let yp = loss.output(&xs)?;
        xs[k] = minus.clone();
        let ym = loss.output(&xs)?;
        if !yp.data().iter().chain(ym.data()).all(|v| v.is_finite()) {
            return Ok(None);
        }
        let (diff, n) = loss.difference(&yp, &ym);
        // The analytic change for the inputs as stored (each rounded to f32).
        let predicted: f64 = g
            .data()
            .iter()
            .zip(plus.data().iter().zip(minus.data()))
            .map(|(&gi, (&p, &m))| gi as f64 * (p as f64 - m as f64))
            .sum();
        let two_s = 2.0 * s as f64;
        gap[j] = (diff - predicted) / two_s;
        noise[j] = n / two_s;
    }
    // Two rounds of Richardson: the h^2 terms, then the h^4 terms, cancel.
    let r1 = [(4.0 * gap[1] - gap[0]) / 3.0, (4.0 * gap[2] - gap[1]) / 3.0];
    let r2 = (16.0 * r1[1] - r1[0]) / 15.0;
    // The noise of each difference enters with the weights of r2 = (64 D2 - 20 D1 + D0) / 45.
    let carried = (noise[0] + 20.0 * noise[1] + 64.0 * noise[2]) / 45.0;
    let error = (r2 - r1[1]).abs() + carried;
    Ok((r2.is_finite() && error.is_finite()).then_some(Attempt { gap: r2, error }))
}
