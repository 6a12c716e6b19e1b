//! The ops whose forward is a fast kernel that other rules call: the max rule's spread, relu's
//! gate, the batch-summed product of a broadcast weight's gradient, and batch norm's and max
//! pooling's fused gradients (recorded as their composition, so their rules run in a backward of
//! a backward).

use super::gen::*;
use super::{Case, Family};
use rand::Rng as _;
use tapegrad_autograd::{grad, Pool2dOptions, Result, Rng, Tape, Tensor, Transpose, Var};

fn transpose(t: bool) -> Transpose {
    if t {
        Transpose::Yes
    } else {
        Transpose::No
    }
}

pub fn families() -> Vec<Family> {
    vec![
        Family::new("max_grad", |g| {
            // The gradient of a max, spread over the maximum's position in `x` (values from a
            // grid, so ties are common and share it).
            let d = dims(g, 1, 4);
            let ax = axes(g, d.len());
            let x = grid(g, &d, 0.0);
            let max = x.max(&ax, true).expect("axes in range");
            let grad_shape = max.shape().clone();
            Case::new(
                vec![uniform(g, grad_shape.dims(), -2.0, 2.0)],
                move |_, v| v[0].spread_max_grad(&x, &max, &ax),
            )
        }),
        Family::new("pass_where_positive", |g| {
            // relu's gate of a gradient: `of` away from 0 and of both signs, the first positive
            // (an all-closed gate passes 0, which no scaling can change).
            let d = dims(g, 0, 3);
            let mut of = away(g, &d, 0.1, 2.0).to_vec();
            of[0] = of[0].abs();
            let of = Tensor::from_vec(of, d.clone()).expect("its own shape");
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].pass_where_positive(&of)
            })
        }),
        Family::new("matmul_sum_batch", |g| {
            // A batch of products summed: the left operand carries the batch or one item of it.
            let batch = vec![g.gen_range(2..=3)];
            let (m, k, n) = (g.gen_range(1..=4), g.gen_range(1..=4), g.gen_range(1..=4));
            let (ta, tb) = (g.gen_bool(0.5), g.gen_bool(0.5));
            let a_batch = if g.gen_bool(0.5) {
                batch.clone()
            } else {
                vec![1]
            };
            let a = [&a_batch[..], &if ta { [k, m] } else { [m, k] }].concat();
            let b = [&batch[..], &if tb { [n, k] } else { [k, n] }].concat();
            let ins = vec![uniform(g, &a, -2.0, 2.0), uniform(g, &b, -2.0, 2.0)];
            Case::new(ins, move |_, v| {
                v[0].matmul_t_sum_batch(v[1], transpose(ta), transpose(tb))
            })
        }),
        Family::new("max_pool2d_grad", |g| {
            // The input gradient of `sum(max_pool2d(x) * r)`, recorded: a function of x
            // (distinct values, so each window has one maximum) and r.
            let (n, c) = (g.gen_range(1..=2), g.gen_range(1..=2));
            let (h, w) = (g.gen_range(3..=5), g.gen_range(3..=5));
            let k = g.gen_range(2..=3);
            let o = Pool2dOptions::new(k)
                .stride(g.gen_range(1..=2))
                .padding(g.gen_range(0..=k / 2));
            let x = distinct(g, &[n, c, h, w], 0.1);
            let tape = Tape::new();
            let pooled = tape
                .input(x.clone())
                .max_pool2d(o)
                .expect("a valid window")
                .shape();
            let ins = vec![x, uniform(g, pooled.dims(), -1.0, 1.0)];
            Case::new(ins, move |_, v| {
                let loss = v[0].max_pool2d(o)?.mul(v[1])?.sum_all();
                Ok(grad(&[loss], &v[..1], true)?[0])
            })
        }),
        Family::new("batch_norm_input_grad", |g| {
            Case::new(batch_norm_inputs(g), |_, v| batch_norm_grads(v, 0))
        }),
        Family::new("batch_norm_weight_grad", |g| {
            Case::new(batch_norm_inputs(g), |_, v| batch_norm_grads(v, 1))
        }),
        Family::new("batch_norm_bias_grad", |g| {
            Case::new(batch_norm_inputs(g), |_, v| batch_norm_grads(v, 2))
        }),
    ]
}

/// x (spread values, as the batch norm family), weight, bias and the seed of the first
/// backward, `r`.
fn batch_norm_inputs(g: &mut Rng) -> Vec<Tensor> {
    let (n, c) = (g.gen_range(2..=3), g.gen_range(1..=3));
    let (h, w) = (g.gen_range(1..=3), g.gen_range(1..=3));
    vec![
        distinct(g, &[n, c, h, w], 0.5),
        uniform(g, &[c], 0.5, 1.5),
        uniform(g, &[c], -1.0, 1.0),
        uniform(g, &[n, c, h, w], -1.0, 1.0),
    ]
}

/// The gradient of `sum(batch_norm(x) * r)` with respect to input `which` (x, weight or bias),
/// recorded: a function of x, weight, bias and r whose own backward runs that gradient's rule.
fn batch_norm_grads<'t>(v: &[Var<'t>], which: usize) -> Result<Var<'t>> {
    let y = v[0].batch_norm(None, Some(v[1]), Some(v[2]), true, 1e-5)?;
    let loss = y.mul(v[3])?.sum_all();
    Ok(grad(&[loss], &v[..3], true)?[which])
}
