//! Strategies and checks shared by the workspace tests.

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::prelude::{gradcheck_with, GradcheckOptions, Reduction, Tape, Tensor, Var};

/// The gradient checks' settings: the defaults (extrapolated differences, tolerances from the
/// estimated error), with a fixed projection seed.
pub const OPTS: GradcheckOptions = GradcheckOptions {
    seed: 7,
    ..GradcheckOptions::DEFAULT
};

/// Passes when the tape's gradients of `f` at `inputs` match central finite differences.
pub fn check<F>(f: F, inputs: &[Tensor]) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> tapegrad::prelude::Result<Var<'t>>,
{
    check_with(f, inputs, OPTS)
}

/// [`check`] with explicit options.
pub fn check_with<F>(f: F, inputs: &[Tensor], opts: GradcheckOptions) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> tapegrad::prelude::Result<Var<'t>>,
{
    let shapes: Vec<String> = inputs.iter().map(|t| t.shape().to_string()).collect();
    let report = gradcheck_with(f, inputs, opts)
        .map_err(|e| TestCaseError::fail(format!("gradcheck failed to run: {e}")))?;
    prop_assert!(
        report.passed(),
        "gradients disagree for inputs {shapes:?}:\n{report}"
    );
    Ok(())
}

/// Dimensions of rank `min..=max`, each of size 1 to 4.
pub fn dims(min_rank: usize, max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, min_rank..=max_rank)
}

/// A tensor of shape `dims` with values uniform in `[lo, hi)`.
pub fn tensor_of(dims: Vec<usize>, lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    let n: usize = dims.iter().product();
    prop::collection::vec(lo..hi, n).prop_map(move |v| Tensor::from_vec(v, dims.clone()).unwrap())
}

/// A tensor of random rank `min..=max` and values in `[lo, hi)`.
pub fn tensor(min_rank: usize, max_rank: usize, lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    dims(min_rank, max_rank).prop_flat_map(move |d| tensor_of(d, lo, hi))
}

/// Values `±[lo, hi)` with random signs: at least `lo` away from 0, where `abs`, `relu` and
/// friends have their kink.
pub fn away_from_zero_of(dims: Vec<usize>, lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    let n: usize = dims.iter().product();
    prop::collection::vec((lo..hi, any::<bool>()), n).prop_map(move |v| {
        let data = v
            .into_iter()
            .map(|(m, neg)| if neg { -m } else { m })
            .collect();
        Tensor::from_vec(data, dims.clone()).unwrap()
    })
}

/// [`away_from_zero_of`] with a random shape of rank `min..=max`.
pub fn away_from_zero(min_rank: usize, max_rank: usize) -> impl Strategy<Value = Tensor> {
    dims(min_rank, max_rank).prop_flat_map(|d| away_from_zero_of(d, 0.1, 2.0))
}

/// Values `i * step + phase + u` with integer `i` in `-2..2` and `|u| <= jitter`: two tensors
/// with phases half a step apart never come closer than `step / 2 - 2 jitter`, so `maximum`,
/// `minimum` and `clamp` have no ties within a finite-difference step.
pub fn grid_of(
    dims: Vec<usize>,
    step: f32,
    phase: f32,
    jitter: f32,
) -> impl Strategy<Value = Tensor> {
    let n: usize = dims.iter().product();
    prop::collection::vec((-2i32..2, -jitter..=jitter), n).prop_map(move |v| {
        let data = v
            .into_iter()
            .map(|(i, u)| i as f32 * step + phase + u)
            .collect();
        Tensor::from_vec(data, dims.clone()).unwrap()
    })
}

/// A tensor of shape `dims` whose values are pairwise at least 0.3 apart (a shuffled ramp), so a
/// max has a unique winner that a step of 1e-2 cannot change.
pub fn distinct_of(dims: Vec<usize>) -> impl Strategy<Value = Tensor> {
    let n: usize = dims.iter().product();
    Just((0..n).collect::<Vec<usize>>())
        .prop_shuffle()
        .prop_map(move |order| {
            let data = order
                .into_iter()
                .map(|i| i as f32 * 0.3 - n as f32 * 0.15)
                .collect();
            Tensor::from_vec(data, dims.clone()).unwrap()
        })
}

/// `n` shapes that broadcast together (NumPy rules): a common shape of rank `0..=max_rank`, from
/// which each operand drops some leading dimensions and sets some of the others (30%) to 1.
pub fn broadcast_shapes(n: usize, max_rank: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    dims(0, max_rank).prop_flat_map(move |out| {
        let r = out.len();
        let one = (
            leading_drop(r),
            prop::collection::vec(prop::bool::weighted(0.3), r),
        );
        prop::collection::vec(one, n).prop_map(move |picks| {
            picks
                .into_iter()
                .map(|(drop, ones)| {
                    (drop..r)
                        .map(|i| if ones[i] { 1 } else { out[i] })
                        .collect()
                })
                .collect()
        })
    })
}

/// Two shapes that broadcast together.
pub fn broadcast_pair(max_rank: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    broadcast_shapes(2, max_rank).prop_map(|mut v| {
        let b = v.pop().unwrap();
        let a = v.pop().unwrap();
        (a, b)
    })
}

/// A shape `small` that broadcasts to `big` (as for `broadcast_to` and `sum_to`): `(small, big)`.
pub fn broadcastable_to(max_rank: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    dims(0, max_rank).prop_flat_map(|big| {
        let r = big.len();
        (
            leading_drop(r),
            prop::collection::vec(prop::bool::weighted(0.3), r),
        )
            .prop_map(move |(drop, ones)| {
                let small = (drop..r)
                    .map(|i| if ones[i] { 1 } else { big[i] })
                    .collect();
                (small, big.clone())
            })
    })
}

/// How many leading dimensions an operand drops: usually none, so that most cases keep their
/// rank and broadcast through size-1 dimensions, sometimes any number up to all of them.
fn leading_drop(r: usize) -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(0), 1 => 0..=r]
}

/// A set of distinct axes of a rank-`r` tensor, each written either as `i` or as `i - r`; may be
/// empty (which the reductions read as "every axis").
pub fn axes_of(r: usize) -> impl Strategy<Value = Vec<isize>> {
    prop::collection::vec((any::<bool>(), any::<bool>()), r).prop_map(move |picks| {
        picks
            .into_iter()
            .enumerate()
            .filter(|(_, (take, _))| *take)
            .map(|(i, (_, negative))| {
                if negative {
                    i as isize - r as isize
                } else {
                    i as isize
                }
            })
            .collect()
    })
}

/// Mean, sum or none.
pub fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::Mean),
        Just(Reduction::Sum),
        Just(Reduction::None)
    ]
}

/// The golden directory: `$GOLDEN_DIR`, else `tests/golden/data` in the workspace.
pub fn golden_dir() -> std::path::PathBuf {
    match std::env::var_os("GOLDEN_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data"),
    }
}

/// One worked example of the golden `seed_examples.json`.
pub fn seed_example(name: &str) -> serde_json::Value {
    let path = golden_dir().join("seed_examples.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set GOLDEN_DIR to the golden data directory)",
            path.display()
        )
    });
    let all: serde_json::Value =
        serde_json::from_str(&text).expect("seed_examples.json is valid JSON");
    all[name].clone()
}

/// Equal shapes and equal bits, NaN included.
pub fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    a.shape() == b.shape()
        && a.data()
            .iter()
            .zip(b.data())
            .all(|(x, y)| x.to_bits() == y.to_bits())
}
