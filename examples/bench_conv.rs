//! Convolution speed: forward and forward+backward time of typical layers, their GFLOP/s
//! (FLOPs = 2 x multiply-accumulates; forward+backward counts three products: output, input
//! gradient, weight gradient), and the ceiling: one GEMM of the layer's im2col shape (M = out channels, K = in channels
//! x kernel area, N = batch x output pixels) through the same kernels.
//!
//! `cargo run --release --example bench_conv [-- --reps N] [--only LeNet] [--profile]`
//!
//! `--profile` adds, for each layer, the time per op of one forward+backward pass (the mean of
//! `reps` profiled passes).

// `--features mimalloc` runs the same program on mimalloc, to compare allocators: the
// library leaves the allocator to the application.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;
use tapegrad::autograd::{rng, Conv2dOptions, Profile, Tape, Tensor};

struct Layer {
    name: &'static str,
    n: usize,
    c: usize,
    o: usize,
    hw: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

const LAYERS: &[Layer] = &[
    Layer {
        name: "LeNet conv1 (N=64, 1->6, 28x28, 5x5)",
        n: 64,
        c: 1,
        o: 6,
        hw: 28,
        k: 5,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "LeNet conv2 (N=64, 6->16, 14x14, 5x5)",
        n: 64,
        c: 6,
        o: 16,
        hw: 14,
        k: 5,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "ResNet 3x3 (N=32, 64->64, 56x56, pad 1)",
        n: 32,
        c: 64,
        o: 64,
        hw: 56,
        k: 3,
        stride: 1,
        pad: 1,
    },
    Layer {
        name: "ResNet 3x3/2 (N=32, 64->128, 56x56)",
        n: 32,
        c: 64,
        o: 128,
        hw: 56,
        k: 3,
        stride: 2,
        pad: 1,
    },
    Layer {
        name: "1x1 bottleneck (N=32, 256->64, 56x56)",
        n: 32,
        c: 256,
        o: 64,
        hw: 56,
        k: 1,
        stride: 1,
        pad: 0,
    },
    Layer {
        name: "AlexNet conv1 (N=8, 3->96, 227x227, 11x11/4)",
        n: 8,
        c: 3,
        o: 96,
        hw: 227,
        k: 11,
        stride: 4,
        pad: 0,
    },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times the closures in rounds, one run of each per round after a warm-up round, and returns
/// each one's median in ms. Interleaving gives the convolution and its ceiling the same machine
/// state (a neighbour's load, the allocator's pages), so their ratio is fair.
fn time_rounds(reps: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    fs.iter_mut().for_each(|f| f());
    let mut samples = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, s) in fs.iter_mut().zip(&mut samples) {
            let t = Instant::now();
            f();
            s.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    samples.into_iter().map(median).collect()
}

fn main() {
    let reps = std::env::args()
        .skip_while(|a| a != "--reps")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    // `--only TEXT` keeps the layers whose name contains TEXT.
    let only = std::env::args().skip_while(|a| a != "--only").nth(1);
    let profile = std::env::args().any(|a| a == "--profile");
    println!(
        "threads: {}, median of {reps} interleaved rounds (forward, forward+backward, GEMM)",
        rayon::current_num_threads()
    );
    println!(
        "{:<46} {:>9} {:>9} {:>10} {:>9} {:>9} {:>8}",
        "layer", "fwd ms", "f+b ms", "f+b GF/s", "gemm ms", "gemm GF/s", "f+b/gemm"
    );
    let mut g = rng(0);
    for l in LAYERS
        .iter()
        .filter(|l| only.as_ref().is_none_or(|o| l.name.contains(o.as_str())))
    {
        let x = Tensor::randn([l.n, l.c, l.hw, l.hw], &mut g);
        let w = Tensor::randn([l.o, l.c, l.k, l.k], &mut g).mul_scalar(0.1);
        let b = Tensor::randn([l.o], &mut g);
        let opts = Conv2dOptions::default().stride(l.stride).padding(l.pad);
        let oh = (l.hw + 2 * l.pad - l.k) / l.stride + 1;
        let macs = (l.n * l.o * oh * oh * l.c * l.k * l.k) as f64;
        let mut fwd = || {
            let tape = Tape::inference();
            let y = tape
                .input(x.clone())
                .conv2d(tape.input(w.clone()), Some(tape.input(b.clone())), opts)
                .unwrap();
            std::hint::black_box(y.value());
        };
        let fb_profiled = |profile: bool| {
            let tape = Tape::new();
            tape.set_profiling(profile);
            let xv = tape.var(x.clone());
            let y = xv
                .conv2d(tape.var(w.clone()), Some(tape.var(b.clone())), opts)
                .unwrap();
            let gy = Tensor::ones(y.shape());
            std::hint::black_box(y.backward_with(gy).unwrap().get(xv));
            tape.profile()
        };
        let mut fb = || {
            fb_profiled(false);
        };
        // The ceiling: one sgemm of the whole batch's im2col shape, M = O, K = C k k, N = batch L.
        let (m, k, n) = (l.o, l.c * l.k * l.k, l.n * oh * oh);
        let a = Tensor::randn([m, k], &mut g);
        let bm = Tensor::randn([k, n], &mut g);
        // Through `Tensor::matmul`: the kernels and thread split the convolution's own products
        // use (the faster of two GEMM libraries for the shape), so the ratio measures what the
        // convolution costs beyond its GEMM.
        let mut gemm = || {
            std::hint::black_box(a.matmul(&bm).unwrap());
        };
        let t = time_rounds(reps, &mut [&mut fwd, &mut fb, &mut gemm]);
        let (fwd, fb, gemm) = (t[0], t[1], t[2]);
        let gf = |ms: f64, f: f64| 2.0 * macs * f / (ms * 1e6);
        println!(
            "{:<46} {:>9.2} {:>9.2} {:>10.1} {:>9.2} {:>9.1} {:>7.0}%",
            l.name,
            fwd,
            fb,
            gf(fb, 3.0),
            gemm,
            gf(gemm, 1.0),
            100.0 * gf(fb, 3.0) / gf(gemm, 1.0)
        );
        if profile {
            let mut total = Profile::default();
            for _ in 0..reps {
                total.merge(&fb_profiled(true).expect("profiling was on"));
            }
            println!("{}\n", total.per_step(reps));
        }
    }
}
