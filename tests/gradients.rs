//! Finite-difference checks of every differentiable op's gradient, on random shapes and values.
//!
//! Each case compares the tape's gradient of `L = sum(f(x) * r)` (random `r`) with central
//! differences (`gradcheck`). Inputs stay where the op is smooth: positive for log and sqrt, away
//! from 0 for the kinks of abs and relu, away from ties for maximum, minimum, max and clamp.

mod common;

use common::*;
use proptest::prelude::*;
use tapegrad::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn smooth_unary_primitives(x in tensor(0, 4, -2.0, 2.0)) {
        // d(-x) = -1, d e^x = e^x, d sigmoid = s(1 - s), d tanh = 1 - tanh^2, d x^2 = 2x.
        check(|_, v| Ok(v[0].neg()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].exp()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].sigmoid()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].tanh()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].square()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(-v[0]), &[x])?;
    }

    #[test]
    fn log_and_sqrt_on_positive_inputs(x in tensor(0, 4, 0.2, 3.0)) {
        // d log x = 1/x, d sqrt x = 1 / (2 sqrt x); both smooth for x >= 0.2.
        check(|_, v| Ok(v[0].log()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].sqrt()), &[x])?;
    }

    #[test]
    fn powf_on_positive_inputs(x in tensor(0, 4, 0.5, 2.0), p in -2.0f32..3.0) {
        // d x^p = p x^(p-1).
        check(move |_, v| Ok(v[0].powf(p)), &[x])?;
    }

    #[test]
    fn kinked_unaries_away_from_zero(
        x in away_from_zero(0, 4),
        slope in 0.01f32..0.3,
        alpha in 0.5f32..2.0,
    ) {
        // |x|' = sign x, relu' = (x > 0), leaky_relu' = 1 or slope, elu' = 1 or alpha e^x.
        check(|_, v| Ok(v[0].abs()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].relu()), std::slice::from_ref(&x))?;
        check(move |_, v| Ok(v[0].leaky_relu(slope)), std::slice::from_ref(&x))?;
        check(move |_, v| Ok(v[0].elu(alpha)), &[x])?;
    }

    #[test]
    fn swish_everywhere(x in tensor(0, 4, -4.0, 4.0)) {
        // swish = x s(x): smooth, derivative s + x s (1 - s).
        check(|_, v| Ok(v[0].swish()), &[x])?;
    }

    #[test]
    fn add_sub_mul_broadcast(
        (a, b) in broadcast_pair(4).prop_flat_map(|(a, b)| {
            (tensor_of(a, -2.0, 2.0), tensor_of(b, -2.0, 2.0))
        })
    ) {
        // The gradient of a broadcast operand is the upstream gradient summed over the
        // broadcast dimensions: d(a+b)/db = sum_to(1), d(a*b)/db = sum_to(a).
        let ins = [a, b];
        check(|_, v| v[0].add(v[1]), &ins)?;
        check(|_, v| v[0].sub(v[1]), &ins)?;
        check(|_, v| v[0].mul(v[1]), &ins)?;
        check(|_, v| Ok(v[0] * v[1] + v[1] - 2.0 * v[0]), &ins)?;
    }

    #[test]
    fn div_broadcast_away_from_zero(
        (a, b) in broadcast_pair(4).prop_flat_map(|(a, b)| {
            (tensor_of(a, -2.0, 2.0), away_from_zero_of(b, 0.5, 2.0))
        })
    ) {
        // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2, both summed to each operand's shape.
        check(|_, v| v[0].div(v[1]), &[a, b])?;
    }

    #[test]
    fn maximum_minimum_broadcast_without_ties(
        (a, b) in broadcast_pair(4).prop_flat_map(|(a, b)| {
            (grid_of(a, 1.0, 0.0, 0.1), grid_of(b, 1.0, 0.5, 0.1))
        })
    ) {
        // The winner of each element gets the whole gradient; the values are >= 0.3 apart.
        let ins = [a, b];
        check(|_, v| v[0].maximum(v[1]), &ins)?;
        check(|_, v| v[0].minimum(v[1]), &ins)?;
    }

    #[test]
    fn where_cond_broadcast(
        (mask, a, b) in broadcast_shapes(3, 4).prop_flat_map(|s| {
            let m = prop::collection::vec(any::<bool>(), s[0].iter().product::<usize>());
            (m.prop_map({
                let d = s[0].clone();
                move |bits| {
                    let v = bits.into_iter().map(|x| x as u8 as f32).collect();
                    Tensor::from_vec(v, d.clone()).unwrap()
                }
            }), tensor_of(s[1].clone(), -2.0, 2.0), tensor_of(s[2].clone(), -2.0, 2.0))
        })
    ) {
        // where(m, a, b): a's gradient is g where m, b's where not, each summed to its shape.
        check(move |t, v| Var::where_cond(t.input(mask.clone()), v[0], v[1]), &[a, b])?;
    }

    #[test]
    fn sum_and_mean_over_axis_sets(
        (x, axes) in dims(0, 4).prop_flat_map(|d| {
            let r = d.len();
            (tensor_of(d, -2.0, 2.0), axes_of(r))
        }),
        keepdim in any::<bool>(),
    ) {
        // d sum / dx = 1 everywhere, d mean / dx = 1 / count.
        let ax = axes.clone();
        check(move |_, v| v[0].sum(&ax, keepdim), std::slice::from_ref(&x))?;
        check(move |_, v| v[0].mean(&axes, keepdim), &[x])?;
    }

    #[test]
    fn max_over_axis_sets_distinct(
        (x, axes) in dims(0, 4).prop_flat_map(|d| {
            let r = d.len();
            (distinct_of(d), axes_of(r))
        }),
        keepdim in any::<bool>(),
    ) {
        // The gradient goes to the unique maximum of each reduced group.
        check(move |_, v| v[0].max(&axes, keepdim), &[x])?;
    }

    #[test]
    fn sum_to_and_broadcast_to(
        (small, big) in broadcastable_to(4).prop_flat_map(|(s, b)| {
            (tensor_of(s, -2.0, 2.0), tensor_of(b, -2.0, 2.0))
        })
    ) {
        // Adjoint pair: sum_to's gradient broadcasts, broadcast_to's gradient sums.
        let (s_shape, b_shape) = (small.shape().clone(), big.shape().clone());
        check(move |_, v| v[0].sum_to(&s_shape), &[big])?;
        check(move |_, v| v[0].broadcast_to(b_shape.clone()), &[small])?;
    }

    #[test]
    fn reshape_and_reshape_infer(
        (x, target, hole) in dims(0, 4).prop_flat_map(|d| {
            let r = d.len();
            (tensor_of(d.clone(), -2.0, 2.0), Just(d).prop_shuffle(), 0..r.max(1))
        })
    ) {
        // A reshape moves no values: its gradient is the upstream one reshaped back.
        let t = target.clone();
        check(move |_, v| v[0].reshape(t.clone()), std::slice::from_ref(&x))?;
        let mut spec: Vec<isize> = target.iter().map(|&d| d as isize).collect();
        if !spec.is_empty() {
            spec[hole] = -1;
        }
        check(move |_, v| v[0].reshape_infer(&spec), &[x])?;
    }

    #[test]
    fn permute_and_transpose(
        (x, perm, a, b) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            let p = Just((0..r).collect::<Vec<usize>>()).prop_shuffle();
            (tensor_of(d, -2.0, 2.0), p, -(r as isize)..r as isize, -(r as isize)..r as isize)
        })
    ) {
        // The gradient of a permutation is the inverse permutation of the upstream gradient.
        check(move |_, v| v[0].permute(&perm), std::slice::from_ref(&x))?;
        check(move |_, v| v[0].transpose(a, b), &[x])?;
    }

    #[test]
    fn narrow_within_bounds(
        (x, axis, start, len) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r).prop_flat_map(|(d, a)| {
                let n = d[a];
                (Just(d), Just(a), 0..n).prop_flat_map(move |(d, a, s)| {
                    (tensor_of(d, -2.0, 2.0), Just(a), Just(s), 1..=n - s)
                })
            })
        }),
        negative in any::<bool>(),
    ) {
        // narrow's gradient is the upstream gradient padded back with zeros.
        let r = x.rank() as isize;
        let ax = if negative { axis as isize - r } else { axis as isize };
        check(move |_, v| v[0].narrow(ax, start, len), &[x])?;
    }

    #[test]
    fn pad_last_axes(
        (x, pads) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            (tensor_of(d, -2.0, 2.0), prop::collection::vec((0usize..=2, 0usize..=2), 1..=r))
        }),
        value in -1.0f32..1.0,
    ) {
        // pad's gradient narrows the upstream gradient back to the input's window.
        check(move |_, v| v[0].pad(&pads, value), &[x])?;
    }

    #[test]
    fn concat_along_any_axis(
        (parts, axis) in dims(1, 3).prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r, prop::collection::vec(1usize..=3, 1..=3))
        }).prop_flat_map(|(d, a, sizes)| {
            let parts: Vec<_> = sizes.into_iter().map(|s| {
                let mut e = d.clone();
                e[a] = s;
                tensor_of(e, -2.0, 2.0)
            }).collect();
            (parts, Just(a))
        })
    ) {
        // Each part's gradient is its own slice of the upstream gradient.
        check(move |_, v| Var::concat(v, axis as isize), &parts)?;
    }

    #[test]
    fn stack_and_unsqueeze(
        (parts, axis) in dims(0, 3).prop_flat_map(|d| {
            let r = d.len() as isize;
            (prop::collection::vec(tensor_of(d, -2.0, 2.0), 1..=3), -(r + 1)..=r)
        })
    ) {
        // stack = unsqueeze each, then concat; unsqueeze is a reshape.
        check(move |_, v| Var::stack(v, axis), &parts)?;
        check(move |_, v| v[0].unsqueeze(axis), &parts[..1])?;
    }

    #[test]
    fn flatten_from_any_axis(
        (x, start) in dims(0, 4).prop_flat_map(|d| {
            let r = d.len();
            (tensor_of(d, -2.0, 2.0), 0..=r)
        })
    ) {
        check(move |_, v| v[0].flatten(start), &[x])?;
    }
}

/// `batch ++ [r, c]`, or `[c, r]` when transposed.
fn matrix(batch: &[usize], r: usize, c: usize, transposed: bool) -> Vec<usize> {
    let mut d = batch.to_vec();
    d.extend(if transposed { [c, r] } else { [r, c] });
    d
}

/// Operands of a batched `op(a) @ op(b)` with broadcasting batch dimensions.
fn matmul_operands(ta: bool, tb: bool) -> impl Strategy<Value = (Tensor, Tensor)> {
    (broadcast_pair(2), 1usize..=4, 1usize..=4, 1usize..=4).prop_flat_map(
        move |((ba, bb), m, k, n)| {
            (
                tensor_of(matrix(&ba, m, k, ta), -2.0, 2.0),
                tensor_of(matrix(&bb, k, n, tb), -2.0, 2.0),
            )
        },
    )
}

fn transpose(yes: bool) -> Transpose {
    if yes {
        Transpose::Yes
    } else {
        Transpose::No
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matmul_2d_batched_and_broadcast((a, b) in matmul_operands(false, false)) {
        // C = A B: dA = G B^T, dB = A^T G, summed over broadcast batch dimensions.
        check(|_, v| v[0].matmul(v[1]), &[a, b])?;
    }

    #[test]
    fn matmul_promotes_vectors(
        (batch, m, k, n) in (dims(0, 2), 1usize..=4, 1usize..=4, 1usize..=4),
        seed in any::<u64>(),
    ) {
        // A 1-d left operand is a row [1, k], a right one a column [k, 1]; the added axis is
        // dropped from the result and from the gradients.
        let mut r = rng(seed);
        let v = |d: Vec<usize>, r: &mut tapegrad::prelude::Rng| Tensor::rand(d, -2.0, 2.0, r);
        let cases = [
            (v(vec![k], &mut r), v(matrix(&batch, k, n, false), &mut r)),
            (v(matrix(&batch, m, k, false), &mut r), v(vec![k], &mut r)),
            (v(vec![k], &mut r), v(vec![k], &mut r)),
        ];
        for (a, b) in cases {
            check(|_, v| v[0].matmul(v[1]), &[a, b])?;
        }
    }

    #[test]
    fn matmul_t_all_transposes(
        ((a, b), ta, tb) in (any::<bool>(), any::<bool>())
            .prop_flat_map(|(ta, tb)| (matmul_operands(ta, tb), Just(ta), Just(tb)))
    ) {
        // Each of the four forms has its own pair of rules (see ops/matmul.rs); all must agree
        // with the finite differences of the product they compute.
        let (ta, tb) = (transpose(ta), transpose(tb));
        check(move |_, v| v[0].matmul_t(v[1], ta, tb), &[a, b])?;
    }

    #[test]
    fn linear_with_and_without_bias(
        (x, w, b) in (dims(0, 2), 1usize..=4, 1usize..=4).prop_flat_map(|(lead, i, o)| {
            let mut xd = lead;
            xd.push(i);
            (tensor_of(xd, -2.0, 2.0), tensor_of(vec![o, i], -2.0, 2.0), tensor_of(vec![o], -2.0, 2.0))
        })
    ) {
        // y = x W^T + b over any leading dims: dx = G W, dW = G^T x, db = sum of G.
        check(|_, v| v[0].linear(v[1], Some(v[2])), &[x.clone(), w.clone(), b])?;
        check(|_, v| v[0].linear(v[1], None), &[x, w])?;
    }

    #[test]
    fn softmax_and_log_softmax_any_axis(
        (x, axis) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len() as isize;
            (tensor_of(d, -3.0, 3.0), -r..r)
        })
    ) {
        // d softmax_i / dx_j = s_i (delta_ij - s_j); d log_softmax_i / dx_j = delta_ij - s_j.
        check(move |_, v| v[0].softmax(axis), std::slice::from_ref(&x))?;
        check(move |_, v| v[0].log_softmax(axis), &[x])?;
    }

    #[test]
    fn mse_against_a_var_target(
        (x, y) in dims(0, 4).prop_flat_map(|d| (tensor_of(d.clone(), -2.0, 2.0), tensor_of(d, -2.0, 2.0))),
        r in reduction(),
    ) {
        // d mean((x - y)^2) / dx = 2 (x - y) / n, and the negative of that for y.
        check(move |_, v| v[0].mse_with(v[1], r), &[x, y])?;
        // The default reduction is the mean.
        let (a, b) = (Tensor::from_slice(&[1.0, 3.0]), Tensor::from_slice(&[0.0, 0.0]));
        let tape = Tape::new();
        let loss = tape.var(a).mse(tape.input(b)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // mean(1, 9) = 5.
        prop_assert_eq!(loss.item().unwrap(), 5.0);
    }

    #[test]
    fn nll_and_cross_entropy(
        (x, labels) in (1usize..=4, 2usize..=5).prop_flat_map(|(n, c)| {
            (tensor_of(vec![n, c], -3.0, 3.0), prop::collection::vec(0..c, n))
        }),
        r in reduction(),
        eps in prop_oneof![Just(0.0f32), 0.05f32..0.5],
    ) {
        // nll picks -x[i, t_i]; cross-entropy's gradient is (softmax(x) - q) / N with
        // q = (1 - eps) onehot + eps / C.
        let l = labels.clone();
        check(move |_, v| v[0].nll_loss(&l, r), std::slice::from_ref(&x))?;
        let l = labels.clone();
        check(move |_, v| v[0].cross_entropy(&l), std::slice::from_ref(&x))?;
        check(move |_, v| v[0].cross_entropy_with(&labels, eps, r), &[x])?;
    }

    #[test]
    fn bce_with_logits_both_inputs(
        (x, y) in dims(0, 4).prop_flat_map(|d| {
            (away_from_zero_of(d.clone(), 0.1, 4.0), tensor_of(d, 0.0, 1.0))
        }),
        r in reduction(),
    ) {
        // d/dx = sigmoid(x) - y, d/dy = -x.
        check(move |_, v| v[0].bce_with_logits(v[1], r), &[x, y])?;
    }

    #[test]
    fn clamp_away_from_the_bounds(
        x in dims(0, 4).prop_flat_map(|d| grid_of(d, 0.5, 0.25, 0.1)),
        (low, width) in (-2i32..=0, 1i32..=4),
    ) {
        // Bounds on multiples of 0.5 and values >= 0.15 away from them: gradient 1 strictly
        // inside, 0 outside.
        let (lo, hi) = (low as f32 * 0.5, (low + width) as f32 * 0.5);
        check(move |_, v| v[0].clamp(lo, hi), &[x])?;
    }
}

#[test]
fn where_and_leaky_relu_on_scalars() {
    // All-rank-0 operands: where(1, a, b) = a, so d/da = 1 and d/db = 0; leaky_relu(-2) with
    // slope 0.1 is -0.2 with derivative 0.1.
    let tape = Tape::new();
    let (a, b) = (
        tape.var(Tensor::scalar(2.0)),
        tape.var(Tensor::scalar(-1.0)),
    );
    let y = Var::where_cond(tape.input(Tensor::scalar(1.0)), a, b).unwrap();
    assert_eq!(y.item().unwrap(), 2.0);
    let g = y.backward().unwrap();
    assert_eq!(g.get(a).unwrap().item().unwrap(), 1.0);
    assert_eq!(g.get(b).unwrap().item().unwrap(), 0.0);
    let x = tape.var(Tensor::scalar(-2.0));
    let l = x.leaky_relu(0.1);
    assert!((l.item().unwrap() + 0.2).abs() < 1e-7);
    let d = l.backward().unwrap().get(x).unwrap().item().unwrap();
    assert!((d - 0.1).abs() < 1e-7);
}
