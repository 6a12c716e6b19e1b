//! Gradients summed in place: the backward pass adds a second gradient of a value into the
//! first (`Tensor::add_assign`), adds the gradient of a narrowed piece into its slice of the
//! whole's (`Tensor::add_to_slice`) instead of padding it with zeros first, and relu's rule gates
//! the gradient in one pass (`Var::pass_where_positive`). Each gives what the padded, copied
//! and masked forms give; so does `Tensor::copy_to_slice`, which an inference convolution writes
//! its pieces with.

use proptest::prelude::*;
use tapegrad_autograd::gradcheck::gradcheck;
use tapegrad_autograd::{rng, BackwardOptions, Tape, Tensor, Var};

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().iter().map(|x| x.to_bits()).collect()
}

/// A shape of rank 1 to 4, an axis of it, and a slice `start..start + len` of that axis.
fn shape_and_slice() -> impl Strategy<Value = (Vec<usize>, usize, usize, usize)> {
    prop::collection::vec(1usize..5, 1..=4).prop_flat_map(|dims| {
        let r = dims.len();
        (Just(dims), 0..r).prop_flat_map(|(dims, axis)| {
            let n = dims[axis];
            (Just(dims), Just(axis), 0..n).prop_flat_map(move |(dims, axis, start)| {
                (Just(dims), Just(axis), Just(start), 0..=n - start)
            })
        })
    })
}

/// A value cut into pieces at `cuts` along `axis`, each piece scaled and all rejoined, plus a
/// function of the whole: the gradient of `x` gets one slice from each piece and the whole from
/// the last term.
fn cut_and_rejoin<'t>(x: Var<'t>, axis: usize, cuts: &[usize]) -> Var<'t> {
    let n = x.shape().dim(axis);
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, &end) in cuts.iter().chain(std::iter::once(&n)).enumerate() {
        let piece = x.narrow(axis as isize, start, end - start).unwrap();
        parts.push(piece.mul_scalar(i as f32 + 2.0));
        start = end;
    }
    let joined = Var::concat(&parts, axis as isize).unwrap();
    // And a smooth function of the whole, whose gradient is not constant.
    joined.add(x.tanh()).unwrap().sum_all()
}

/// The gradient of `cut_and_rejoin` at `x`, by a plain backward (slices summed in place) or one
/// that records (narrow's gradient padded to the whole and added as a var).
fn grad_of_pieces(x: &Tensor, axis: usize, cuts: &[usize], record: bool) -> Tensor {
    let tape = Tape::new();
    let v = tape.var(x.clone());
    let y = cut_and_rejoin(v, axis, cuts);
    let opts = BackwardOptions {
        create_graph: record,
        ..Default::default()
    };
    let g = y.backward_with_options(Tensor::scalar(1.0), opts).unwrap();
    g.get(v).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn add_assign_is_add_and_leaves_a_sharing_tensor_alone(
        dims in prop::collection::vec(1usize..6, 0..=3),
        seed in any::<u64>(),
    ) {
        let mut g = rng(seed);
        let a = Tensor::randn(dims.clone(), &mut g);
        let b = Tensor::randn(dims, &mut g);
        let sum = a.add(&b).unwrap();
        let before = bits(&a);
        let shared = a.clone();
        let mut acc = a;
        acc.add_assign(&b).unwrap();
        prop_assert_eq!(bits(&acc), bits(&sum));
        // The clone kept its values: the storage was copied before being written.
        prop_assert_eq!(bits(&shared), before);
        prop_assert!(!shared.shares_storage(&acc));
    }

    #[test]
    fn a_part_added_or_copied_into_a_slice_is_the_padded_or_joined_whole(
        (dims, axis, start, len) in shape_and_slice(),
        seed in any::<u64>(),
    ) {
        let mut g = rng(seed);
        let mut whole = Tensor::randn(dims.clone(), &mut g);
        let mut part_dims = dims.clone();
        part_dims[axis] = len;
        let part = Tensor::randn(part_dims, &mut g);
        let mut pads = vec![(0, 0); dims.len()];
        pads[axis] = (start, dims[axis] - start - len);
        let expected = whole.add(&part.pad(&pads, 0.0).unwrap()).unwrap();
        let before = whole.clone();
        whole.add_to_slice(axis, start, &part).unwrap();
        prop_assert_eq!(bits(&whole), bits(&expected));
        // Copied in, the part replaces the slice: the whole is its pieces around the part.
        let ax = axis as isize;
        let end = start + len;
        let head = before.narrow(ax, 0, start).unwrap();
        let tail = before.narrow(ax, end, dims[axis] - end).unwrap();
        let joined = Tensor::concat(&[&head, &part, &tail], ax).unwrap();
        let mut copied = before;
        copied.copy_to_slice(axis, start, &part).unwrap();
        prop_assert_eq!(bits(&copied), bits(&joined));
    }

    #[test]
    fn pieces_of_a_value_get_the_padded_gradient(
        (dims, axis, cut, _) in shape_and_slice(),
        seed in any::<u64>(),
    ) {
        let x = Tensor::randn(dims, &mut rng(seed));
        let cuts: Vec<usize> = if cut > 0 { vec![cut] } else { vec![] };
        let in_place = grad_of_pieces(&x, axis, &cuts, false);
        let padded = grad_of_pieces(&x, axis, &cuts, true);
        prop_assert_eq!(bits(&in_place), bits(&padded));
    }

    #[test]
    fn pass_where_positive_is_the_masked_product_and_its_rule_checks(
        dims in prop::collection::vec(1usize..6, 0..=3),
        seed in any::<u64>(),
    ) {
        let mut g = rng(seed);
        let grad = Tensor::randn(dims.clone(), &mut g);
        let of = Tensor::randn(dims, &mut g);
        let tape = Tape::new();
        let gated = tape.input(grad.clone()).pass_where_positive(&of).unwrap().value();
        let mask = of.map(|y| (y > 0.0) as u8 as f32);
        let product = grad.mul(&mask).unwrap();
        // Equal values (a product with 0 may be -0).
        prop_assert_eq!(gated.to_vec(), product.to_vec());
        // Its rule against finite differences (in the gradient; `of` is a constant).
        let report = gradcheck(move |_, v| v[0].pass_where_positive(&of), &[grad]).unwrap();
        prop_assert!(report.passed(), "{report}");
    }
}

#[test]
fn pass_where_positive_blocks_non_finite_gradients_and_checks_shapes() {
    let tape = Tape::new();
    let g = tape.input(Tensor::from_slice(&[f32::NAN, f32::INFINITY, 3.0]));
    let of = Tensor::from_slice(&[-1.0, 0.0, 2.0]);
    let out = g.pass_where_positive(&of).unwrap().value().to_vec();
    assert_eq!(out, [0.0, 0.0, 3.0]);
    let err = g
        .pass_where_positive(&Tensor::from_slice(&[1.0, 2.0]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pass_where_positive") && err.contains("[3]"),
        "{err}"
    );
}

#[test]
fn relu_differentiates_twice_through_its_gate() {
    // d/dx of (dy/dx . v) for y = sum(relu(x)^2): 2 v where x > 0.
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[-1.0, 0.5, 2.0]));
    let y = x.relu().mul(x.relu()).unwrap().sum_all();
    let dy = tapegrad_autograd::grad(&[y], &[x], true).unwrap()[0];
    let v = tape.input(Tensor::from_slice(&[1.0, 2.0, 3.0]));
    let inner = dy.mul(v).unwrap().sum_all();
    let d2 = tapegrad_autograd::grad(&[inner], &[x], false).unwrap()[0];
    assert_eq!(d2.value().to_vec(), [0.0, 4.0, 6.0]);
}

#[test]
fn mismatched_in_place_sums_are_errors() {
    let mut a = Tensor::zeros([2, 3]);
    let err = a
        .add_assign(&Tensor::zeros([3, 2]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("add_assign") && err.contains("[2, 3]"),
        "{err}"
    );
    for (axis, start, part) in [(1, 2, [2, 2]), (2, 0, [2, 3]), (0, 0, [2, 2])] {
        let err = a
            .add_to_slice(axis, start, &Tensor::zeros(part))
            .unwrap_err()
            .to_string();
        assert!(err.contains("add_to_slice"), "{err}");
    }
    assert_eq!(a.to_vec(), [0.0; 6], "a refused sum changes nothing");
}
