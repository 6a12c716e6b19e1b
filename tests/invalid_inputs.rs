//! Every public fallible op, fed random invalid shapes, axes and arguments, returns an `Err` whose
//! message names the op, and never panics.

mod common;

use common::dims;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tapegrad::prelude::*;

/// Runs `f`, which must neither panic nor succeed, and must fail with a message naming `op`.
fn expect_err<T>(op: &str, f: impl FnOnce() -> Result<T>) -> Result<(), TestCaseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(TestCaseError::fail(format!("{op} panicked: {msg}")))
        }
        Ok(Ok(_)) => Err(TestCaseError::fail(format!("{op} accepted invalid input"))),
        Ok(Err(e)) => {
            let msg = e.to_string();
            prop_assert!(
                msg.contains(op),
                "the error of {op} does not name it: {msg}"
            );
            Ok(())
        }
    }
}

fn ones(d: &[usize]) -> Tensor {
    Tensor::ones(d.to_vec())
}

/// Two shapes that do not broadcast: some aligned dimension holds two different sizes >= 2.
fn mismatched_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    dims(1, 4)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r, 2usize..=4, 2usize..=4)
        })
        .prop_filter("sizes must differ", |(_, _, x, y)| x != y)
        .prop_flat_map(|(d, i, x, y)| (Just(d), Just(i), Just(x), Just(y), 0..=i, 0..=i))
        .prop_map(|(d, i, x, y, da, db)| {
            let (mut a, mut b) = (d.clone(), d);
            a[i] = x;
            b[i] = y;
            (a[da..].to_vec(), b[db..].to_vec())
        })
}

/// An axis outside `-rank..rank` (`extra` widens the valid range, for ops that insert an axis).
fn bad_axis(rank: usize, extra: usize) -> impl Strategy<Value = isize> {
    let r = (rank + extra) as isize;
    prop_oneof![r..r + 3, -r - 3..-r]
}

fn transpose(yes: bool) -> Transpose {
    if yes {
        Transpose::Yes
    } else {
        Transpose::No
    }
}

type TensorBinary = fn(&Tensor, &Tensor) -> Result<Tensor>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn broadcasting_mismatches((a, b) in mismatched_pair()) {
        let (x, y) = (ones(&a), ones(&b));
        let tensor_ops: [(&str, TensorBinary); 11] = [
            ("add", Tensor::add), ("sub", Tensor::sub), ("mul", Tensor::mul),
            ("div", Tensor::div), ("maximum", Tensor::maximum), ("minimum", Tensor::minimum),
            ("gt", Tensor::gt), ("ge", Tensor::ge), ("lt", Tensor::lt), ("le", Tensor::le),
            ("eq", Tensor::eq_mask),
        ];
        for (op, f) in tensor_ops {
            expect_err(op, || f(&x, &y))?;
        }
        expect_err("where", || Tensor::where_cond(&x, &y, &x))?;
        expect_err("where", || Tensor::where_cond(&x, &x, &y))?;
        expect_err("broadcast_to", || x.broadcast_to(y.shape().clone()))?;
        expect_err("sum_to", || x.sum_to(y.shape()))?;

        let tape = Tape::new();
        let (u, v) = (tape.var(x.clone()), tape.var(y.clone()));
        type VarBinary<'t> = fn(Var<'t>, Var<'t>) -> Result<Var<'t>>;
        let var_ops: [(&str, VarBinary); 11] = [
            ("add", Var::add), ("sub", Var::sub), ("mul", Var::mul), ("div", Var::div),
            ("maximum", Var::maximum), ("minimum", Var::minimum), ("gt", Var::gt),
            ("ge", Var::ge), ("lt", Var::lt), ("le", Var::le), ("eq", Var::eq_mask),
        ];
        for (op, f) in var_ops {
            expect_err(op, || f(u, v))?;
        }
        expect_err("where", || Var::where_cond(u, v, u))?;
        expect_err("where", || Var::where_cond(u, u, v))?;
        expect_err("broadcast_to", || u.broadcast_to(y.shape().clone()))?;
        expect_err("sum_to", || u.sum_to(y.shape()))?;
        expect_err("mse", || u.mse(v))?;
        expect_err("bce_with_logits", || u.bce_with_logits(v, Reduction::Mean))?;
    }

    #[test]
    fn axes_out_of_range(
        (d, axis, ins_axis) in dims(0, 4).prop_flat_map(|d| {
            let r = d.len();
            (Just(d), bad_axis(r, 0), bad_axis(r, 1))
        }),
        keepdim in any::<bool>(),
    ) {
        let x = ones(&d);
        let r = d.len();
        expect_err("sum", || x.sum(&[axis], keepdim))?;
        expect_err("mean", || x.mean(&[axis], keepdim))?;
        expect_err("max", || x.max(&[axis], keepdim))?;
        expect_err("argmax", || x.argmax(axis, keepdim))?;
        expect_err("topk", || x.topk(1, axis))?;
        expect_err("narrow", || x.narrow(axis, 0, 1))?;
        expect_err("transpose", || x.transpose(axis, 0))?;
        expect_err("concat", || Tensor::concat(&[&x, &x], axis))?;
        expect_err("stack", || Tensor::stack(&[&x, &x], ins_axis))?;

        let tape = Tape::new();
        let v = tape.var(x.clone());
        expect_err("sum", || v.sum(&[axis], keepdim))?;
        expect_err("mean", || v.mean(&[axis], keepdim))?;
        expect_err("max", || v.max(&[axis], keepdim))?;
        expect_err("narrow", || v.narrow(axis, 0, 1))?;
        expect_err("transpose", || v.transpose(0, axis))?;
        expect_err("softmax", || v.softmax(axis))?;
        expect_err("log_softmax", || v.log_softmax(axis))?;
        expect_err("concat", || Var::concat(&[v, v], axis))?;
        expect_err("stack", || Var::stack(&[v, v], ins_axis))?;
        expect_err("unsqueeze", || v.unsqueeze(ins_axis))?;
        expect_err("flatten", || v.flatten(r + 1 + (axis.unsigned_abs() % 3)))?;
        if r > 0 {
            // A valid axis named twice.
            let a = (axis.unsigned_abs() % r) as isize;
            expect_err("sum", || x.sum(&[a, a - r as isize], keepdim))?;
            expect_err("max", || v.max(&[a, a], keepdim))?;
            expect_err("mean", || v.mean(&[a - r as isize, a], keepdim))?;
        }
    }

    #[test]
    fn narrow_out_of_range(
        (d, axis, start, len) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r)
        }).prop_flat_map(|(d, a)| {
            let n = d[a];
            (Just(d), Just(a), prop_oneof![0..=n + 2, Just(usize::MAX)], 0..=n + 2)
        }).prop_filter("range must overflow the axis", |(d, a, s, l)| {
            s.checked_add(*l).is_none_or(|e| e > d[*a])
        })
    ) {
        let x = ones(&d);
        expect_err("narrow", || x.narrow(axis as isize, start, len))?;
        let tape = Tape::new();
        expect_err("narrow", || tape.var(x.clone()).narrow(axis as isize, start, len))?;
    }

    #[test]
    fn bad_permutations(
        (d, perm) in dims(0, 4).prop_flat_map(|d| {
            let r = d.len();
            (Just(d), prop::collection::vec(0..r + 2, 0..=r + 1))
        }).prop_filter("must not be a permutation", |(d, p)| {
            let mut s = p.clone();
            s.sort_unstable();
            s != (0..d.len()).collect::<Vec<_>>()
        })
    ) {
        let x = ones(&d);
        expect_err("permute", || x.permute(&perm))?;
        let tape = Tape::new();
        expect_err("permute", || tape.var(x.clone()).permute(&perm))?;
    }

    #[test]
    fn reshape_to_a_wrong_count(
        (d, target) in (dims(0, 4), dims(0, 4))
            .prop_filter("counts must differ", |(a, b)| {
                a.iter().product::<usize>() != b.iter().product::<usize>()
            }),
        bad_infer in prop_oneof![
            Just(vec![-1isize, -1]),
            Just(vec![-2isize]),
            Just(vec![0isize, -1]),
            (5isize..=7).prop_map(|k| vec![k, -1]),
        ],
    ) {
        let x = ones(&d);
        expect_err("reshape", || x.reshape(target.clone()))?;
        let tape = Tape::new();
        let v = tape.var(x.clone());
        expect_err("reshape", || v.reshape(target.clone()))?;
        // Two holes, a negative size, a zero beside a hole, or a size that does not divide.
        let n = x.numel() as isize;
        if bad_infer.len() != 2 || bad_infer[0] < 5 || n % bad_infer[0] != 0 {
            expect_err("reshape", || x.reshape_infer(&bad_infer))?;
            expect_err("reshape", || v.reshape_infer(&bad_infer))?;
        }
    }

    #[test]
    fn matmul_mismatches(
        (m, k, k2, n) in (1usize..=4, 1usize..=4, 1usize..=4, 1usize..=4)
            .prop_filter("inner sizes must differ", |(_, k, k2, _)| k != k2),
        (ba, bb) in mismatched_pair(),
    ) {
        let tape = Tape::new();
        let (a, b) = (ones(&[m, k]), ones(&[k2, n]));
        let (va, vb) = (tape.var(a.clone()), tape.var(b.clone()));
        // Inner dimensions that disagree, in every transpose form.
        expect_err("matmul", || a.matmul(&b))?;
        expect_err("matmul", || va.matmul(vb))?;
        expect_err("matmul", || ones(&[k]).matmul(&b))?;
        expect_err("matmul", || a.matmul(&ones(&[k2])))?;
        expect_err("matmul", || tape.var(ones(&[k])).matmul(vb))?;
        expect_err("matmul", || va.matmul(tape.var(ones(&[k2]))))?;
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            // op(a) is [m, k] and op(b) is [k2, n] however they are stored.
            let a = ones(&if ta { [k, m] } else { [m, k] });
            let b = ones(&if tb { [n, k2] } else { [k2, n] });
            let (ta, tb) = (transpose(ta), transpose(tb));
            expect_err("matmul", || a.matmul_t(&b, ta, tb))?;
            expect_err("matmul", || tape.var(a.clone()).matmul_t(tape.var(b.clone()), ta, tb))?;
        }
        // Rank 0, and rank 1 where matmul_t needs matrices.
        expect_err("matmul", || Tensor::scalar(1.0).matmul(&b))?;
        expect_err("matmul", || tape.var(Tensor::scalar(1.0)).matmul(vb))?;
        expect_err("matmul", || ones(&[k]).matmul_t(&b, Transpose::No, Transpose::No))?;
        expect_err("matmul", || tape.var(ones(&[k])).matmul_t(vb, Transpose::No, Transpose::No))?;
        // Batch dimensions that do not broadcast.
        let (mut sa, mut sb) = (ba, bb);
        sa.extend([m, k]);
        sb.extend([k, n]);
        expect_err("matmul", || ones(&sa).matmul(&ones(&sb)))?;
        expect_err("matmul", || tape.var(ones(&sa)).matmul(tape.var(ones(&sb))))?;
    }

    #[test]
    fn concat_and_stack_mismatches(
        (a, b, axis) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            (Just(d.clone()), dims(0, 4), 0..r)
        }).prop_filter("other dimensions must disagree", |(a, b, ax)| {
            a.len() != b.len() || (0..a.len()).any(|i| i != *ax && a[i] != b[i])
        })
    ) {
        let (x, y) = (ones(&a), ones(&b));
        let ax = axis as isize;
        expect_err("concat", || Tensor::concat(&[&x, &y], ax))?;
        expect_err("concat", || Tensor::concat(&[], ax))?;
        expect_err("stack", || Tensor::stack(&[&x, &y], ax))?;
        expect_err("stack", || Tensor::stack(&[], ax))?;
        let tape = Tape::new();
        let (u, v) = (tape.var(x.clone()), tape.var(y.clone()));
        expect_err("concat", || Var::concat(&[u, v], ax))?;
        expect_err("concat", || Var::concat(&[], ax))?;
        expect_err("stack", || Var::stack(&[u, v], ax))?;
        expect_err("stack", || Var::stack(&[], ax))?;
    }

    #[test]
    fn constructors_and_indexing(
        d in dims(0, 4),
        extra in prop_oneof![1usize..=3, Just(0)],
        fewer in any::<bool>(),
        step in prop_oneof![Just(0.0f32), Just(f32::NAN), Just(f32::INFINITY)],
    ) {
        let n: usize = d.iter().product();
        let len = if fewer || extra == 0 { n.saturating_sub(extra.max(1)) } else { n + extra };
        if len != n {
            expect_err("from_vec", || Tensor::from_vec(vec![0.0; len], d.clone()))?;
        }
        let x = ones(&d);
        // An index one past the end of some axis, or of the wrong length.
        let mut idx: Vec<usize> = vec![0; d.len()];
        if let Some(last) = idx.last_mut() {
            *last = d[d.len() - 1] + extra;
        } else {
            idx.push(extra);
        }
        expect_err("get", || x.get(&idx))?;
        expect_err("get", || x.get(&vec![0; d.len() + 1]))?;
        if n != 1 {
            expect_err("item", || x.item())?;
        }
        expect_err("arange", || Tensor::arange(0.0, 3.0, step))?;
        expect_err("arange", || Tensor::arange(f32::NAN, 3.0, 1.0))?;
        let mut p = Param::new(x.clone());
        let mut other = d.clone();
        other.push(2);
        expect_err("Param::set", || p.set(ones(&other)))?;
    }

    #[test]
    fn topk_k_out_of_range(
        (d, axis) in dims(1, 4).prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r)
        }),
        over in 1usize..=3,
        zero in any::<bool>(),
    ) {
        let x = ones(&d);
        let k = if zero { 0 } else { d[axis] + over };
        expect_err("topk", || x.topk(k, axis as isize))?;
    }

    #[test]
    fn cross_entropy_and_nll_bad_labels(
        (n, c, labels) in (1usize..=4, 1usize..=4).prop_flat_map(|(n, c)| {
            (Just(n), Just(c), prop::collection::vec(0..c, n))
        }),
        pos in any::<prop::sample::Index>(),
        over in 0usize..3,
        wrong_n in prop_oneof![Just(0usize), 1usize..=3],
        eps in prop_oneof![-1.0f32..-0.01, 1.01f32..2.0, Just(f32::NAN)],
    ) {
        let tape = Tape::new();
        let x = tape.var(ones(&[n, c]));
        // A label equal to or past the class count.
        let mut bad = labels.clone();
        bad[pos.index(n)] = c + over;
        expect_err("cross_entropy", || x.cross_entropy(&bad))?;
        expect_err("nll_loss", || x.nll_loss(&bad, Reduction::Mean))?;
        // A label count other than N.
        let mut short = labels.clone();
        if wrong_n == 0 {
            short.pop();
        } else {
            short.extend(std::iter::repeat_n(0, wrong_n));
        }
        expect_err("cross_entropy", || x.cross_entropy_with(&short, 0.1, Reduction::Sum))?;
        expect_err("nll_loss", || x.nll_loss(&short, Reduction::None))?;
        // [C] scores take exactly one label, a scalar none; and a smoothing outside [0, 1].
        let flat = tape.var(ones(&[n * c]));
        let two = [0, 0];
        expect_err("cross_entropy", || flat.cross_entropy(&two))?;
        expect_err("nll_loss", || flat.nll_loss(&two, Reduction::Mean))?;
        let scalar = tape.var(Tensor::scalar(1.0));
        expect_err("cross_entropy", || scalar.cross_entropy(&labels))?;
        expect_err("cross_entropy", || x.cross_entropy_with(&labels, eps, Reduction::Mean))?;
    }

    #[test]
    fn linear_mismatches(
        (lead, i, i2, o) in (dims(0, 2), 1usize..=4, 1usize..=4, 1usize..=4)
            .prop_filter("in sizes must differ", |(_, i, i2, _)| i != i2),
        bias_len in 1usize..=5,
    ) {
        let tape = Tape::new();
        let mut xd = lead.clone();
        xd.push(i);
        let x = tape.var(ones(&xd));
        let w_bad = tape.var(ones(&[o, i2]));
        let w = tape.var(ones(&[o, i]));
        expect_err("linear", || x.linear(w_bad, None))?;
        expect_err("linear", || x.linear(tape.var(ones(&[o, i, 1])), None))?;
        expect_err("linear", || x.linear(tape.var(ones(&[i])), None))?;
        expect_err("linear", || tape.var(Tensor::scalar(1.0)).linear(w, None))?;
        let b = tape.var(ones(&[bias_len]));
        if bias_len != o {
            expect_err("linear", || x.linear(w, Some(b)))?;
        }
        expect_err("linear", || x.linear(w, Some(tape.var(ones(&[o, 1])))))?;
    }

    #[test]
    fn pad_with_too_many_pairs(d in dims(0, 3), extra in 1usize..=2) {
        let x = ones(&d);
        let pads = vec![(1, 1); d.len() + extra];
        expect_err("pad", || x.pad(&pads, 0.0))?;
        let tape = Tape::new();
        expect_err("pad", || tape.var(x.clone()).pad(&pads, 0.0))?;
    }

    #[test]
    fn backward_misuse(d in dims(1, 4).prop_filter("more than one element", |d| {
        d.iter().product::<usize>() > 1
    })) {
        let tape = Tape::new();
        let x = tape.var(ones(&d));
        let y = x.tanh();
        expect_err("backward", || y.backward())?;
        let mut wrong = d.clone();
        wrong.push(1);
        expect_err("backward", || y.backward_with(ones(&wrong)))?;
        expect_err("backward", || y.backward_with_options(Tensor::scalar(1.0), BackwardOptions {
            create_graph: true,
            retain_graph: true,
            ..Default::default()
        }))?;
        // A second pass through a graph released by the first.
        let s = y.sum(&[], false).map_err(|e| TestCaseError::fail(e.to_string()))?;
        s.backward().map_err(|e| TestCaseError::fail(e.to_string()))?;
        expect_err("backward", || s.backward())?;
    }

    #[test]
    fn foreign_tapes(d in dims(2, 2)) {
        let (t1, t2) = (Tape::new(), Tape::new());
        let x = ones(&d);
        let a = t1.var(x.clone());
        let b = t2.var(x.clone());
        type VarBinary<'t> = fn(Var<'t>, Var<'t>) -> Result<Var<'t>>;
        let ops: [(&str, VarBinary); 14] = [
            ("add", Var::add), ("sub", Var::sub), ("mul", Var::mul), ("div", Var::div),
            ("maximum", Var::maximum), ("minimum", Var::minimum), ("gt", Var::gt),
            ("ge", Var::ge), ("lt", Var::lt), ("le", Var::le), ("eq", Var::eq_mask),
            ("matmul", Var::matmul), ("mse", Var::mse),
            ("bce_with_logits", |a, b| a.bce_with_logits(b, Reduction::Mean)),
        ];
        for (op, f) in ops {
            expect_err(op, || f(a, b))?;
            expect_err(op, || f(b, a))?;
        }
        expect_err("where", || Var::where_cond(a, b, a))?;
        expect_err("where", || Var::where_cond(a, a, b))?;
        expect_err("concat", || Var::concat(&[a, b], 0))?;
        expect_err("stack", || Var::stack(&[a, b], 0))?;
        expect_err("matmul", || a.matmul_t(b, Transpose::Yes, Transpose::No))?;
        let w = t2.var(ones(&[3, d[1]]));
        expect_err("linear", || a.linear(w, None))?;
        let (w1, b2) = (t1.var(ones(&[3, d[1]])), t2.var(ones(&[3])));
        expect_err("linear", || a.linear(w1, Some(b2)))?;
    }
}
