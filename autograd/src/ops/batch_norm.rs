//! Batch norm in training mode as one node with fused kernels.
//!
//! Batch norm is a composition (see `norm.rs`), and in evaluation mode it stays one. In training
//! its composition makes a dozen passes over every activation, forward and backward: 9% of a
//! ResNet-18 training step (batch 8) was batch norm's elementwise ops and reductions. Here the
//! forward is two reading passes (the statistics) and one writing pass, and the chain rule
//!
//! ```text
//! xhat = (x - mean) / sqrt(var + eps),   g = dL/dy
//! dL/dbias   = sum(g)                  dL/dweight = sum(g xhat)        (per channel)
//! dL/dx      = weight / sqrt(var + eps) * (g - mean(g) - xhat mean(g xhat))
//! ```
//!
//! two reading passes and one writing pass. Each gradient is recorded through
//! [`Tape::record_fused`](crate::Tape::record_fused) as the composition it equals (written
//! below in var ops of x, the gradient and the weight): a first-order backward runs the kernels
//! alone, a recorded one (`create_graph`) the same kernels, and second-order gradients come from
//! differentiating the composition. Tests check values and gradients against the composition.

use crate::error::{Error, Result};
use crate::grads;
use crate::ops::norm::{check_stats, RunningStats};
use crate::ops::present;
use crate::tape::{InputGrads, Reads, Var};
use crate::tensor::Tensor;

op!(BATCH_NORM_TRAIN = "batch_norm", "x: weight / sqrt(var + eps) * (grad - mean(grad) - xhat * mean(grad * xhat)); weight: sum(grad * xhat); bias: sum(grad)");
op!(
    BATCH_NORM_INPUT_GRAD = "batch_norm_input_grad",
    "the gradient of weight / sqrt(var + eps) * (grad - mean(grad) - xhat * mean(grad * xhat))"
);
op!(
    BATCH_NORM_WEIGHT_GRAD = "batch_norm_weight_grad",
    "the gradient of sum(grad * xhat)"
);
op!(
    BATCH_NORM_BIAS_GRAD = "batch_norm_bias_grad",
    "the gradient of sum(grad)"
);

impl<'t> Var<'t> {
    /// Training-mode batch norm, for validated weight and bias (see [`Var::batch_norm`]).
    pub(crate) fn batch_norm_train(
        self,
        running: Option<RunningStats<'_>>,
        weight: Option<Var<'t>>,
        bias: Option<Var<'t>>,
        eps: f32,
    ) -> Result<Var<'t>> {
        let s = self.shape();
        let c = s.dim(1);
        let count = s.numel() / c.max(1);
        if count < 2 {
            return Err(Error::invalid(
                "batch_norm",
                format!("training needs more than one value per channel, got input {s}"),
            ));
        }
        let x = self.value();
        let (mean, var) = x.channel_mean_var();
        if let Some(r) = &running {
            check_stats(&s, c, r.mean, r.var)?;
        }
        // The running statistics are updated once the op is recorded, so that a call that
        // fails (inputs on another tape) leaves them as they were.
        let update = |r: RunningStats<'_>, mean: &[f32], var: &[f32]| {
            let m = r.momentum;
            let unbiased = count as f32 / (count - 1) as f32;
            for (rm, &bm) in r.mean.data_mut().iter_mut().zip(mean) {
                *rm = (1.0 - m) * *rm + m * bm;
            }
            for (rv, &bv) in r.var.data_mut().iter_mut().zip(var) {
                *rv = (1.0 - m) * *rv + m * bv * unbiased;
            }
        };
        let stats = running.is_some().then(|| (mean.clone(), var.clone()));
        let inv_std: Vec<f32> = var.iter().map(|&v| (v + eps).powf(-0.5)).collect();
        let per_channel = |v: Option<Var<'t>>, default: f32| -> Vec<f32> {
            v.map_or_else(|| vec![default; c], |v| v.value().to_vec())
        };
        // inv_std * weight: the forward's scale, and the backward's factor on the gradient.
        let weights = per_channel(weight, 1.0);
        let scale: Vec<f32> = inv_std.iter().zip(&weights).map(|(i, w)| i * w).collect();
        let y = x.channel_affine(&mean, &scale, &per_channel(bias, 0.0));
        let inputs = present([Some(self), weight, bias]);
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let out = self.tape().record_reading(
            BATCH_NORM_TRAIN,
            &inputs,
            y,
            Reads::ALL_INPUTS,
            move |ctx| {
                let (x, g) = (ctx.input(0), ctx.grad());
                let (xv, gv) = (x.value(), g.value());
                let (sum_g, sum_gx) = xv.channel_grad_sums(&gv, &mean, &inv_std);
                let m = count as f32;
                let p = &scale;
                let q: Vec<f32> = p.iter().zip(&sum_g).map(|(p, s)| -p * s / m).collect();
                let r: Vec<f32> = (0..p.len())
                    .map(|i| -p[i] * sum_gx[i] * inv_std[i] / m)
                    .collect();
                // Each gradient is a fused kernel's value recorded as the composition it
                // equals, which a recorded backward differentiates.
                let tape = ctx.tape();
                let dx = if ctx.needs(0) {
                    let value = xv.channel_grad_input(&gv, &mean, p, &r, &q);
                    let inputs = if has_w {
                        vec![x, g, ctx.input(1)]
                    } else {
                        vec![x, g]
                    };
                    Some(
                        tape.record_fused(BATCH_NORM_INPUT_GRAD, &inputs, value, move |v| {
                            input_grad(v[0], v[1], v.get(2).copied(), eps)
                        })?,
                    )
                } else {
                    None
                };
                let per_channel = |v: Vec<f32>| Tensor::from_slice(&v);
                let mut out: InputGrads<'_> = grads![dx];
                if has_w {
                    let value = per_channel(sum_gx);
                    out.push(Some(tape.record_fused(
                        BATCH_NORM_WEIGHT_GRAD,
                        &[x, g],
                        value,
                        move |v| weight_grad(v[0], v[1], eps),
                    )?));
                }
                if has_b {
                    let value = per_channel(sum_g);
                    out.push(Some(tape.record_fused(
                        BATCH_NORM_BIAS_GRAD,
                        &[g],
                        value,
                        |v| v[0].sum(&channel_axes(v[0].rank()), false),
                    )?));
                }
                Ok(out)
            },
        )?;
        // The running statistics change only once the op is recorded: a refused call (inputs
        // on two tapes) leaves them as they were.
        if let (Some(r), Some((mean, var))) = (running, stats) {
            update(r, &mean, &var);
        }
        Ok(out)
    }
}

/// Every axis but the channels' (1).
fn channel_axes(rank: usize) -> Vec<isize> {
    (0..rank as isize).filter(|&a| a != 1).collect()
}

/// `xhat = (x - mean) / sqrt(var + eps)` and `1 / sqrt(var + eps)`, in var ops of `x`.
fn normalised<'a>(x: Var<'a>, eps: f32) -> Result<(Var<'a>, Var<'a>)> {
    let axes = channel_axes(x.rank());
    let centred = x.sub(x.mean(&axes, true)?)?;
    let inv_std = centred
        .square()
        .mean(&axes, true)?
        .add_scalar(eps)
        .powf(-0.5);
    Ok((centred.mul(inv_std)?, inv_std))
}

/// `dL/dx = weight / sqrt(var + eps) * (g - mean(g) - xhat mean(g xhat))`, in var ops of `x`,
/// `g` and `weight` (per channel), so that a recorded backward differentiates it.
fn input_grad<'a>(x: Var<'a>, g: Var<'a>, weight: Option<Var<'a>>, eps: f32) -> Result<Var<'a>> {
    let s = x.shape();
    let axes = channel_axes(s.rank());
    let (xhat, inv_std) = normalised(x, eps)?;
    let gw = match weight {
        Some(w) => {
            let mut stat_shape = vec![1; s.rank()];
            stat_shape[1] = s.dim(1);
            g.mul(w.reshape(stat_shape)?)?
        }
        None => g,
    };
    gw.sub(gw.mean(&axes, true)?)?
        .sub(xhat.mul(gw.mul(xhat)?.mean(&axes, true)?)?)?
        .mul(inv_std)
}

/// `dL/dweight = sum(g xhat)` per channel, in var ops of `x` and `g`.
fn weight_grad<'a>(x: Var<'a>, g: Var<'a>, eps: f32) -> Result<Var<'a>> {
    let (xhat, _) = normalised(x, eps)?;
    g.mul(xhat)?.sum(&channel_axes(x.rank()), false)
}

#[cfg(test)]
mod tests {
    use crate::tape::{BackwardOptions, Tape};
    use crate::tensor::{rng, Tensor};
    use crate::RunningStats;

    /// Output, running statistics and the gradients of `sum(y * r)` (and, with `second`, of
    /// `sum(dx^2)`, through a recorded backward) for x, weight and bias, by the fused node
    /// (`fused`) or by the composition.
    fn run(x: &Tensor, affine: bool, fused: bool, second: bool) -> Vec<Tensor> {
        let c = x.dims()[1];
        let mut g = rng(3);
        let (w, b) = (Tensor::randn([c], &mut g), Tensor::randn([c], &mut g));
        let r = Tensor::randn(x.shape().clone(), &mut g);
        let (mut mean, mut var) = (Tensor::zeros([c]), Tensor::ones([c]));
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let (wv, bv) = (tape.var(w), tape.var(b));
        let (wo, bo) = if affine {
            (Some(wv), Some(bv))
        } else {
            (None, None)
        };
        let stats = RunningStats {
            mean: &mut mean,
            var: &mut var,
            momentum: 0.1,
        };
        let y = if fused {
            xv.batch_norm_train(Some(stats), wo, bo, 1e-5).unwrap()
        } else {
            xv.batch_norm_composition(Some(stats), wo, bo, true, 1e-5)
                .unwrap()
        };
        let loss = y.mul(tape.input(r)).unwrap().sum(&[], false).unwrap();
        let opts = BackwardOptions {
            create_graph: second,
            ..Default::default()
        };
        let grads = loss
            .backward_with_options(Tensor::scalar(1.0), opts)
            .unwrap();
        let mut out = vec![y.value()];
        if second {
            // d/dx of sum(dx^2): the gradient of a gradient.
            let dx = grads.var(xv).unwrap();
            let gg = dx.square().sum(&[], false).unwrap().backward().unwrap();
            out.push(gg.get(xv).unwrap());
            if affine {
                out.push(gg.get(wv).unwrap());
            }
        } else {
            out.push(grads.get(xv).unwrap());
            if affine {
                out.push(grads.get(wv).unwrap());
                out.push(grads.get(bv).unwrap());
            }
        }
        drop(tape);
        out.push(mean);
        out.push(var);
        out
    }

    fn agree(x: &Tensor, affine: bool, second: bool) {
        let fused = run(x, affine, true, second);
        let composed = run(x, affine, false, second);
        for (i, (f, c)) in fused.iter().zip(&composed).enumerate() {
            assert_eq!(f.shape(), c.shape());
            assert!(
                f.allclose(c, 1e-4, 1e-3),
                "result {i} of {} (affine {affine}, second order {second}): {f} vs {c}",
                x.shape()
            );
        }
    }

    #[test]
    fn fused_training_batch_norm_matches_its_composition() {
        let mut g = rng(1);
        // Rank 2 (BatchNorm1d), 3 and 4; a shifted mean; one large enough for threads.
        for dims in [
            vec![6, 3],
            vec![4, 5, 7],
            vec![3, 4, 5, 6],
            vec![4, 16, 24, 24],
        ] {
            let x = Tensor::randn(dims.as_slice(), &mut g).add_scalar(3.0);
            for affine in [true, false] {
                agree(&x, affine, false);
            }
        }
    }

    #[test]
    fn fused_training_batch_norm_has_the_composition_second_derivatives() {
        let x = Tensor::randn([3, 4, 5, 5], &mut rng(2));
        agree(&x, true, true);
        agree(&x, false, true);
    }

    /// Evaluation with nothing to differentiate runs one pass, with the composition's bits
    /// (ranks 2 to 4, with and without a weight, threads or not); with a gradient wanted it is
    /// the composition.
    #[test]
    fn evaluation_in_one_pass_is_the_composition() {
        let mut g = rng(4);
        for dims in [
            vec![6, 3],
            vec![4, 5, 7],
            vec![3, 4, 5, 6],
            vec![4, 16, 24, 24],
        ] {
            let c = dims[1];
            let x = Tensor::randn(dims.as_slice(), &mut g).add_scalar(0.5);
            let (w, b) = (Tensor::randn([c], &mut g), Tensor::randn([c], &mut g));
            let mean = Tensor::randn([c], &mut g);
            let var = Tensor::rand([c], 0.1, 2.0, &mut g);
            for with_weight in [true, false] {
                let y = |fused: bool, grad: bool| {
                    let tape = Tape::new();
                    let xv = if grad {
                        tape.var(x.clone())
                    } else {
                        tape.input(x.clone())
                    };
                    let wv = with_weight.then(|| tape.input(w.clone()));
                    let bv = Some(tape.input(b.clone()));
                    let (mut m, mut v) = (mean.clone(), var.clone());
                    let stats = RunningStats {
                        mean: &mut m,
                        var: &mut v,
                        momentum: 0.1,
                    };
                    let y = if fused {
                        xv.batch_norm(Some(stats), wv, bv, false, 1e-5)
                    } else {
                        xv.batch_norm_composition(Some(stats), wv, bv, false, 1e-5)
                    };
                    let y = y.unwrap();
                    let dx = grad.then(|| y.sum_all().backward().unwrap().get(xv).unwrap());
                    (y.value(), dx)
                };
                let bits = |t: &Tensor| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                let (one_pass, _) = y(true, false);
                assert_eq!(bits(&one_pass), bits(&y(false, false).0), "{dims:?}");
                let (recorded, dx) = y(true, true);
                assert_eq!(bits(&recorded), bits(&one_pass));
                assert!(dx.is_some(), "a gradient through the composition");
            }
        }
    }

    #[test]
    fn one_value_per_channel_is_an_error() {
        let tape = Tape::new();
        let x = tape.var(Tensor::ones([1, 3]));
        assert!(x.batch_norm(None, None, None, true, 1e-5).is_err());
    }
}
