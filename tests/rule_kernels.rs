//! The primitives whose forward is a fast kernel that other rules call: `spread_max_grad` (the
//! max rule's), `matmul_t_sum_batch` (a broadcast weight's gradient) and batch norm's fused
//! gradients. Each is checked against finite differences, and a first-order backward and a
//! recorded one (`create_graph`) give the same bits, since both run the same kernels.

mod common;

use common::*;
use proptest::prelude::*;
use tapegrad::autograd::{grad, Conv2dOptions};
use tapegrad::prelude::*;

/// A tensor of `dims` with values from -2 to 2 in steps of 1: ties are common.
fn ties_of(dims: Vec<usize>) -> impl Strategy<Value = Tensor> {
    let n = dims.iter().product::<usize>();
    prop::collection::vec(-2i32..=2, n).prop_map(move |v| {
        Tensor::from_vec(v.into_iter().map(|i| i as f32).collect(), dims.clone()).unwrap()
    })
}

/// A shape of rank 1 to 4, values with ties, and a subset of its axes.
fn ties_and_axes() -> impl Strategy<Value = (Tensor, Vec<isize>)> {
    dims(1, 4).prop_flat_map(|d| {
        let r = d.len() as isize;
        (
            ties_of(d),
            prop::sample::subsequence((0..r).collect::<Vec<_>>(), 0..=r as usize),
        )
    })
}

fn tr(t: bool) -> Transpose {
    if t {
        Transpose::Yes
    } else {
        Transpose::No
    }
}

/// `[batch.., r, c]`, or `[batch.., c, r]` when transposed.
fn matrix_dims(batch: &[usize], r: usize, c: usize, t: bool) -> Vec<usize> {
    let mut d = batch.to_vec();
    d.extend(if t { [c, r] } else { [r, c] });
    d
}

/// Gradients of `sum(f(vars) * r)` from a plain backward and from a recorded one.
fn both_backwards(
    f: impl for<'t> Fn(&[Var<'t>]) -> Result<Var<'t>>,
    inputs: &[Tensor],
) -> [Vec<Tensor>; 2] {
    [false, true].map(|create| {
        let tape = Tape::new();
        let vars: Vec<Var> = inputs.iter().map(|t| tape.var(t.clone())).collect();
        let y = f(&vars).unwrap();
        let r = tape.input(Tensor::randn(y.shape(), &mut rng(9)));
        let loss = y.mul(r).unwrap().sum_all();
        grad(&[loss], &vars, create)
            .unwrap()
            .into_iter()
            .map(|g| g.value())
            .collect()
    })
}

/// Each tensor with the same bits as its partner, NaN included.
fn all_same_bits(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_bits(a, b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn spread_max_grad_matches_finite_differences((x, axes) in ties_and_axes(), seed in 0u64..1000) {
        let max = x.max(&axes, true).unwrap();
        let g = Tensor::randn(max.shape().clone(), &mut rng(seed));
        let (x2, axes2) = (x.clone(), axes.clone());
        check(
            move |_, v| v[0].spread_max_grad(&x2, &max, &axes2),
            &[g],
        )?;
    }

    #[test]
    fn matmul_t_sum_batch_matches_finite_differences(
        (batch, m, k, n) in (dims(1, 2), 1usize..5, 1usize..5, 1usize..5),
        ta in any::<bool>(),
        tb in any::<bool>(),
        a_batched in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let mut g = rng(seed);
        // The left operand carries the batch or one item of it (broadcast).
        let a_batch: Vec<usize> = if a_batched { batch.clone() } else { vec![1; batch.len()] };
        let a = Tensor::randn(matrix_dims(&a_batch, m, k, ta).as_slice(), &mut g);
        let b = Tensor::randn(matrix_dims(&batch, k, n, tb).as_slice(), &mut g);
        check(
            move |_, v| v[0].matmul_t_sum_batch(v[1], tr(ta), tr(tb)),
            &[a, b],
        )?;
    }

    #[test]
    fn max_gradients_are_the_same_recorded_or_not((x, axes) in ties_and_axes()) {
        let axes2 = axes.clone();
        let [plain, recorded] = both_backwards(move |v| v[0].max(&axes2, false), &[x]);
        prop_assert!(all_same_bits(&plain, &recorded));
    }
}

#[test]
fn broadcast_weight_and_batch_norm_gradients_are_the_same_recorded_or_not() {
    let mut g = rng(5);
    // A convolution's weight (broadcast over the batch: the batch-summed product), a linear
    // layer over a [B, T, in] batch, and training batch norm's fused gradients.
    let x = Tensor::randn([5, 3, 9, 9], &mut g);
    let w = Tensor::randn([4, 3, 3, 3], &mut g);
    let [a, b] = both_backwards(
        |v| v[0].conv2d(v[1], None, Conv2dOptions::default().padding(1)),
        &[x.clone(), w],
    );
    assert!(all_same_bits(&a, &b));
    let (xs, ws) = (
        Tensor::randn([4, 6, 7], &mut g),
        Tensor::randn([5, 7], &mut g),
    );
    let [a, b] = both_backwards(
        |v| v[0].matmul_t(v[1], Transpose::No, Transpose::Yes),
        &[xs, ws],
    );
    assert!(all_same_bits(&a, &b));
    let (wn, bn) = (Tensor::randn([3], &mut g), Tensor::randn([3], &mut g));
    let [a, b] = both_backwards(
        |v| v[0].batch_norm(None, Some(v[1]), Some(v[2]), true, 1e-5),
        &[x, wn, bn],
    );
    assert!(all_same_bits(&a, &b));
}

/// The second derivative through `max`: the gradient of `sum(max(x * w) * r)` with respect to
/// `x` is `w` times the spread gradient, whose derivative in `w` is the spread itself.
#[test]
fn max_has_second_derivatives_through_its_spread() {
    // Distinct values, so no tie sits at a finite-difference step's reach.
    let x = Tensor::from_vec(
        (0..24)
            .map(|i| ((i * 7) % 24) as f32 * 0.25 - 3.0)
            .collect(),
        [2, 3, 4],
    )
    .unwrap();
    let w = Tensor::from_vec(vec![1.5, 0.75, 2.0, 1.25], [4]).unwrap();
    let r = Tensor::randn([2, 4], &mut rng(3));
    let c = Tensor::randn([2, 3, 4], &mut rng(4));
    let report = gradcheck(
        move |tape, v| {
            let y = v[0].mul(v[1])?.max(&[1], false)?;
            let loss = y.mul(tape.input(r.clone()))?.sum_all();
            let dx = grad(&[loss], &[v[0]], true)?[0];
            Ok(dx.mul(tape.input(c.clone()))?.sum_all())
        },
        &[x, w],
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}
