//! Hostile geometry for sliding windows: `Window2d`, unfold and fold, convolutions and pooling
//! of tensors and vars, with sizes drawn from {0, 1, 2, 7, 2^31, 2^62, usize::MAX} and random
//! kernels, strides, paddings, dilations and groups. Every call returns `Ok` or `Err`.

mod hostile;

use hostile::{config, dim, option, returns, tensor, usually, Capped};
use proptest::prelude::*;
use tapegrad_autograd::ops::max_pool2d_indices;
use tapegrad_autograd::{Conv2dOptions, Pool2dOptions, Tape, Tensor, Window2d};

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn pair() -> impl Strategy<Value = (usize, usize)> {
    (option(), option())
}

/// A pair of mostly usual values, now and then an edge.
fn usual_pair(r: std::ops::Range<usize>) -> impl Strategy<Value = (usize, usize)> {
    (usually(r.clone()), usually(r))
}

/// An NCHW shape: mostly small (empty batches, channels and planes included), now and then
/// with an edge.
fn nchw() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![8 => 1usize..6, 1 => Just(0), 1 => dim()], 4)
}

fn conv_options() -> impl Strategy<Value = Conv2dOptions> {
    (
        usual_pair(1..4),
        usual_pair(0..3),
        usual_pair(1..3),
        usually(1..3),
    )
        .prop_map(|(stride, padding, dilation, groups)| Conv2dOptions {
            stride,
            padding,
            dilation,
            groups,
        })
}

/// An input, weights whose channels usually fit it, and options.
fn conv_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Conv2dOptions)> {
    (
        conv_options(),
        usually(0..4),
        usually(0..4),
        usual_pair(0..7),
        usual_pair(1..4),
        usually(0..3),
        any::<bool>(),
    )
        .prop_map(|(o, cg, og, (h, w), (kh, kw), n, fits)| {
            let g = o.groups;
            let c = if fits { g.saturating_mul(cg) } else { cg };
            let x = vec![n, c, h, w];
            let k = vec![g.saturating_mul(og), cg, kh, kw];
            (x, k, o)
        })
}

fn pool_options() -> impl Strategy<Value = Pool2dOptions> {
    (
        usual_pair(1..4),
        usual_pair(1..4),
        usual_pair(0..2),
        usual_pair(1..3),
        any::<bool>(),
    )
        .prop_map(
            |(kernel, stride, padding, dilation, ceil_mode)| Pool2dOptions {
                kernel,
                stride,
                padding,
                dilation,
                ceil_mode,
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn windows(input in pair(), kernel in pair(), stride in pair(), padding in pair(),
               dilation in pair(), ceil in any::<bool>(), output in pair()) {
        returns("Window2d::conv", || {
            let w = Window2d::conv("t", input, kernel, stride, padding, dilation)?;
            Ok((w.positions(), w.cells()))
        })?;
        returns("Window2d::pool", || {
            let w = Window2d::pool("t", input, kernel, stride, padding, dilation, ceil)?;
            Ok((w.positions(), w.cells()))
        })?;
        // A window built by hand, its output size from anywhere.
        let w = Window2d { kernel, stride, padding, dilation, input, output };
        returns("Window2d::validate", || w.validate("t"))?;
        let x = tensor(&[1, 1, input.0, input.1], 1);
        returns("unfold by hand", || x.unfold(&w, 0.0))?;
        returns("fold by hand", || tensor(&[1, kernel.0, output.0], 2).fold(&w))?;
    }

    #[test]
    fn unfold_and_fold(d in nchw(), kernel in usual_pair(1..4), stride in usual_pair(1..4),
                       padding in usual_pair(0..3), dilation in usual_pair(1..3),
                       seed in 0u64..100) {
        let x = tensor(&d, seed);
        let Ok(w) = Window2d::conv("t", (x.dims()[2], x.dims()[3]), kernel, stride, padding,
            dilation) else { return Ok(()) };
        returns("unfold", || x.unfold(&w, -1.0))?;
        returns("fold", || {
            let cols = x.unfold(&w, 0.0)?;
            cols.fold(&w)
        })?;
        let rows = (x.dims()[1]).saturating_mul(w.cells());
        returns("fold of columns", || tensor(&[x.dims()[0], rows, w.positions()], seed).fold(&w))?;
        let tape = Tape::new();
        let v = tape.var(x.clone());
        returns("Var::unfold", || v.unfold(&w, 0.0))?;
        returns("Var::unfold backward", || v.unfold(&w, 0.0)?.sum(&[], false)?.backward())?;
    }

    #[test]
    fn convolution((d, kd, o) in conv_case(), seed in 0u64..100, bias in any::<bool>(),
                   out_pad in usual_pair(0..2)) {
        let tape = Tape::new();
        let x = tape.var(tensor(&d, seed));
        let w = tape.var(tensor(&kd, seed + 1));
        let b = bias.then(|| tape.var(tensor(&[kd[0]], seed + 2)));
        returns("conv2d", || x.conv2d(w, b, o))?;
        returns("conv2d backward", || x.conv2d(w, b, o)?.sum(&[], false)?.backward())?;
        // Transposed: weights [C, O/groups, kh, kw].
        let wt = tape.var(tensor(&[d[1], kd[1], kd[2], kd[3]], seed + 3));
        returns("conv_transpose2d", || x.conv_transpose2d(wt, None, o, out_pad))?;
        returns("conv_transpose2d backward", || {
            x.conv_transpose2d(wt, None, o, out_pad)?.sum(&[], false)?.backward()
        })?;
        let infer = Tape::inference();
        let xi = infer.input(tensor(&d, seed));
        let wi = infer.input(tensor(&kd, seed + 1));
        returns("conv2d inference", || xi.conv2d(wi, None, o))?;
    }

    #[test]
    fn pooling(d in nchw(), o in pool_options(), seed in 0u64..100, include in any::<bool>(),
               out in (dim(), dim())) {
        let t = tensor(&d, seed);
        let tape = Tape::new();
        let x = tape.var(t.clone());
        returns("max_pool2d", || x.max_pool2d(o))?;
        returns("max_pool2d backward", || x.max_pool2d(o)?.sum(&[], false)?.backward())?;
        returns("avg_pool2d", || x.avg_pool2d(o, include))?;
        returns("avg_pool2d backward", || x.avg_pool2d(o, include)?.sum(&[], false)?.backward())?;
        returns("max_pool2d_indices", || max_pool2d_indices(&t, o))?;
        returns("adaptive_avg_pool2d", || x.adaptive_avg_pool2d(out))?;
        let small = (out.0.min(9), out.1.min(9));
        returns("adaptive_avg_pool2d backward", || {
            x.adaptive_avg_pool2d(small)?.sum(&[], false)?.backward()
        })?;
        returns("local_response_norm", || x.local_response_norm(out.0, 1e-4, 0.75, 2.0))?;
    }
}

/// Ceil mode drops a last window that would start past the input; with a huge input and
/// stride, the start `(o - 1) * stride` itself passes `usize::MAX`.
#[test]
fn ceil_mode_with_a_huge_input_and_stride() {
    let w = Window2d::pool(
        "t",
        (usize::MAX, 0),
        (1, 1),
        (1 << 31, 1),
        (0, 0),
        (1, 1),
        true,
    );
    assert!(w.is_err(), "{w:?}");
    let w = Window2d::pool(
        "t",
        (usize::MAX, 1),
        (1, 1),
        (1 << 31, 1),
        (0, 0),
        (1, 1),
        true,
    )
    .expect("a window whose positions fit");
    assert_eq!(w.output, (usize::MAX.div_ceil(1 << 31), 1));
}

/// A column stride far beyond the plane: every window holds one column, and max pooling's
/// strided layout of the plane stays the plane's size, forward and backward.
#[test]
fn max_pooling_with_a_huge_stride() {
    let t = Tensor::from_vec((0..9).map(|v| v as f32).collect(), [1, 1, 3, 3]).unwrap();
    let o = Pool2dOptions {
        kernel: (1, 1),
        stride: (1, 1 << 62),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    let tape = Tape::new();
    let x = tape.var(t);
    let y = x.max_pool2d(o).unwrap();
    assert_eq!(y.value().to_vec(), vec![0.0, 3.0, 6.0]);
    let g = y.sum_all().backward().unwrap().get(x).unwrap();
    assert_eq!(
        g.to_vec(),
        vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    );
}

/// An empty batch and empty weights may name channels whose unfolded image could not exist:
/// the convolution says so, naming the op that refuses the size.
#[test]
fn convolution_of_an_empty_batch_with_huge_channels() {
    let tape = Tape::new();
    // 2^30 channels, 2^14 x 2^14 kernels over 2^15 x 2^15 planes: 2^88 bytes per image.
    let x = tape.var(Tensor::zeros([0, 1 << 30, 1 << 15, 1 << 15]));
    let w = tape.var(Tensor::zeros([0, 1 << 30, 1 << 14, 1 << 14]));
    let err = x.conv2d(w, None, Conv2dOptions::default()).unwrap_err();
    assert!(err.to_string().contains("unfold"), "{err}");
}
