//! Convolution, pooling and normalisation: the lecture's worked example, a direct-loop reference,
//! finite-difference gradients (including second order) and bad arguments.

use proptest::prelude::*;
use tapegrad_autograd::gradcheck::{gradcheck_with, GradcheckOptions};
use tapegrad_autograd::{
    rng, BackwardOptions, Conv2dOptions, Pool2dOptions, RunningStats, Tape, Tensor,
};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

/// The lecture's example: X 3x3, W 2x2, h = conv(X, W) 2x2.
#[test]
fn lecture_worked_example() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let w = [1.0, -1.0, 2.0, 0.5];
    let dh = [0.5, -1.0, 2.0, 3.0];
    let tape = Tape::new();
    let xv = tape.var(t(&x, &[1, 1, 3, 3]));
    let wv = tape.var(t(&w, &[1, 1, 2, 2]));
    let h = xv.conv2d(wv, None, Conv2dOptions::default()).unwrap();
    let g = h.backward_with(t(&dh, &[1, 1, 2, 2])).unwrap();
    let xm = |i: usize, j: usize| x[(i - 1) * 3 + (j - 1)];
    let wm = |i: usize, j: usize| w[(i - 1) * 2 + (j - 1)];
    let dhm = |i: usize, j: usize| dh[(i - 1) * 2 + (j - 1)];
    // h11 = W11 X11 + W12 X12 + W21 X21 + W22 X22, and likewise shifted.
    let hv = h.value();
    for (i, j) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        let want = wm(1, 1) * xm(i, j)
            + wm(1, 2) * xm(i, j + 1)
            + wm(2, 1) * xm(i + 1, j)
            + wm(2, 2) * xm(i + 1, j + 1);
        assert_eq!(hv.get(&[0, 0, i - 1, j - 1]).unwrap(), want);
    }
    // dW12 = X12 dh11 + X13 dh12 + X22 dh21 + X23 dh22: dW is X correlated with dh.
    let dw = g.get(wv).unwrap();
    for (a, b) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        let want = xm(a, b) * dhm(1, 1)
            + xm(a, b + 1) * dhm(1, 2)
            + xm(a + 1, b) * dhm(2, 1)
            + xm(a + 1, b + 1) * dhm(2, 2);
        assert_eq!(dw.get(&[0, 0, a - 1, b - 1]).unwrap(), want, "dW{a}{b}");
    }
    // dX is the full convolution of dh with the spatially flipped W: pad dh by 1, correlate
    // with flip(W).
    let flipped = t(&[w[3], w[2], w[1], w[0]], &[1, 1, 2, 2]);
    let tape2 = Tape::new();
    let full = tape2
        .input(t(&dh, &[1, 1, 2, 2]))
        .conv2d(
            tape2.input(flipped),
            None,
            Conv2dOptions::default().padding(1),
        )
        .unwrap();
    assert_eq!(g.get(xv).unwrap(), full.value());
}

/// Direct-loop convolution, the reference.
fn naive_conv(x: &Tensor, w: &Tensor, b: Option<&Tensor>, o: Conv2dOptions) -> Tensor {
    let (n, h, wd) = (x.dims()[0], x.dims()[2], x.dims()[3]);
    let (oc, cg, kh, kw) = (w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]);
    let span =
        |i: usize, k: usize, s: usize, p: usize, d: usize| (i + 2 * p - d * (k - 1) - 1) / s + 1;
    let oh = span(h, kh, o.stride.0, o.padding.0, o.dilation.0);
    let ow = span(wd, kw, o.stride.1, o.padding.1, o.dilation.1);
    let og = oc / o.groups;
    let mut out = vec![0.0f32; n * oc * oh * ow];
    for bi in 0..n {
        for co in 0..oc {
            let g = co / og;
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.data()[co]);
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let y = (i * o.stride.0 + ki * o.dilation.0) as isize
                                    - o.padding.0 as isize;
                                let z = (j * o.stride.1 + kj * o.dilation.1) as isize
                                    - o.padding.1 as isize;
                                if y >= 0 && z >= 0 && (y as usize) < h && (z as usize) < wd {
                                    acc +=
                                        x.get(&[bi, g * cg + ci, y as usize, z as usize]).unwrap()
                                            * w.get(&[co, ci, ki, kj]).unwrap();
                                }
                            }
                        }
                    }
                    out[((bi * oc + co) * oh + i) * ow + j] = acc;
                }
            }
        }
    }
    Tensor::from_vec(out, [n, oc, oh, ow]).unwrap()
}

#[derive(Debug, Clone)]
struct ConvCase {
    n: usize,
    groups: usize,
    cg: usize,
    og: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    o: Conv2dOptions,
    bias: bool,
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..3,
        1usize..4,
        1usize..3,
        1usize..3,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..3, 0usize..3),
        (1usize..3, 1usize..3),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_flat_map(|(n, groups, cg, og, k, s, p, d, bias, seed)| {
            let min_h = (d.0 * (k.0 - 1) + 1).saturating_sub(2 * p.0).max(1);
            let min_w = (d.1 * (k.1 - 1) + 1).saturating_sub(2 * p.1).max(1);
            (min_h..min_h + 4, min_w..min_w + 4).prop_map(move |(h, w)| ConvCase {
                n,
                groups,
                cg,
                og,
                h,
                w,
                k,
                o: Conv2dOptions {
                    stride: s,
                    padding: p,
                    dilation: d,
                    groups,
                },
                bias,
                seed,
            })
        })
}

fn inputs(c: &ConvCase) -> Vec<Tensor> {
    let mut g = rng(c.seed);
    let mut v = vec![
        Tensor::randn([c.n, c.groups * c.cg, c.h, c.w], &mut g),
        Tensor::randn([c.groups * c.og, c.cg, c.k.0, c.k.1], &mut g),
    ];
    if c.bias {
        v.push(Tensor::randn([c.groups * c.og], &mut g));
    }
    v
}

/// Values `step` apart in a random order: distinct, and never closer than the finite-difference
/// step can resolve.
fn shuffled_ramp(dims: [usize; 4], step: f32, seed: u64) -> Tensor {
    let numel: usize = dims.iter().product();
    let noise = Tensor::rand([numel], 0.0, 1.0, &mut rng(seed));
    let mut order: Vec<usize> = (0..numel).collect();
    order.sort_by(|&a, &b| noise.data()[a].total_cmp(&noise.data()[b]));
    let vals: Vec<f32> = order
        .iter()
        .map(|&i| (i as f32 - numel as f32 / 2.0) * step)
        .collect();
    Tensor::from_vec(vals, dims).unwrap()
}

const OPTS: GradcheckOptions = GradcheckOptions::DEFAULT;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn conv2d_matches_direct_loops_and_finite_differences(c in conv_case()) {
        let xs = inputs(&c);
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.input(x.clone())).collect();
        let y = vars[0].conv2d(vars[1], vars.get(2).copied(), c.o).unwrap();
        let want = naive_conv(&xs[0], &xs[1], xs.get(2), c.o);
        prop_assert!(y.value().allclose(&want, 1e-4, 1e-4));
        let o = c.o;
        let report = gradcheck_with(
            move |_, v| v[0].conv2d(v[1], v.get(2).copied(), o),
            &xs,
            OPTS,
        ).unwrap();
        prop_assert!(report.passed(), "{report}");
    }

    #[test]
    fn pooling_gradients(
        n in 1usize..3, c in 1usize..3, h in 3usize..8, w in 3usize..8,
        k in 1usize..4, s in 1usize..4, p in 0usize..2, ceil in any::<bool>(),
        include in any::<bool>(), seed in any::<u64>(),
    ) {
        prop_assume!(2 * p <= k);
        // Distinct values, so max pooling has no ties.
        let x = shuffled_ramp([n, c, h, w], 0.1, seed);
        let o = Pool2dOptions { kernel: (k, k), stride: (s, s), padding: (p, p), dilation: (1, 1), ceil_mode: ceil };
        let opts = GradcheckOptions { seed: 1, ..OPTS };
        let r = gradcheck_with(move |_, v| v[0].max_pool2d(o), std::slice::from_ref(&x), opts).unwrap();
        prop_assert!(r.passed(), "max {r}");
        let r = gradcheck_with(move |_, v| v[0].avg_pool2d(o, include), &[x], opts).unwrap();
        prop_assert!(r.passed(), "avg {r}");
    }

    #[test]
    fn adaptive_pool_batch_norm_and_lrn_gradients(
        n in 2usize..4, c in 1usize..4, h in 1usize..6, w in 1usize..6,
        oh in 1usize..5, ow in 1usize..5, training in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut g = rng(seed);
        let x = Tensor::randn([n, c, h, w], &mut g);
        let r = gradcheck_with(move |_, v| v[0].adaptive_avg_pool2d((oh, ow)), std::slice::from_ref(&x), OPTS).unwrap();
        prop_assert!(r.passed(), "adaptive {r}");
        let weight = Tensor::rand([c], 0.5, 1.5, &mut g);
        let bias = Tensor::randn([c], &mut g);
        let rm = Tensor::randn([c], &mut g);
        let rv = Tensor::rand([c], 0.5, 2.0, &mut g);
        // Batch statistics of as few as two values per channel: spread them well apart, or
        // normalising by a tiny variance bends the function faster than a finite difference
        // can follow.
        let spread = shuffled_ramp([n, c, h, w], 0.5, seed);
        let r = gradcheck_with(
            move |_, v| {
                let (mut m, mut s) = (rm.clone(), rv.clone());
                let stats = RunningStats { mean: &mut m, var: &mut s, momentum: 0.1 };
                v[0].batch_norm(Some(stats), Some(v[1]), Some(v[2]), training, 1e-5)
            },
            &[spread, weight, bias],
            GradcheckOptions { seed: 2, ..OPTS },
        ).unwrap();
        prop_assert!(r.passed(), "batch norm (training {training}) {r}");
        let size = 1 + (seed % 5) as usize;
        let scaled = x.mul_scalar(3.0);
        let r = gradcheck_with(move |_, v| v[0].local_response_norm(size, 0.5, 0.75, 1.0), &[scaled], OPTS).unwrap();
        prop_assert!(r.passed(), "lrn {r}");
    }
}

#[test]
fn second_order_through_conv2d() {
    // f(x, w) = sum(dL/dx * r) with L = sum(conv(x, w)^2): differentiating it checks the
    // backward of unfold's backward (fold) and of matmul's.
    let mut g = rng(9);
    let xs = vec![
        Tensor::randn([1, 2, 5, 5], &mut g),
        Tensor::randn([3, 2, 3, 3], &mut g),
    ];
    let r = Tensor::randn([1, 2, 5, 5], &mut g);
    let o = Conv2dOptions::default().stride(2).padding(1);
    let report = gradcheck_with(
        move |tape, v| {
            let y = v[0].conv2d(v[1], None, o)?;
            let loss = y.square().sum(&[], false)?;
            let opts = BackwardOptions {
                create_graph: true,
                ..Default::default()
            };
            let gr = loss.backward_with_options(Tensor::scalar(1.0), opts)?;
            let dx = gr.var(v[0]).expect("x reaches the loss");
            dx.mul(tape.input(r.clone()))?.sum(&[], false)
        },
        &xs,
        OPTS,
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn conv_transpose_is_the_adjoint_of_conv() {
    // <conv(x, w), y> = <x, conv_transpose(y, w)> for every x, y.
    let mut g = rng(5);
    let o = Conv2dOptions::default().stride(2).padding(1);
    let x = Tensor::randn([2, 3, 7, 7], &mut g);
    let w = Tensor::randn([4, 3, 3, 3], &mut g);
    let tape = Tape::new();
    let y = tape
        .input(x.clone())
        .conv2d(tape.input(w.clone()), None, o)
        .unwrap();
    let dy = Tensor::randn(y.shape(), &mut g);
    let back = tape
        .input(dy.clone())
        .conv_transpose2d(tape.input(w), None, o, (0, 0))
        .unwrap();
    assert_eq!(back.dims(), vec![2, 3, 7, 7]);
    let lhs: f32 = y.value().mul(&dy).unwrap().sum_all().item().unwrap();
    let rhs: f32 = x.mul(&back.value()).unwrap().sum_all().item().unwrap();
    assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0));
}

#[test]
fn bad_arguments_are_errors() {
    let tape = Tape::new();
    let x = tape.input(Tensor::zeros([1, 4, 5, 5]));
    let w = |s: &[usize]| tape.input(Tensor::zeros(s));
    let msg = |r: tapegrad_autograd::Result<tapegrad_autograd::Var>| r.unwrap_err().to_string();
    // Kernel larger than the padded input.
    assert!(msg(x.conv2d(w(&[2, 4, 7, 7]), None, Conv2dOptions::default())).contains("conv2d"));
    // Channels not divisible by groups.
    assert!(
        msg(x.conv2d(w(&[3, 2, 3, 3]), None, Conv2dOptions::default().groups(3)))
            .contains("groups")
    );
    // Zero stride.
    assert!(
        msg(x.conv2d(w(&[2, 4, 3, 3]), None, Conv2dOptions::default().stride(0)))
            .contains("stride")
    );
    // Wrong weight rank, wrong bias.
    assert!(x
        .conv2d(w(&[2, 4, 3]), None, Conv2dOptions::default())
        .is_err());
    assert!(x
        .conv2d(w(&[2, 4, 3, 3]), Some(w(&[3])), Conv2dOptions::default())
        .is_err());
    // Pooling: padding over half the kernel, kernel over the input, wrong rank.
    assert!(x.max_pool2d(Pool2dOptions::new(2).padding(2)).is_err());
    assert!(x.avg_pool2d(Pool2dOptions::new(9), true).is_err());
    assert!(w(&[4, 5, 5]).max_pool2d(Pool2dOptions::new(2)).is_err());
    assert!(x.adaptive_avg_pool2d((0, 1)).is_err());
    // Batch norm with mis-shaped statistics; LRN of size 0.
    let (mut m, mut v) = (Tensor::zeros([3]), Tensor::ones([3]));
    let stats = RunningStats {
        mean: &mut m,
        var: &mut v,
        momentum: 0.1,
    };
    assert!(x.batch_norm(Some(stats), None, None, false, 1e-5).is_err());
    assert!(x.local_response_norm(0, 1e-4, 0.75, 2.0).is_err());
}

#[test]
fn batch_norm_updates_running_statistics_like_pytorch() {
    // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3.
    let tape = Tape::new();
    let x = tape.input(t(&[1.0, 2.0, 3.0, 4.0], &[4, 1]));
    let (mut m, mut v) = (Tensor::zeros([1]), Tensor::ones([1]));
    let y = x
        .batch_norm(
            Some(RunningStats {
                mean: &mut m,
                var: &mut v,
                momentum: 0.1,
            }),
            None,
            None,
            true,
            0.0,
        )
        .unwrap();
    assert!((m.data()[0] - 0.25).abs() < 1e-6);
    assert!((v.data()[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
    let want = (1.0 - 2.5) / 1.25f32.sqrt();
    assert!((y.value().data()[0] - want).abs() < 1e-6);
}

/// A small network's layers (conv, batch norm in evaluation, max pool, LRN, conv transpose,
/// average and adaptive pooling) on a tape, each layer's output in turn; `vars` makes every input
/// a var.
fn layers(tape: &Tape, vars: bool) -> Vec<tapegrad_autograd::Var<'_>> {
    let mut g = rng(11);
    let leaf = |t: Tensor| if vars { tape.var(t) } else { tape.input(t) };
    let x = leaf(Tensor::randn([2, 3, 12, 12], &mut g));
    let w = leaf(Tensor::randn([4, 3, 3, 3], &mut g));
    let b = leaf(Tensor::randn([4], &mut g));
    let wt = leaf(Tensor::randn([4, 2, 2, 2], &mut g));
    let (mut mean, mut var) = (Tensor::randn([4], &mut g), Tensor::full([4], 2.0));
    let stats = RunningStats {
        mean: &mut mean,
        var: &mut var,
        momentum: 0.1,
    };
    let c = x
        .conv2d(w, Some(b), Conv2dOptions::default().padding(1))
        .unwrap();
    let bn = c.batch_norm(Some(stats), None, None, false, 1e-5).unwrap();
    let mp = bn.max_pool2d(Pool2dOptions::new(2)).unwrap();
    let lrn = mp.local_response_norm(3, 1e-2, 0.75, 2.0).unwrap();
    let opts = Conv2dOptions::default().stride(2);
    let ct = lrn.conv_transpose2d(wt, None, opts, (0, 0)).unwrap();
    let ap = ct.avg_pool2d(Pool2dOptions::new(2), true).unwrap();
    let aap = ap.adaptive_avg_pool2d((2, 3)).unwrap();
    vec![c, bn, mp, lrn, ct, ap, aap]
}

#[test]
fn without_gradients_a_composite_is_one_node() {
    // Recording for backward: every primitive of every composition is on the tape.
    let recording = Tape::new();
    let want: Vec<Tensor> = layers(&recording, true).iter().map(|v| v.value()).collect();
    // On an inference tape each layer leaves only its result, a constant named after it, and
    // computes the same bits.
    let tape = Tape::inference();
    let got = layers(&tape, false);
    let names: Vec<&str> = got.iter().map(|v| tape.node_info(v.id()).op.name).collect();
    assert_eq!(
        names,
        [
            "conv2d",
            "batch_norm",
            "max_pool2d",
            "local_response_norm",
            "conv_transpose2d",
            "avg_pool2d",
            "adaptive_avg_pool2d"
        ]
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.value().to_vec(), w.to_vec());
        assert!(!g.requires_grad());
    }
    // Four inputs and seven layers.
    assert_eq!(tape.len(), 11);
    assert!(recording.len() > 3 * tape.len());
}
