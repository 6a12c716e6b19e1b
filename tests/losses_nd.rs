//! Class losses on scores `[N, C, d1, ...]` (class axis 1, targets `[N, d1, ...]` flattened
//! row-major) and `[C]` (one target), as PyTorch's `F.cross_entropy` / `F.nll_loss` take them:
//! finite-difference gradients, equivalence with the `[N * D, C]` loss of the hand-permuted
//! scores, a hand-computed case, and errors on invalid input.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tapegrad::nn::loss::{CrossEntropyLoss, NllLoss};
use tapegrad::prelude::*;

/// Options of the nn loss modules for one case.
#[derive(Clone, Debug)]
struct Opts {
    weights: Option<Tensor>,
    ignore: Option<usize>,
    eps: f32,
    r: Reduction,
}

impl Opts {
    fn ce(&self) -> CrossEntropyLoss {
        let mut l = CrossEntropyLoss::new()
            .label_smoothing(self.eps)
            .reduction(self.r);
        l.class_weights = self.weights.clone();
        l.ignore_index = self.ignore;
        l
    }

    fn nll(&self) -> NllLoss {
        let mut l = NllLoss::new().reduction(self.r);
        l.class_weights = self.weights.clone();
        l.ignore_index = self.ignore;
        l
    }
}

/// A case: scores `[N, C, d...]` with 1-2 spatial dims, `N * D` labels, and module options.
/// With an ignored label, at least one label is kept, so a mean has a non-zero denominator.
fn nd_case() -> impl Strategy<Value = (Tensor, Vec<usize>, Opts)> {
    (1usize..=3, 2usize..=4, dims(1, 2))
        .prop_flat_map(|(n, c, spatial)| {
            let mut d = vec![n, c];
            d.extend(&spatial);
            let m = n * spatial.iter().product::<usize>();
            (
                tensor_of(d, -3.0, 3.0),
                prop::collection::vec(0..c, m),
                prop::option::of(tensor_of(vec![c], 0.5, 2.0)),
                prop::option::of(0..c),
                prop_oneof![Just(0.0f32), 0.05f32..0.5],
                reduction(),
            )
        })
        .prop_map(|(x, mut labels, weights, ignore, eps, r)| {
            let c = x.dims()[1];
            if let Some(k) = ignore {
                if labels.iter().all(|&t| t == k) {
                    labels[0] = (k + 1) % c;
                }
            }
            let opts = Opts {
                weights,
                ignore,
                eps,
                r,
            };
            (x, labels, opts)
        })
}

/// `[N, C, d...]` scores as `[N * D, C]` rows by explicit indexing (no permute): element
/// `x[n, c, s]` (flat spatial index `s`) sits at `n C D + c D + s` and goes to row `n D + s`.
fn rows_by_hand(x: &Tensor) -> Tensor {
    let (n, c) = (x.dims()[0], x.dims()[1]);
    let d: usize = x.dims()[2..].iter().product();
    let src = x.data();
    let mut out = vec![0.0; n * c * d];
    for i in 0..n {
        for k in 0..c {
            for s in 0..d {
                out[(i * d + s) * c + k] = src[i * c * d + k * d + s];
            }
        }
    }
    Tensor::from_vec(out, [n * d, c]).unwrap()
}

/// Runs `loss` on `x` and returns its value and the input gradient for the seed `r` (per
/// element of the output, in row-major order).
fn value_and_grad<F>(x: &Tensor, seed: &[f32], loss: F) -> Result<(Tensor, Tensor)>
where
    F: for<'t> Fn(Var<'t>) -> Result<Var<'t>>,
{
    let tape = Tape::new();
    let v = tape.var(x.clone());
    let y = loss(v)?;
    let g = y.backward_with(Tensor::from_vec(seed.to_vec(), y.shape())?)?;
    Ok((y.value(), g.get_or_zeros(v)))
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Checks that the N-d loss `f` at `x` matches it at the rows of [`rows_by_hand`]: equal
/// per-label values in row-major order, equal gradients once the N-d one is permuted likewise.
fn same_as_rows<F>(x: &Tensor, f: F) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(Var<'t>) -> Result<Var<'t>>,
{
    let rows = rows_by_hand(x);
    let tape = Tape::new();
    let out = f(tape.var(x.clone())).map_err(fail)?;
    let seed = Tensor::rand(out.shape(), -1.0, 1.0, &mut rng(3));
    let (y_nd, g_nd) = value_and_grad(x, seed.data(), &f).map_err(fail)?;
    let (y_2d, g_2d) = value_and_grad(&rows, seed.data(), &f).map_err(fail)?;
    // 'none' keeps [N, d...] for N-d scores and [N * D] for rows: the same values in the same
    // order.
    prop_assert_eq!(y_nd.numel(), y_2d.numel());
    let y_2d = y_2d.reshape(y_nd.shape().clone()).map_err(fail)?;
    prop_assert!(y_nd.allclose(&y_2d, 1e-5, 1e-6), "{y_nd:?} vs {y_2d:?}");
    let g = rows_by_hand(&g_nd);
    prop_assert!(g.allclose(&g_2d, 1e-5, 1e-6), "{g:?} vs {g_2d:?}");
    Ok(())
}

/// Runs `f`, which must neither panic nor succeed, and must fail with a message naming `op` and
/// containing `also`.
fn expect_err<T>(op: &str, also: &str, f: impl FnOnce() -> Result<T>) -> Result<(), TestCaseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Err(_) => Err(TestCaseError::fail(format!("{op} panicked"))),
        Ok(Ok(_)) => Err(TestCaseError::fail(format!("{op} accepted invalid input"))),
        Ok(Err(e)) => {
            let msg = e.to_string();
            prop_assert!(msg.contains(op), "the error does not name {op}: {msg}");
            prop_assert!(
                msg.contains(also),
                "the error of {op} lacks {also:?}: {msg}"
            );
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn nd_losses_gradcheck((x, labels, o) in nd_case()) {
        // Cross-entropy's gradient per element is (softmax(x) sum_c q_c - q) / denominator with
        // q the (weighted, smoothed) target distribution; nll's is -q. The tape builds both
        // through the class-axis permute and the reshape.
        let l = labels.clone();
        let (eps, r) = (o.eps, o.r);
        check(move |_, v| v[0].cross_entropy_with(&l, eps, r), std::slice::from_ref(&x))?;
        let l = labels.clone();
        check(move |_, v| v[0].nll_loss(&l, r), std::slice::from_ref(&x))?;
        let (l, ce) = (labels.clone(), o.ce());
        check(move |_, v| ce.forward(v[0], &l), std::slice::from_ref(&x))?;
        let nll = o.nll();
        check(move |_, v| nll.forward(v[0], &labels), &[x])?;
    }

    #[test]
    fn nd_losses_equal_the_loss_of_permuted_rows((x, labels, o) in nd_case()) {
        let (eps, r) = (o.eps, o.r);
        same_as_rows(&x, |v| v.cross_entropy_with(&labels, eps, r))?;
        same_as_rows(&x, |v| v.nll_loss(&labels, r))?;
        let ce = o.ce();
        same_as_rows(&x, |v| ce.forward(v, &labels))?;
        let nll = o.nll();
        same_as_rows(&x, |v| nll.forward(v, &labels))?;
    }

    #[test]
    fn single_sample_scores_equal_one_row(
        (x, t) in (2usize..=5).prop_flat_map(|c| (tensor_of(vec![c], -3.0, 3.0), 0..c)),
        r in reduction(),
        eps in prop_oneof![Just(0.0f32), 0.05f32..0.5],
    ) {
        // [C] scores with one label are the [1, C] case; 'none' gives a scalar, as PyTorch.
        let c = x.numel();
        let row = x.reshape([1, c]).unwrap();
        let tape = Tape::new();
        let (a, b) = (tape.var(x.clone()), tape.var(row));
        let one = a.cross_entropy_with(&[t], eps, r).map_err(fail)?;
        let two = b.cross_entropy_with(&[t], eps, r).map_err(fail)?;
        prop_assert!(one.dims().is_empty(), "shape {:?} for {r:?}", one.dims());
        prop_assert!((one.item().unwrap() - two.item().unwrap()).abs() < 1e-6);
        let n1 = NllLoss::new().reduction(r).forward(a, &[t]).map_err(fail)?;
        prop_assert_eq!(n1.item().unwrap(), -x.data()[t]);
        let g = one.backward().map_err(fail)?.get(a).unwrap();
        let g2 = two.backward().map_err(fail)?.get(b).unwrap();
        prop_assert!(g.allclose(&g2.reshape([c]).unwrap(), 1e-6, 1e-7));
        check(move |_, v| v[0].cross_entropy_with(&[t], eps, r), &[x])?;
    }

    #[test]
    fn nd_invalid_inputs_are_errors(
        (n, c, spatial) in (1usize..=3, 1usize..=4, dims(1, 2)),
        pos in any::<prop::sample::Index>(),
        over in 0usize..3,
        off in prop_oneof![Just(-1isize), 1isize..=3],
    ) {
        let mut d = vec![n, c];
        d.extend(&spatial);
        let m = n * spatial.iter().product::<usize>();
        let tape = Tape::new();
        let x = tape.var(Tensor::ones(d.clone()));
        let shape = Shape::new(&d).to_string();
        let ce = CrossEntropyLoss::new();
        let nll = NllLoss::new();
        // A label count other than N * D names the scores' shape and the count expected.
        let wrong = vec![0; (m as isize + off) as usize];
        let want = format!("{m} labels");
        expect_err("cross_entropy", &shape, || x.cross_entropy(&wrong))?;
        expect_err("cross_entropy", &want, || x.cross_entropy_with(&wrong, 0.1, Reduction::None))?;
        expect_err("nll_loss", &want, || x.nll_loss(&wrong, Reduction::Sum))?;
        expect_err("cross_entropy", &want, || ce.forward(x, &wrong))?;
        expect_err("nll_loss", &shape, || nll.forward(x, &wrong))?;
        // A class index at or past C, anywhere in the flattened targets.
        let mut bad = vec![0; m];
        bad[pos.index(m)] = c + over;
        let range = format!("out of range for {c} classes");
        expect_err("cross_entropy", &range, || x.cross_entropy(&bad))?;
        expect_err("nll_loss", &range, || x.nll_loss(&bad, Reduction::None))?;
        expect_err("cross_entropy", &range, || ce.forward(x, &bad))?;
        expect_err("nll_loss", &range, || nll.forward(x, &bad))?;
        // Class weights of the wrong length.
        let w = Tensor::ones([c + 1]);
        expect_err("cross_entropy", "class weights", || ce.clone().weight(w.clone()).forward(x, &bad))?;
        // Rank 0, and rank 1 with a label count other than one.
        let s = tape.var(Tensor::scalar(1.0));
        expect_err("cross_entropy", "scalar", || s.cross_entropy(&[0]))?;
        expect_err("nll_loss", "scalar", || s.nll_loss(&[], Reduction::Mean))?;
        expect_err("nll_loss", "scalar", || nll.forward(s, &[0]))?;
        let flat = tape.var(Tensor::ones([c]));
        let count = (m + 1).max(2);
        let many = vec![0; count];
        expect_err("cross_entropy", "one label", || flat.cross_entropy(&many))?;
        expect_err("cross_entropy", "one label", || flat.cross_entropy(&[]))?;
        expect_err("nll_loss", "one label", || flat.nll_loss(&many, Reduction::None))?;
        expect_err("cross_entropy", "one label", || ce.forward(flat, &many))?;
        expect_err("nll_loss", "one label", || nll.forward(flat, &[]))?;
    }
}

const LN2: f32 = std::f32::consts::LN_2;

/// N = 1, C = 2, d = 2: scores `x[0, c, s]` with class 0 `[0, 0]` and class 1 `[ln 3, 0]`, so
/// position 0 has probabilities softmax(0, ln 3) = [1/4, 3/4] and position 1 [1/2, 1/2].
/// Targets `[[1, 0]]`: position 0 class 1, position 1 class 0.
fn hand_case() -> (Tensor, [usize; 2]) {
    let x = Tensor::from_vec(vec![0.0, 0.0, 3f32.ln(), 0.0], [1, 2, 2]).unwrap();
    (x, [1, 0])
}

fn assert_data(got: &Tensor, want: &[f32]) {
    assert_eq!(got.numel(), want.len(), "{got:?}");
    for (g, w) in got.data().iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "got {got:?}, expected {want:?}");
    }
}

#[test]
fn per_pixel_cross_entropy_by_hand() {
    let (x, t) = hand_case();
    let ln43 = (4f32 / 3.0).ln();
    let tape = Tape::new();
    let v = tape.var(x);
    // -log p: position 0 -ln(3/4) = ln(4/3), position 1 -ln(1/2) = ln 2, in the targets' shape
    // [1, 2]. Reading the scores as [2, 2] rows without moving the class axis would swap them.
    let none = v.cross_entropy_with(&t, 0.0, Reduction::None).unwrap();
    assert_eq!(none.dims(), [1, 2]);
    assert_data(&none.value(), &[ln43, LN2]);
    let nll = v.nll_loss(&t, Reduction::None).unwrap();
    // nll picks -x: -x[0, 1, 0] = -ln 3, -x[0, 0, 1] = 0.
    assert_data(&nll.value(), &[-(3f32.ln()), 0.0]);
    // The mean is over all N * D = 2 labels.
    let mean = v.cross_entropy(&t).unwrap();
    assert!((mean.item().unwrap() - (ln43 + LN2) / 2.0).abs() < 1e-6);
    // d mean / dx = (softmax - onehot) / 2 at each position: position 0 ([1/4, 3/4] - [0, 1]) / 2
    // = [1/8, -1/8], position 1 ([1/2, 1/2] - [1, 0]) / 2 = [-1/4, 1/4]; laid out as x[0, c, s]:
    // [g(0, 0), g(0, 1), g(1, 0), g(1, 1)] = [1/8, -1/4, -1/8, 1/4].
    let g = mean.backward().unwrap().get(v).unwrap();
    assert_eq!(g.dims(), [1, 2, 2]);
    assert_data(&g, &[0.125, -0.25, -0.125, 0.25]);
    // Smoothing 0.2 over 2 classes: q = [0.1, 0.9] at position 0 and [0.9, 0.1] at position 1,
    // so -sum q log p = 0.1 ln 4 + 0.9 ln(4/3) and ln 2.
    let smooth = v.cross_entropy_with(&t, 0.2, Reduction::None).unwrap();
    assert_data(&smooth.value(), &[0.1 * 4f32.ln() + 0.9 * ln43, LN2]);
}

#[test]
fn per_pixel_weights_and_ignore_by_hand() {
    let (x, t) = hand_case();
    let ln43 = (4f32 / 3.0).ln();
    let tape = Tape::new();
    let v = tape.var(x);
    let w = Tensor::from_slice(&[1.0, 2.0]);
    // Weights w[t] = 2 at position 0, 1 at position 1: 'none' is [2 ln(4/3), ln 2], and the
    // mean divides their sum by 2 + 1 = 3, as PyTorch.
    let ce = CrossEntropyLoss::new().weight(w.clone());
    let none = ce
        .clone()
        .reduction(Reduction::None)
        .forward(v, &t)
        .unwrap();
    assert_eq!(none.dims(), [1, 2]);
    assert_data(&none.value(), &[2.0 * ln43, LN2]);
    let mean = ce.clone().forward(v, &t).unwrap();
    assert!((mean.item().unwrap() - (2.0 * ln43 + LN2) / 3.0).abs() < 1e-6);
    // Ignoring class 0 drops position 1: loss 0 there, and the mean is 2 ln(4/3) / 2.
    let ign = ce.clone().ignore_index(0);
    let none = ign
        .clone()
        .reduction(Reduction::None)
        .forward(v, &t)
        .unwrap();
    assert_data(&none.value(), &[2.0 * ln43, 0.0]);
    assert!((ign.forward(v, &t).unwrap().item().unwrap() - ln43).abs() < 1e-6);
    // An ignored label need not be a class (255 marks unlabelled pixels): position 1 drops out
    // and the plain mean is ln(4/3) / 1; its gradient there is 0.
    let unlabelled = CrossEntropyLoss::new().ignore_index(255);
    let mean = unlabelled.forward(v, &[1, 255]).unwrap();
    assert!((mean.item().unwrap() - ln43).abs() < 1e-6);
    let g = mean.backward().unwrap().get(v).unwrap();
    // Position 0 alone: [1/4, 3/4] - [0, 1] = [1/4, -1/4]; position 1: 0.
    assert_data(&g, &[0.25, 0.0, -0.25, 0.0]);
    // NllLoss with the same weights: -w[t] x = [-2 ln 3, 0], mean over 3.
    let nll = NllLoss::new().weight(w).forward(v, &t).unwrap();
    assert!((nll.item().unwrap() + 2.0 * 3f32.ln() / 3.0).abs() < 1e-6);
}

#[test]
fn empty_batches_do_not_panic() {
    // N = 0 or a zero-sized spatial dim: no labels, a NaN mean (0 / 0) as PyTorch, no panic.
    for d in [[0usize, 3, 2], [2, 3, 0]] {
        let tape = Tape::new();
        let v = tape.var(Tensor::zeros(d));
        let none = v.cross_entropy_with(&[], 0.1, Reduction::None).unwrap();
        assert_eq!(none.dims(), [d[0], d[2]]);
        assert!(v.cross_entropy(&[]).unwrap().item().unwrap().is_nan());
        let sum = NllLoss::new().reduction(Reduction::Sum).forward(v, &[]);
        assert_eq!(sum.unwrap().item().unwrap(), 0.0);
    }
}
