//! Regressions of the soundness issue: each input here once crashed the process (SIGSEGV, an
//! allocation abort), panicked inside a `Result` API, wrapped an integer into a wrong answer,
//! or sent a gradient to the wrong node. Now each is an `Err` naming the op, a panic with a
//! message from an infallible constructor, or the right answer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use tapegrad_autograd::ops::max_pool2d_indices;
use tapegrad_autograd::tensor::sgemm;
use tapegrad_autograd::{Conv2dOptions, Error, Pool2dOptions, Tape, Tensor, Window2d};
use tapegrad_nn::loss::VarLosses;

const HALF: usize = 1 << 63;

/// The message of a panic, or `None` if `f` returned.
fn panic_message<R>(f: impl FnOnce() -> R) -> Option<String> {
    let err = catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

// 1. Element counts, strides and extents never wrap.

#[test]
fn a_shape_whose_element_count_overflows_is_refused() {
    // 2 * 2^63 wrapped to 0: the tensor was "empty", and its matmul read far outside it.
    for dims in [[2, HALF], [HALF, 2], [usize::MAX, usize::MAX]] {
        let e = Tensor::try_zeros(dims).unwrap_err();
        assert!(e.to_string().contains("isize::MAX bytes"), "{e}");
        assert!(Tensor::from_vec(vec![], dims).is_err());
        let msg = panic_message(|| Tensor::zeros(dims)).expect("zeros must refuse");
        assert!(
            msg.contains("full") && msg.contains(&format!("{}", dims[0])),
            "{msg}"
        );
    }
    // Even with a zero dimension, the other dimensions' product must fit (strides stay exact).
    assert!(Tensor::try_zeros([0, HALF, 4]).is_err());
    assert_eq!(Tensor::try_zeros([0, 1 << 20]).unwrap().numel(), 0);
}

#[test]
fn the_matmul_of_the_report_is_an_error_not_a_crash() {
    let a = Tensor::try_zeros([2, HALF]);
    let b = Tensor::try_zeros([HALF, 2]);
    assert!(a.is_err() && b.is_err());
    // The largest shapes that exist, multiplied into one that does not.
    let a = Tensor::zeros([1 << 40, 0]);
    let b = Tensor::zeros([0, 1 << 40]);
    let e = a.matmul(&b).unwrap_err();
    assert!(e.to_string().starts_with("matmul"), "{e}");
    assert!(a
        .matmul_t_sum_batch(
            &b,
            tapegrad_autograd::Transpose::No,
            tapegrad_autograd::Transpose::No
        )
        .is_err());
}

#[test]
fn reshape_to_a_shape_whose_count_wraps_to_the_same_is_refused() {
    // 2 * (2^63 + 2) wraps to 4.
    let t = Tensor::ones([4]);
    assert!(t.reshape([2, HALF + 2]).is_err());
    assert!(t.reshape_infer(&[2, -1, 1 << 62, 4]).is_err());
}

#[test]
fn broadcasting_to_a_shape_too_large_to_exist_is_refused() {
    // [2^30, 2^30, 0] holds nothing and its strides fit (2^60 elements is below isize::MAX
    // bytes), so it exists; with a factor 4 more it does not.
    let a = Tensor::zeros([1 << 30, 1, 0]);
    let b = Tensor::zeros([1, 1 << 30, 0]);
    assert_eq!(a.add(&b).unwrap().dims(), &[1 << 30, 1 << 30, 0]);
    let c = Tensor::zeros([1 << 30, 1, 1, 0]);
    let d = Tensor::zeros([1, 1 << 30, 4, 0]);
    let e = c.add(&d).unwrap_err();
    assert!(e.to_string().starts_with("add"), "{e}");
    assert!(c.broadcast_to([1 << 30, 1 << 30, 4, 0]).is_err());
}

#[test]
fn sgemm_refuses_extents_that_overflow() {
    let a = vec![1.0; 4];
    let b = vec![1.0; 4];
    let mut c = vec![0.0; 4];
    // (3 - 1) * 2^63 wraps to 0: the extent looked like 2 and the kernel read 2^64 bytes away.
    let e = sgemm(3, 1, 1, 1.0, &a, HALF, 1, &b, 1, 1, 0.0, &mut c, 1, 1).unwrap_err();
    assert!(
        e.to_string().contains("sgemm") && e.to_string().contains("a ("),
        "{e}"
    );
    let e = sgemm(1, 3, 1, 1.0, &a, 1, 1, &b, HALF, 1, 0.0, &mut c, 1, 1).unwrap_err();
    assert!(e.to_string().contains("b ("), "{e}");
    assert!(sgemm(2, 1, 2, 1.0, &a, 1, 1, &b, 1, 1, 0.0, &mut c, 1, usize::MAX).is_err());
    // A stride beyond isize::MAX would turn negative inside the kernel, even for one row.
    assert!(sgemm(1, 1, 1, 1.0, &a, HALF, 1, &b, 1, 1, 0.0, &mut c, 1, 1).is_err());
    // Too short a slice.
    assert!(sgemm(2, 2, 2, 1.0, &a[..3], 2, 1, &b, 2, 1, 0.0, &mut c, 2, 1).is_err());
}

#[test]
fn sgemm_refuses_output_strides_that_alias() {
    let a = vec![1.0; 4];
    let b = vec![1.0; 4];
    let mut c = vec![0.0; 4];
    // Zero strides: every element of C is the same cell, written by every dot product.
    assert!(sgemm(2, 2, 2, 1.0, &a, 2, 1, &b, 2, 1, 0.0, &mut c, 0, 0).is_err());
    assert!(sgemm(2, 2, 2, 1.0, &a, 2, 1, &b, 2, 1, 0.0, &mut c, 1, 1).is_err());
    // Inputs may alias themselves (a broadcast row), and the edge cases still compute.
    sgemm(2, 2, 2, 1.0, &a, 0, 1, &b, 2, 1, 0.0, &mut c, 2, 1).unwrap();
    assert_eq!(c, vec![2.0; 4]);
    sgemm(2, 2, 2, 1.0, &a, 2, 1, &b, 2, 1, 0.0, &mut c, 1, 2).unwrap();
    assert_eq!(c, vec![2.0; 4]);
    // An empty product touches nothing, whatever its strides; k = 0 scales C by beta.
    sgemm(0, 2, 2, 1.0, &[], HALF - 1, 1, &b, 2, 1, 0.0, &mut [], 0, 0).unwrap();
    sgemm(2, 0, 2, 1.0, &[], 0, 0, &[], 0, 0, 0.5, &mut c, 2, 1).unwrap();
    assert_eq!(c, vec![1.0; 4]);
}

// 2. Vars of two tapes never meet in one op.

#[test]
fn mixing_tapes_is_an_error_for_every_op() {
    let t1 = Tape::new();
    let t2 = Tape::new();
    let x = t1.var(Tensor::ones([2, 3, 4, 4]));
    let w = t2.var(Tensor::ones([3]));
    let b = t2.var(Tensor::zeros([3]));
    let foreign = |r: Result<Var2<'_>, Error>, op: &str| match r {
        Err(Error::ForeignTape { op: named }) => assert_eq!(named, op),
        Err(e) => panic!("{op}: {e}"),
        Ok(_) => panic!("{op}: accepted vars of two tapes"),
    };
    // The report: batch norm recorded x of one tape with w and b of another, and backward
    // sent their gradients to t1's nodes 1 and 2.
    foreign(
        x.batch_norm(None, Some(w), Some(b), true, 1e-5),
        "batch_norm",
    );
    foreign(
        x.batch_norm(None, Some(w), Some(b), false, 1e-5),
        "batch_norm",
    );
    let m = t2.var(Tensor::ones([4, 4]));
    foreign(x.matmul(m), "matmul");
    foreign(x.add(m), "add");
    foreign(x.mul(m), "mul");
    foreign(x.maximum(m), "maximum");
    foreign(x.gt(m), "gt");
    foreign(Var2::where_cond(x, m, x), "where");
    let k = t2.var(Tensor::ones([2, 3, 3, 3]));
    foreign(x.conv2d(k, None, Conv2dOptions::default()), "conv2d");
    let v = t1.var(Tensor::ones([3, 4]));
    foreign(v.linear(m, None), "linear");
    foreign(Var2::concat(&[v, m.narrow(0, 0, 3).unwrap()], 1), "concat");
    foreign(v.mse(t2.var(Tensor::ones([3, 4]))), "mse");
}

type Var2<'t> = tapegrad_autograd::Var<'t>;

#[test]
fn a_failed_batch_norm_leaves_the_running_statistics_alone() {
    let t1 = Tape::new();
    let t2 = Tape::new();
    let x = t1.var(Tensor::randn([4, 2, 3], &mut tapegrad_autograd::rng(1)));
    let w = t2.var(Tensor::ones([2]));
    let (mut mean, mut var) = (Tensor::zeros([2]), Tensor::ones([2]));
    let running = tapegrad_autograd::RunningStats {
        mean: &mut mean,
        var: &mut var,
        momentum: 0.1,
    };
    assert!(x
        .batch_norm(Some(running), Some(w), None, true, 1e-5)
        .is_err());
    assert_eq!(mean.to_vec(), vec![0.0; 2]);
    assert_eq!(var.to_vec(), vec![1.0; 2]);
}

#[test]
fn grads_of_another_tape_give_nothing() {
    let t1 = Tape::new();
    let t2 = Tape::new();
    let x = t1.var(Tensor::from_slice(&[3.0]));
    let y = t2.var(Tensor::from_slice(&[5.0]));
    // y = 2x: dy/dx = 2; `y` has x's id on its own tape.
    let g = x
        .mul_scalar(2.0)
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(g.get(x).unwrap().to_vec(), vec![2.0]);
    assert_eq!(x.id(), y.id());
    assert!(g.get(y).is_none());
    assert!(g.var(y).is_none());
    assert_eq!(g.get_or_zeros(y).to_vec(), vec![0.0]);
}

// 3. Zero-size dimensions.

#[test]
fn convolution_of_an_empty_plane_is_an_error_as_in_pytorch() {
    // Panicked with `chunk size must be non-zero` in unfold.
    let tape = Tape::new();
    let x = tape.var(Tensor::zeros([1, 1, 0, 4]));
    let w = tape.var(Tensor::ones([1, 1, 1, 1]));
    let o = Conv2dOptions::default().padding(1);
    let e = x.conv2d(w, None, o).unwrap_err();
    assert!(e.to_string().starts_with("conv2d"), "{e}");
    // The kernel itself: windows over padding only read the pad value.
    let win = Window2d::conv("t", (0, 4), (1, 1), (1, 1), (1, 1), (1, 1)).unwrap();
    let cols = Tensor::zeros([1, 1, 0, 4]).unfold(&win, 7.0).unwrap();
    assert_eq!(cols.dims(), &[1, 1, 12]);
    assert!(cols.data().iter().all(|&v| v == 7.0));
    let back = cols.fold(&win).unwrap();
    assert_eq!(back.dims(), &[1, 1, 0, 4]);
}

#[test]
fn empty_batches_and_channels_flow_through_convolution() {
    // y = conv(x) + b over an empty batch: an empty result; dL/dw = 0, dL/db = 0.
    let tape = Tape::new();
    let x = tape.var(Tensor::zeros([0, 2, 5, 5]));
    let w = tape.var(Tensor::ones([3, 2, 3, 3]));
    let b = tape.var(Tensor::ones([3]));
    let y = x
        .conv2d(w, Some(b), Conv2dOptions::default().padding(1))
        .unwrap();
    assert_eq!(y.dims(), vec![0, 3, 5, 5]);
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(g.get(w).unwrap().to_vec(), vec![0.0; 54]);
    assert_eq!(g.get(b).unwrap().to_vec(), vec![0.0; 3]);
    // Zero input channels: the sum over channels is empty, so y = b everywhere.
    let x = tape.var(Tensor::zeros([2, 0, 4, 4]));
    let w = tape.var(Tensor::zeros([3, 0, 3, 3]));
    let y = x.conv2d(w, Some(b), Conv2dOptions::default()).unwrap();
    assert_eq!(y.value().to_vec(), vec![1.0; 2 * 3 * 2 * 2]);
    // Pooling takes an empty batch, not an empty channel or plane (as PyTorch).
    let p = Pool2dOptions::new(2);
    assert_eq!(
        tape.var(Tensor::zeros([0, 2, 4, 4]))
            .max_pool2d(p)
            .unwrap()
            .dims(),
        vec![0, 2, 2, 2]
    );
    assert!(tape.var(Tensor::zeros([1, 0, 4, 4])).max_pool2d(p).is_err());
    assert!(tape
        .var(Tensor::zeros([1, 2, 0, 4]))
        .avg_pool2d(p, true)
        .is_err());
    // A linear layer with no input features gives its bias.
    let x = tape.var(Tensor::zeros([5, 0]));
    let w = tape.var(Tensor::zeros([2, 0]));
    let y = x.linear(w, Some(tape.var(Tensor::ones([2])))).unwrap();
    assert_eq!(y.value().to_vec(), vec![1.0; 10]);
}

// 4. Allocation failures.

#[test]
fn a_refused_allocation_is_an_error_or_a_panic_never_an_abort() {
    // 2^60 elements (4 EiB): a valid size no allocator grants. It aborted the process.
    let e = Tensor::try_zeros([1 << 40, 1 << 20]).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { op: "full", .. }), "{e}");
    let msg = panic_message(|| Tensor::zeros([1 << 40, 1 << 20])).expect("zeros must refuse");
    assert!(msg.contains("could not allocate"), "{msg}");
    let e = Tensor::ones([1 << 20, 1])
        .broadcast_to([1 << 20, 1 << 40])
        .unwrap_err();
    assert!(e.to_string().starts_with("broadcast_to"), "{e}");
    let e = Tensor::ones([1]).pad(&[(1 << 60, 0)], 0.0).unwrap_err();
    assert!(e.to_string().starts_with("pad"), "{e}");
}

// 5. Underflow and wrapping in window and padding arithmetic.

#[test]
fn max_pool_indices_never_point_at_padding() {
    // Every cell -inf: the first candidate was the padding cell at (-1, -1), and `0 - 1`
    // wrapped (or panicked in debug).
    let x = Tensor::full([1, 1, 3, 3], f32::NEG_INFINITY);
    let o = Pool2dOptions::new(2).padding(1);
    let idx = max_pool2d_indices(&x, o).unwrap();
    assert_eq!(idx.dims(), &[1, 1, 2, 2]);
    // The first input cell of each window: (0,0), (0,1), (1,0), (1,1) -> 0, 1, 3, 4.
    assert_eq!(idx.to_vec(), vec![0.0, 1.0, 3.0, 4.0]);
    // A NaN wins its window, as in PyTorch.
    // Windows: {(0,0)}, {(0,1), (0,2)}, {(1,0), (2,0)}, {(1,1), (1,2), (2,1), (2,2)}; ties
    // of zeros keep the first cell.
    let mut v = vec![0.0; 9];
    v[2] = f32::NAN;
    let x = Tensor::from_vec(v, [1, 1, 3, 3]).unwrap();
    assert_eq!(
        max_pool2d_indices(&x, o).unwrap().to_vec(),
        vec![0.0, 2.0, 3.0, 4.0]
    );
}

#[test]
fn paddings_near_usize_max_are_errors() {
    // 2 p wrapped to 0: a convolution "with padding 2^63" ran as one without padding.
    let tape = Tape::new();
    let x = tape.var(Tensor::ones([1, 1, 4, 4]));
    let w = tape.var(Tensor::ones([1, 1, 3, 3]));
    for p in [HALF, usize::MAX, usize::MAX / 2] {
        let o = Conv2dOptions {
            padding: (p, 0),
            ..Conv2dOptions::default()
        };
        assert!(x.conv2d(w, None, o).is_err(), "padding {p}");
        assert!(x.max_pool2d(Pool2dOptions::new(3).padding(p)).is_err());
    }
    // Stride and dilation at the edge.
    let o = Conv2dOptions::default().dilation(usize::MAX);
    assert!(x.conv2d(w, None, o).is_err());
    let o = Conv2dOptions::default().stride(usize::MAX);
    assert_eq!(x.conv2d(w, None, o).unwrap().dims(), vec![1, 1, 1, 1]);
}

#[test]
fn padding_a_scalar_keeps_it() {
    // `rank - 1` underflowed for a rank-0 tensor.
    let t = Tensor::scalar(1.5).pad(&[], 0.0).unwrap();
    assert_eq!(t.item().unwrap(), 1.5);
    let tape = Tape::new();
    let s = tape.var(Tensor::scalar(2.0));
    // y = pad(s): dy/ds = 1.
    let g = s.pad(&[], 0.0).unwrap().backward().unwrap();
    assert_eq!(g.get(s).unwrap().item().unwrap(), 1.0);
}

#[test]
fn a_window_built_by_hand_must_match_its_geometry() {
    // Window2d's fields are public: an output size the geometry does not give would index
    // past the input.
    let mut w = Window2d::conv("t", (4, 4), (3, 3), (1, 1), (0, 0), (1, 1)).unwrap();
    w.output = (5, 5);
    let x = Tensor::ones([1, 1, 4, 4]);
    assert!(x.unfold(&w, 0.0).is_err());
    assert!(Tensor::ones([1, 9, 25]).fold(&w).is_err());
}

#[test]
fn local_response_norm_with_a_window_wider_than_the_channels() {
    // size 2^62 on an empty tensor once looped 2^62 times; on two channels every window holds
    // both, so b_c = a_c / (k + alpha/size (a_0^2 + a_1^2))^beta.
    let tape = Tape::new();
    let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [1, 2, 1]).unwrap());
    for size in [3, 7, 1 << 20] {
        let y = x.local_response_norm(size, 0.5, 0.75, 2.0).unwrap().value();
        let d = (2.0 + 0.5 / size as f32 * 5.0).powf(0.75);
        assert!(y.allclose(
            &Tensor::from_vec(vec![1.0 / d, 2.0 / d], [1, 2, 1]).unwrap(),
            1e-6,
            0.0
        ));
    }
    // Size 1: no neighbours, b = a / (k + alpha a^2)^beta.
    let y = x.local_response_norm(1, 0.5, 1.0, 2.0).unwrap().value();
    assert!(y.allclose(
        &Tensor::from_vec(vec![1.0 / 2.5, 2.0 / 4.0], [1, 2, 1]).unwrap(),
        1e-6,
        0.0
    ));
    let empty = tape.var(Tensor::zeros([0, 1 << 40, 3]));
    assert_eq!(
        empty
            .local_response_norm(1 << 62, 1e-4, 0.75, 2.0)
            .unwrap()
            .dims(),
        vec![0, 1 << 40, 3]
    );
}
