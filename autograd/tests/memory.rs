//! What the tape frees and recomputes, and that doing so changes no gradient: released values,
//! recomputable nodes (the unfolded input of a convolution or a pooling layer), checkpointed
//! compositions, and
//! convolutions run on pieces of the batch.

use tapegrad_autograd::tape::Split;
use tapegrad_autograd::{
    rng, BackwardOptions, Conv2dOptions, Op, Pool2dOptions, Tape, Tensor, Transpose, Var, Window2d,
};

/// A tape that frees and rebuilds every released recomputable value, however small: the
/// values here are small, and the path under test is the rebuilding one.
fn rebuilding_tape() -> Tape {
    let t = Tape::new();
    t.set_recompute_from(0);
    t
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().iter().map(|x| x.to_bits()).collect()
}

/// conv2d written out as its composition, nothing released or recomputed: the saved path.
fn conv_saved<'t>(x: Var<'t>, w: Var<'t>, b: Var<'t>, o: Conv2dOptions) -> Var<'t> {
    let (xs, ws) = (x.shape(), w.shape());
    let win = Window2d::conv(
        "test",
        (xs.dim(2), xs.dim(3)),
        (ws.dim(2), ws.dim(3)),
        o.stride,
        o.padding,
        o.dilation,
    )
    .unwrap();
    let (oh, ow) = win.output;
    let k = ws.dim(1) * ws.dim(2) * ws.dim(3);
    let cols = x.unfold(&win, 0.0).unwrap();
    let y = w
        .reshape([ws.dim(0), k])
        .unwrap()
        .matmul_t(cols, Transpose::No, Transpose::No)
        .unwrap()
        .reshape([xs.dim(0), ws.dim(0), oh, ow])
        .unwrap();
    y.add(b.reshape([ws.dim(0), 1, 1]).unwrap()).unwrap()
}

/// Gradients of sum(conv(x) * r) for x, w, b.
fn conv_grads(
    xv: &Tensor,
    wv: &Tensor,
    bv: &Tensor,
    o: Conv2dOptions,
    saved: bool,
) -> (Tensor, Vec<Tensor>) {
    let tape = rebuilding_tape();
    let (x, w, b) = (
        tape.var(xv.clone()),
        tape.var(wv.clone()),
        tape.var(bv.clone()),
    );
    let y = if saved {
        conv_saved(x, w, b, o)
    } else {
        x.conv2d(w, Some(b), o).unwrap()
    };
    let r = tape.input(Tensor::randn(y.shape(), &mut rng(9)));
    let loss = y.mul(r).unwrap().sum(&[], false).unwrap();
    let g = loss.backward().unwrap();
    (
        y.value(),
        [x, w, b].iter().map(|&v| g.get(v).unwrap()).collect(),
    )
}

#[test]
fn recomputed_unfold_gives_the_saved_gradients_bit_for_bit() {
    let mut g = rng(1);
    for o in [
        Conv2dOptions::default().padding(1),
        Conv2dOptions::default().stride(2),
        Conv2dOptions::default().padding(2).dilation(2),
    ] {
        let x = Tensor::randn([3, 4, 9, 8], &mut g);
        let w = Tensor::randn([5, 4, 3, 3], &mut g);
        let b = Tensor::randn([5], &mut g);
        let (y0, saved) = conv_grads(&x, &w, &b, o, true);
        let (y1, recomputed) = conv_grads(&x, &w, &b, o, false);
        assert_eq!(bits(&y0), bits(&y1), "{o:?}: values");
        for (a, b) in saved.iter().zip(&recomputed) {
            assert_eq!(bits(a), bits(b), "{o:?}: gradients");
        }
    }
}

#[test]
fn convolution_in_pieces_of_the_batch_matches_the_whole() {
    // 16 x 9 x 96 x 96 floats unfold to 5.3 MB per image: 25 images per 128 MiB piece, so a
    // batch of 30 runs in two pieces.
    let mut g = rng(2);
    let x = Tensor::randn([30, 16, 96, 96], &mut g);
    let w = Tensor::randn([2, 16, 3, 3], &mut g);
    let b = Tensor::randn([2], &mut g);
    let o = Conv2dOptions::default().padding(1);
    let (y0, saved) = conv_grads(&x, &w, &b, o, true);
    let (y1, pieces) = conv_grads(&x, &w, &b, o, false);
    // Each image's output and input gradient is computed alone either way.
    assert_eq!(bits(&y0), bits(&y1));
    // Where nothing needs a gradient, the pieces are written into the output one by one.
    let tape = Tape::inference();
    let y2 = tape.input(x.clone());
    let y2 = y2.conv2d(tape.input(w.clone()), Some(tape.input(b.clone())), o);
    assert_eq!(bits(&y0), bits(&y2.unwrap().value()));
    assert_eq!(bits(&saved[0]), bits(&pieces[0]));
    // The weight and bias gradients sum over the batch in another order.
    for (a, b) in saved[1..].iter().zip(&pieces[1..]) {
        let scale = a.to_vec().iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (p, q) in a.to_vec().iter().zip(b.to_vec()) {
            assert!((p - q).abs() <= 1e-4 * scale, "{p} vs {q}");
        }
    }
}

const SQUASH: Op = Op::new("squash", "a checkpointed composition");

/// tanh(x * w) summed over the last axis: a small composition with a weight.
fn squash<'a>(v: &[Var<'a>]) -> tapegrad_autograd::Result<Var<'a>> {
    v[0].mul(v[1])?.tanh().sum(&[-1], false)
}

fn squash_grads(split: Option<Split>, create: bool) -> Vec<Tensor> {
    let mut g = rng(3);
    let tape = rebuilding_tape();
    let x = tape.var(Tensor::randn([6, 5], &mut g));
    let w = tape.var(Tensor::randn([5], &mut g));
    let y = match split {
        Some(s) => tape.checkpoint(SQUASH, &[x, w], s, squash).unwrap(),
        None => squash(&[x, w]).unwrap(),
    };
    let loss = y.square().sum(&[], false).unwrap();
    let opts = BackwardOptions {
        create_graph: create,
        ..Default::default()
    };
    let grads = loss
        .backward_with_options(Tensor::scalar(1.0), opts)
        .unwrap();
    if !create {
        return vec![grads.get(x).unwrap(), grads.get(w).unwrap()];
    }
    // Second order: d/dw of sum(dL/dx).
    let gx = grads.var(x).unwrap().sum(&[], false).unwrap();
    vec![gx.backward().unwrap().get(w).unwrap()]
}

#[test]
fn checkpoint_gives_the_saved_gradients_bit_for_bit() {
    let saved = squash_grads(None, false);
    let whole = squash_grads(Some(Split::Whole), false);
    for (a, b) in saved.iter().zip(&whole) {
        assert_eq!(bits(a), bits(b));
    }
    // In pieces of two rows: each row's gradient is its own; w's sums the rows.
    let pieces = squash_grads(
        Some(Split::Batch {
            batched: 1,
            chunk: 2,
        }),
        false,
    );
    assert_eq!(bits(&saved[0]), bits(&pieces[0]));
    for (p, q) in saved[1].to_vec().iter().zip(pieces[1].to_vec()) {
        assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
    }
}

#[test]
fn checkpoint_differentiates_twice() {
    // The recorded second backward sums the same terms through other nodes: equal up to
    // rounding.
    let saved = squash_grads(None, true);
    let whole = squash_grads(Some(Split::Whole), true);
    for (p, q) in saved[0].to_vec().iter().zip(whole[0].to_vec()) {
        assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
    }
}

#[test]
fn checkpoint_keeps_no_intermediate_and_checks_its_batch() {
    let tape = rebuilding_tape();
    let x = tape.var(Tensor::ones([4, 3]));
    let w = tape.var(Tensor::ones([3]));
    let before = tape.len();
    let split = Split::Batch {
        batched: 1,
        chunk: 3,
    };
    tape.checkpoint(SQUASH, &[x, w], split, squash).unwrap();
    assert_eq!(tape.len(), before + 1, "one node for the composition");
    // A composition that does not keep the batch along axis 0 cannot be split.
    let bad = tape.checkpoint(SQUASH, &[x, w], split, |v| v[0].sum(&[], false));
    assert!(bad.is_err());
    // Batched inputs must agree on the batch size.
    let both = Split::Batch {
        batched: 0b11,
        chunk: 2,
    };
    assert!(tape.checkpoint(SQUASH, &[x, w], both, squash).is_err());
}

#[test]
fn pooling_with_recomputed_windows_gives_the_saved_gradients_bit_for_bit() {
    let mut g = rng(4);
    let xv = Tensor::randn([2, 3, 9, 9], &mut g);
    let o = Pool2dOptions::new(3).stride(2).padding(1);
    let run = |pooled: bool| {
        let tape = rebuilding_tape();
        let x = tape.var(xv.clone());
        let y = if pooled {
            x.max_pool2d(o).unwrap()
        } else {
            let w = Window2d::pool("test", (9, 9), (3, 3), (2, 2), (1, 1), (1, 1), false).unwrap();
            x.reshape([6, 1, 9, 9])
                .unwrap()
                .unfold(&w, f32::NEG_INFINITY)
                .unwrap()
                .max(&[1], false)
                .unwrap()
                .reshape([2, 3, 5, 5])
                .unwrap()
        };
        let r = tape.input(Tensor::randn(y.shape(), &mut rng(5)));
        let gx = y
            .mul(r)
            .unwrap()
            .sum(&[], false)
            .unwrap()
            .backward()
            .unwrap();
        (y.value(), gx.get(x).unwrap())
    };
    let (y0, g0) = run(false);
    let (y1, g1) = run(true);
    assert_eq!(bits(&y0), bits(&y1));
    assert_eq!(bits(&g0), bits(&g1));
}

#[test]
fn a_composite_frees_its_intermediates_that_no_rule_reads() {
    // A convolution with bias: unfold, matmul, reshape, + bias. No rule reads the product
    // before the bias (matmul reads its operands, add nothing), so once conv2d returns the
    // tape holds the input, the weights, the unfolded input (rebuilt in backward) and the
    // output, and the gradients are those of the composition written out.
    let tape = rebuilding_tape();
    let g = &mut rng(3);
    let x = tape.var(Tensor::randn([2, 3, 10, 10], g));
    let w = tape.var(Tensor::randn([4, 3, 3, 3], g));
    let b = tape.var(Tensor::randn([4], g));
    let o = Conv2dOptions::default().padding(1);
    let before = tape.held_bytes();
    let y = x.conv2d(w, Some(b), o).unwrap();
    let out = 2 * 4 * 10 * 10 * 4;
    assert_eq!(tape.held_bytes() - before, out, "only the output is new");
    let loss = y.square().sum(&[], false).unwrap();
    let grads = loss.backward().unwrap();
    let tape2 = Tape::new();
    let (x2, w2, b2) = (
        tape2.var(x.value()),
        tape2.var(w.value()),
        tape2.var(b.value()),
    );
    let y2 = conv_saved(x2, w2, b2, o);
    let grads2 = y2.square().sum(&[], false).unwrap().backward().unwrap();
    for (v, v2) in [(x, x2), (w, w2), (b, b2)] {
        assert_eq!(bits(&grads.get(v).unwrap()), bits(&grads2.get(v2).unwrap()));
    }
}

#[test]
fn released_values_are_freed_unless_a_rule_reads_them() {
    let tape = rebuilding_tape();
    let x = tape.var(Tensor::from_slice(&[-1.0, 2.0]));
    let s = x.add_scalar(1.0); // relu reads its result, not this
    let r = s.relu();
    let y = r.mul(r).unwrap(); // mul reads r
    s.release();
    r.release();
    assert!(s.is_released(), "no rule reads s");
    assert!(s.value().to_vec().iter().all(|v| v.is_nan()));
    assert_eq!(s.shape().dims(), [2]);
    assert!(!r.is_released(), "relu and mul read r");
    // y = relu(x + 1)^2, so dy/dx = 2 relu(x + 1) (x + 1 > 0): [0, 6]
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(g.get(x).unwrap().to_vec(), vec![0.0, 6.0]);
    assert!(r.is_released(), "backward has passed r");
}

#[test]
fn a_recomputable_value_reads_right_after_release() {
    let tape = rebuilding_tape();
    let x = tape.var(Tensor::randn([1, 2, 5, 5], &mut rng(6)));
    let w = Window2d::conv("test", (5, 5), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
    let cols = x.unfold(&w, 0.0).unwrap();
    let before = cols.value();
    cols.release();
    assert!(cols.is_released());
    assert_eq!(bits(&cols.value()), bits(&before));
}

#[test]
fn small_recomputable_values_are_kept_and_large_ones_rebuilt_by_default() {
    let tape = Tape::new();
    let x = tape.var(Tensor::randn([1, 2, 5, 5], &mut rng(6)));
    let w = Window2d::conv("test", (5, 5), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
    // 1 x 18 x 25 values: below the default 8 MiB, kept for the rule that reads them.
    let small = x.unfold(&w, 0.0).unwrap();
    let read = small.mul(small).unwrap().sum(&[], false).unwrap();
    small.release();
    assert!(!small.is_released());
    // 9 x 2^18 values (9 MiB): freed now, rebuilt when read.
    let big_x = tape.var(Tensor::randn([1, 1, 512, 512], &mut rng(7)));
    let wb = Window2d::conv("test", (512, 512), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
    let big = big_x.unfold(&wb, 0.0).unwrap();
    let before = big.value();
    let read_big = big.mul(big).unwrap();
    big.release();
    assert!(big.is_released());
    assert_eq!(bits(&big.value()), bits(&before));
    // Both are freed once backward has passed them.
    let loss = read.add(read_big.sum(&[], false).unwrap()).unwrap();
    loss.backward().unwrap();
    assert!(small.is_released() && big.is_released());
}

#[test]
fn an_inference_tape_frees_released_outputs() {
    let tape = Tape::inference();
    let x = tape.input(Tensor::ones([2, 3]));
    let a = x.relu();
    let b = a.exp();
    a.release();
    assert!(a.is_released(), "nothing is saved on an inference tape");
    assert!(!b.is_released());
}
