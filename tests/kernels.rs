//! Fast kernels against their definitions: broadcasting binary ops, `where`, `broadcast_to` and
//! `permute` against per-index loops; the batch-summed matmul against matmul then a sum; the max
//! rule's kernel against its composition; and the
//! gradients a first-order backward takes from fused kernels against the composition a recorded
//! (`create_graph`) backward runs.

mod common;

use common::*;
use proptest::prelude::*;
use tapegrad::autograd::{Conv2dOptions, Window2d};
use tapegrad::prelude::*;

/// Row-major multi-index of flat position `i` in `dims`.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for ax in (0..dims.len()).rev() {
        idx[ax] = i % dims[ax];
        i /= dims[ax];
    }
    idx
}

/// The element of `t` that position `idx` of the broadcast shape reads (trailing alignment,
/// size-1 axes repeated).
fn broadcast_get(t: &Tensor, idx: &[usize]) -> f32 {
    let off = idx.len() - t.rank();
    let own: Vec<usize> = t
        .dims()
        .iter()
        .enumerate()
        .map(|(ax, &d)| if d == 1 { 0 } else { idx[off + ax] })
        .collect();
    t.get(&own).unwrap()
}

/// `a op b` checked element by element against `f` on the broadcast operands.
fn check_binary(a: &Tensor, b: &Tensor) -> Result<(), TestCaseError> {
    let sum = a.add(b).unwrap();
    let prod = a.mul(b).unwrap();
    let diff = b.sub(a).unwrap();
    for i in 0..sum.numel() {
        let idx = unravel(i, sum.dims());
        let (x, y) = (broadcast_get(a, &idx), broadcast_get(b, &idx));
        prop_assert_eq!(sum.data()[i], x + y);
        prop_assert_eq!(prod.data()[i], x * y);
        prop_assert_eq!(diff.data()[i], y - x);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn broadcast_binary_ops_match_per_index_loops(
        (a, b) in broadcast_pair(5).prop_flat_map(|(a, b)| {
            (tensor_of(a, -2.0, 2.0), tensor_of(b, -2.0, 2.0))
        })
    ) {
        check_binary(&a, &b)?;
    }

    #[test]
    fn where_matches_per_index_choice(
        (m, a, b) in broadcast_shapes(3, 4).prop_flat_map(|s| {
            (
                tensor_of(s[0].clone(), -1.0, 1.0),
                tensor_of(s[1].clone(), -2.0, 2.0),
                tensor_of(s[2].clone(), -2.0, 2.0),
            )
        })
    ) {
        let m = m.gt(&Tensor::scalar(0.0)).unwrap();
        let r = Tensor::where_cond(&m, &a, &b).unwrap();
        for i in 0..r.numel() {
            let idx = unravel(i, r.dims());
            let want = if broadcast_get(&m, &idx) != 0.0 {
                broadcast_get(&a, &idx)
            } else {
                broadcast_get(&b, &idx)
            };
            prop_assert_eq!(r.data()[i], want);
        }
    }

    #[test]
    fn broadcast_to_and_permute_copy_the_right_elements(
        (small, big) in broadcastable_to(5),
        seed in 0u64..1000,
    ) {
        let t = Tensor::randn(small.as_slice(), &mut rng(seed));
        let b = t.broadcast_to(Shape::new(&big)).unwrap();
        for i in 0..b.numel() {
            prop_assert_eq!(b.data()[i], broadcast_get(&t, &unravel(i, &big)));
        }
        // Reversing the axes of the broadcast result.
        let perm: Vec<usize> = (0..big.len()).rev().collect();
        let p = b.permute(&perm).unwrap();
        for i in 0..p.numel() {
            let idx = unravel(i, p.dims());
            let src: Vec<usize> = idx.iter().rev().copied().collect();
            prop_assert_eq!(p.data()[i], b.get(&src).unwrap());
        }
    }

    #[test]
    fn batch_summed_matmul_is_matmul_then_sum(
        (batch, m, k, n) in (dims(1, 3), 1usize..6, 1usize..6, 1usize..6),
        ta in any::<bool>(),
        tb in any::<bool>(),
        a_batched in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let tr = |t: bool| if t { Transpose::Yes } else { Transpose::No };
        let shape = |batch: &[usize], r: usize, c: usize, t: bool| {
            let mut d = batch.to_vec();
            d.extend(if t { [c, r] } else { [r, c] });
            d
        };
        let mut g = rng(seed);
        // One operand carries the batch, the other is a single matrix or the batch too.
        let a_batch: &[usize] = if a_batched { &batch } else { &batch[batch.len() - 1..] };
        let a = Tensor::randn(shape(a_batch, m, k, ta).as_slice(), &mut g);
        let b = Tensor::randn(shape(&batch, k, n, tb).as_slice(), &mut g);
        let full = a.matmul_t(&b, tr(ta), tr(tb)).unwrap();
        let axes: Vec<isize> = (0..batch.len() as isize).collect();
        let want = full.sum(&axes, false).unwrap();
        let got = a.matmul_t_sum_batch(&b, tr(ta), tr(tb)).unwrap();
        prop_assert_eq!(got.dims(), &[m, n]);
        prop_assert!(got.allclose(&want, 1e-4, 1e-4), "{got} vs {want}");
    }
}

/// The max rule as the composition of broadcasting kernels it is defined by.
fn max_rule_composed(x: &Tensor, max: &Tensor, g: &Tensor, axes: &[isize]) -> Tensor {
    let hits = x.eq_mask(max).unwrap();
    let weight = hits.div(&hits.sum(axes, true).unwrap()).unwrap();
    g.broadcast_to(x.shape()).unwrap().mul(&weight).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn max_backward_kernel_equals_its_composition(
        (x, axes) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            // Few distinct values, so ties are common.
            let x = prop::collection::vec(-2i32..=2, d.iter().product::<usize>())
                .prop_map(move |v| {
                    Tensor::from_vec(v.into_iter().map(|i| i as f32).collect(), d.clone())
                        .unwrap()
                });
            (x, prop::sample::subsequence((0..r as isize).collect::<Vec<_>>(), 0..=r))
        }),
        seed in 0u64..1000,
    ) {
        let max = x.max(&axes, true).unwrap();
        let g = Tensor::randn(max.shape().clone(), &mut rng(seed));
        let got = x.max_backward(&max, &g, &axes).unwrap();
        prop_assert!(same_bits(&got, &max_rule_composed(&x, &max, &g, &axes)));
    }
}

#[test]
fn max_backward_on_pooling_windows_and_nan() {
    let mut g = rng(6);
    // Max pooling's windows ([N*C, kh*kw, L], reduced over axis 1), large enough for threads.
    let x = Tensor::randn([96, 9, 400], &mut g);
    let max = x.max(&[1], true).unwrap();
    let grad = Tensor::randn(max.shape().clone(), &mut g);
    let got = x.max_backward(&max, &grad, &[1]).unwrap();
    assert!(same_bits(&got, &max_rule_composed(&x, &max, &grad, &[1])));
    // A NaN wins its group and matches nothing: the group's gradient is NaN, as composed.
    let x = Tensor::from_vec(vec![1.0, f32::NAN, 0.5, 2.0], [2, 2]).unwrap();
    let max = x.max(&[1], true).unwrap();
    let grad = Tensor::ones([2, 1]);
    let got = x.max_backward(&max, &grad, &[1]).unwrap();
    assert!(same_bits(&got, &max_rule_composed(&x, &max, &grad, &[1])));
    assert!(got.data()[0].is_nan() && got.data()[3] == 1.0);
    assert!(x.max_backward(&grad, &Tensor::ones([2]), &[1]).is_err());
}

#[test]
fn large_broadcasts_take_the_parallel_paths() {
    let mut g = rng(3);
    // A conv bias ([C,1,1] over [N,C,H,W]), a row and a column broadcast, a scalar-like [1,1];
    // each output is over the size at which rows are spread over threads.
    for (a, b) in [
        (vec![16, 12, 20, 20], vec![12, 1, 1]),
        (vec![300, 257], vec![257]),
        (vec![300, 257], vec![300, 1]),
        (vec![4, 1, 90, 100], vec![3, 90, 1]),
        (vec![200, 200], vec![1, 1]),
    ] {
        let x = Tensor::randn(a.as_slice(), &mut g);
        let y = Tensor::randn(b.as_slice(), &mut g);
        check_binary(&x, &y).unwrap();
        check_binary(&y, &x).unwrap();
    }
    let t = Tensor::randn([12, 1, 1], &mut g);
    let b = t.broadcast_to(Shape::new(&[16, 12, 20, 20])).unwrap();
    for i in 0..b.numel() {
        assert_eq!(b.data()[i], broadcast_get(&t, &unravel(i, b.dims())));
    }
}

#[test]
fn batch_summed_matmul_on_threads_and_long_inner_dimensions() {
    let mut g = rng(4);
    // A LeNet conv2 weight gradient (split over threads), and an inner dimension above the one
    // at which products may move to the second GEMM library (accumulating through its beta).
    for (a, b, ta, tb) in [
        (
            vec![64, 16, 100],
            vec![64, 150, 100],
            Transpose::No,
            Transpose::Yes,
        ),
        (
            vec![3, 1100, 7],
            vec![3, 1100, 9],
            Transpose::Yes,
            Transpose::No,
        ),
    ] {
        let x = Tensor::randn(a.as_slice(), &mut g);
        let y = Tensor::randn(b.as_slice(), &mut g);
        let want = x.matmul_t(&y, ta, tb).unwrap().sum(&[0], false).unwrap();
        let got = x.matmul_t_sum_batch(&y, ta, tb).unwrap();
        assert!(got.allclose(&want, 1e-3, 1e-3));
    }
    // A short inner dimension with a C of 300 x 250: the batch is packed into one product, in
    // every transpose combination, and with the left operand broadcast over the batch.
    let tr = |t: bool| if t { Transpose::Yes } else { Transpose::No };
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        for a_batch in [3usize, 1] {
            let a_dims = if ta {
                [a_batch, 20, 300]
            } else {
                [a_batch, 300, 20]
            };
            let b_dims = if tb { [3, 250, 20] } else { [3, 20, 250] };
            let x = Tensor::randn(a_dims, &mut g);
            let y = Tensor::randn(b_dims, &mut g);
            let want = x
                .matmul_t(&y, tr(ta), tr(tb))
                .unwrap()
                .sum(&[0], false)
                .unwrap();
            let got = x.matmul_t_sum_batch(&y, tr(ta), tr(tb)).unwrap();
            assert_eq!(got.dims(), &[300, 250]);
            assert!(got.allclose(&want, 1e-3, 1e-3), "transposes {ta} {tb}");
        }
    }
    assert!(Tensor::zeros([2, 3, 4])
        .matmul_t_sum_batch(&Tensor::zeros([2, 5, 4]), Transpose::No, Transpose::No)
        .is_err());
}

/// Gradients of `sum(f(x, w) * r)` for x and w, from a plain backward and from a recorded one.
fn both_backwards(
    f: impl for<'t> Fn(Var<'t>, Var<'t>) -> Result<Var<'t>>,
    x: &Tensor,
    w: &Tensor,
) -> [(Tensor, Tensor); 2] {
    [false, true].map(|create| {
        let tape = Tape::new();
        let (xv, wv) = (tape.var(x.clone()), tape.var(w.clone()));
        let y = f(xv, wv).unwrap();
        let r = tape.input(Tensor::randn(y.shape(), &mut rng(9)));
        let loss = y.mul(r).unwrap().sum(&[], false).unwrap();
        let grads = loss
            .backward_with_options(
                Tensor::scalar(1.0),
                BackwardOptions {
                    create_graph: create,
                    ..Default::default()
                },
            )
            .unwrap();
        (grads.get(xv).unwrap(), grads.get(wv).unwrap())
    })
}

#[test]
fn fused_weight_gradients_equal_the_recorded_composition() {
    let mut g = rng(5);
    // A convolution's weights and a linear layer over a [B, T, in] batch are broadcast over
    // the batch: their first-order gradients come from the batch-summed kernel.
    let x = Tensor::randn([5, 3, 9, 9], &mut g);
    let w = Tensor::randn([4, 3, 3, 3], &mut g);
    fn conv<'t>(x: Var<'t>, w: Var<'t>) -> Result<Var<'t>> {
        x.conv2d(w, None, Conv2dOptions::default().padding(1))
    }
    let [(dx, dw), (dx2, dw2)] = both_backwards(conv, &x, &w);
    assert!(dx.allclose(&dx2, 1e-4, 1e-4) && dw.allclose(&dw2, 1e-4, 1e-4));
    let x = Tensor::randn([4, 6, 7], &mut g);
    let w = Tensor::randn([5, 7], &mut g);
    fn linear<'t>(x: Var<'t>, w: Var<'t>) -> Result<Var<'t>> {
        x.matmul_t(w, Transpose::No, Transpose::Yes)
    }
    let [(dx, dw), (dx2, dw2)] = both_backwards(linear, &x, &w);
    assert!(dx.allclose(&dx2, 1e-4, 1e-4) && dw.allclose(&dw2, 1e-4, 1e-4));
}

/// A chain of large ops (each result big enough for recycled storage).
fn large_ops(x: &Tensor, bias: &Tensor) -> Vec<Tensor> {
    let w = Window2d::conv("test", (64, 64), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
    let cols = x.unfold(&w, 0.0).unwrap();
    let folded = cols.fold(&w).unwrap();
    let y = x.add(bias).unwrap().relu();
    let wide = Tensor::full([x.dims()[0], 24, 64 * 64], 0.5);
    let prod = wide.matmul_t(&cols, Transpose::No, Transpose::Yes).unwrap();
    let max = cols.max(&[1], true).unwrap();
    let max_grad = cols.max_backward(&max, &max.exp(), &[1]).unwrap();
    let empty_k = Tensor::zeros([1100, 0])
        .matmul(&Tensor::zeros([0, 1000]))
        .unwrap();
    vec![
        cols.clone(),
        folded,
        y.clone(),
        y.mul(x).unwrap(),
        bias.broadcast_to(x.shape().clone()).unwrap(),
        x.permute(&[0, 2, 3, 1]).unwrap(),
        prod,
        max,
        max_grad,
        cols.sum(&[2], false).unwrap(),
        empty_k,
        Tensor::zeros([1 << 21]),
    ]
}

#[test]
fn recycled_storage_never_shows_through() {
    let mut g = rng(8);
    let x = Tensor::randn([4, 8, 64, 64], &mut g);
    let bias = Tensor::randn([8, 1, 1], &mut g);
    let first = large_ops(&x, &bias);
    // Different values through the same shapes leave their buffers in the pool...
    let other = large_ops(
        &Tensor::randn([4, 8, 64, 64], &mut g).mul_scalar(-3.0),
        &bias,
    );
    drop(other);
    // Storage of every result's length, full of something no op writes.
    let filled: Vec<Tensor> = first
        .iter()
        .map(|r| Tensor::full(r.shape().clone(), 9.0))
        .collect();
    drop(filled);
    assert!(
        tapegrad::autograd::buffer_pool_stats().0 > 0,
        "large buffers were kept"
    );
    // ...and the same inputs again give the same bits.
    let again = large_ops(&x, &bias);
    for (i, (a, b)) in first.iter().zip(&again).enumerate() {
        assert!(same_bits(a, b), "result {i} changed with recycled storage");
    }
    assert!(again[10].data().iter().all(|&v| v == 0.0));
    assert!(again[11].data().iter().all(|&v| v == 0.0));
}
