//! Core benchmarks: what recording on the tape costs.
//!
//! (a) A 512x512x512 matmul through the tape (forward, and forward + backward) against direct
//!     `sgemm` calls on the same data. A single sgemm call runs on one thread while the tape's
//!     kernel splits the rows over rayon's threads, so the like-for-like reference is sgemm split
//!     the same way, writing fresh outputs as the tape does; the one-thread figure is printed
//!     too. Target: tape >= 90% of direct.
//! (b) The tape's bookkeeping: 1,000 chained elementwise ops on a `[4]` tensor, forward and
//!     backward, per graph. Target: < 1 ms.
//! (c) Matmul (the kernel behind conv2d after im2col) on ResNet's first 3x3 stage shape
//!     (M=64, K=576, N=100352) and LeNet's first conv (M=6, K=25, N=36864).
//!
//! Run: `cargo run --release --example bench_core [a] [b] [c]` (all sections by default; about
//! half a minute on 2 cores).

use rayon::prelude::*;
use std::time::Instant;
use tapegrad::autograd::tensor::sgemm;
use tapegrad::autograd::{rng, Tape, Tensor, Transpose};

/// Seconds of each of `runs` calls of `f`, after one warm-up call.
fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// (best, median) of a list of timings.
fn best_median(mut secs: Vec<f64>) -> (f64, f64) {
    secs.sort_by(f64::total_cmp);
    (secs[0], secs[secs.len() / 2])
}

/// GFLOP/s (best, median) for `flops` per run.
fn gflops(flops: f64, secs: Vec<f64>) -> (f64, f64) {
    let (best, median) = best_median(secs);
    (flops / best / 1e9, flops / median / 1e9)
}

fn row(label: &str, (best, median): (f64, f64)) {
    println!("  {label:<44} {best:>7.1} {median:>7.1}");
}

/// `c (m x n) = op(a) @ op(b)` with row blocks of `c` computed in parallel, one sgemm call per
/// block: what the tape's kernel does, written directly against `sgemm`.
#[allow(clippy::too_many_arguments)]
fn sgemm_split(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
) {
    let rows = m.div_ceil(rayon::current_num_threads());
    c.par_chunks_mut(rows * n).enumerate().for_each(|(p, cb)| {
        let mr = cb.len() / n;
        sgemm(
            mr,
            k,
            n,
            1.0,
            &a[p * rows * rsa..],
            rsa,
            csa,
            b,
            rsb,
            csb,
            0.0,
            cb,
            n,
            1,
        )
        .expect("blocks of a checked product");
    });
}

/// A benchmarked variant: label, flops per call, and the call.
type Variant<'a> = (&'static str, f64, Box<dyn FnMut() + 'a>);

fn matmul_512(runs: usize) {
    let n = 512;
    let flops = 2.0 * (n * n * n) as f64;
    let mut g = rng(0);
    let a = Tensor::randn([n, n], &mut g);
    let b = Tensor::randn([n, n], &mut g);
    let seed = Tensor::randn([n, n], &mut g);
    let (ad, bd, gd) = (a.data(), b.data(), seed.data());
    let mut c = vec![0.0f32; n * n];
    let (rm, tr) = ((n, 1), (1, n)); // row-major and transposed strides

    // The variants run interleaved, one call of each per round, so that load from other
    // processes on the machine falls on all of them alike.
    let mut variants: Vec<Variant> = vec![
        (
            "direct sgemm, one call (1 thread)",
            flops,
            Box::new(|| sgemm(n, n, n, 1.0, ad, n, 1, bd, n, 1, 0.0, &mut c, n, 1).unwrap()),
        ),
        (
            "direct sgemm, rows split over the threads",
            flops,
            Box::new(|| sgemm_split(n, n, n, ad, rm, bd, rm, &mut vec![0.0; n * n])),
        ),
        (
            "tape forward (tape.var inputs)",
            flops,
            Box::new(|| {
                let tape = Tape::new();
                let y = tape.var(a.clone()).matmul(tape.var(b.clone())).unwrap();
                std::hint::black_box(y.value());
            }),
        ),
        // Forward + backward: C = A B, dA = G Bᵀ, dB = Aᵀ G (three matmuls).
        (
            "direct fwd + bwd (3 split sgemm)",
            3.0 * flops,
            Box::new(|| {
                // Fresh outputs, as the tape allocates its results.
                let mut out = [
                    vec![0.0f32; n * n],
                    vec![0.0f32; n * n],
                    vec![0.0f32; n * n],
                ];
                sgemm_split(n, n, n, ad, rm, bd, rm, &mut out[0]);
                sgemm_split(n, n, n, gd, rm, bd, tr, &mut out[1]);
                sgemm_split(n, n, n, ad, tr, gd, rm, &mut out[2]);
                std::hint::black_box(&out);
            }),
        ),
        (
            "tape forward + backward",
            3.0 * flops,
            Box::new(|| {
                let tape = Tape::new();
                let (x, w) = (tape.var(a.clone()), tape.var(b.clone()));
                let y = x.matmul(w).unwrap();
                let grads = y.backward_with(seed.clone()).unwrap();
                std::hint::black_box((grads.get(x), grads.get(w)));
            }),
        ),
    ];
    let mut secs = vec![Vec::with_capacity(runs); variants.len()];
    for (_, _, f) in variants.iter_mut() {
        f(); // warm-up
    }
    for _ in 0..runs {
        for (i, (_, _, f)) in variants.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            secs[i].push(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "(a) matmul {n}x{n}x{n}, {runs} interleaved runs, {} rayon threads; GFLOP/s   best  median",
        rayon::current_num_threads()
    );
    let rates: Vec<(f64, f64)> = variants
        .iter()
        .zip(secs)
        .map(|((label, flops, _), s)| {
            let r = gflops(*flops, s);
            row(label, r);
            r
        })
        .collect();
    let pct = |t: (f64, f64), d: (f64, f64)| (100.0 * t.0 / d.0, 100.0 * t.1 / d.1);
    let (f_best, f_med) = pct(rates[2], rates[1]);
    let (b_best, b_med) = pct(rates[4], rates[3]);
    println!(
        "  tape / direct (same threads): forward {f_best:.0}% best, {f_med:.0}% median; \
         forward+backward {b_best:.0}% best, {b_med:.0}% median (target >= 90%)"
    );
    let (o_best, o_med) = pct(rates[2], rates[0]);
    println!("  tape forward / one sgemm call: {o_best:.0}% best, {o_med:.0}% median");
}

/// 1,000 chained elementwise ops on a [4] tensor: add, mul (both with the leaf, so every op is
/// differentiated), tanh and neg in turn, then a sum and backward.
fn bookkeeping(runs: usize) {
    const OPS: usize = 1000;
    let x0 = Tensor::from_slice(&[0.1, -0.2, 0.3, 0.4]);
    let secs = time_runs(runs, || {
        let tape = Tape::new();
        let x = tape.var(x0.clone());
        let mut y = x;
        for i in 0..OPS {
            y = match i % 4 {
                0 => y.add(x).unwrap(),
                1 => y.mul(x).unwrap(),
                2 => y.tanh(),
                _ => y.neg(),
            };
        }
        let loss = y.sum(&[], false).unwrap();
        let grads = loss.backward().unwrap();
        std::hint::black_box(grads.get(x));
    });
    let (best, median) = best_median(secs);
    println!(
        "(b) bookkeeping, {OPS} chained ops on [4], forward + backward, {runs} graphs: \
         {:.0} us best, {:.0} us median per graph ({:.2} / {:.2} us per op; target < 1000 us)",
        best * 1e6,
        median * 1e6,
        best * 1e6 / OPS as f64,
        median * 1e6 / OPS as f64
    );
}

/// `[m, k] @ [k, n]` through the kernel (`Tensor::matmul_t`, as conv2d's im2col product) and the
/// tape, against one direct sgemm call.
fn conv_shape(label: &str, m: usize, k: usize, n: usize, runs: usize) {
    let flops = 2.0 * (m * k * n) as f64;
    let mut g = rng(1);
    let a = Tensor::randn([m, k], &mut g);
    let b = Tensor::randn([k, n], &mut g);
    let mut c = vec![0.0f32; m * n];
    println!("(c) {label}: M={m} K={k} N={n}, {runs} runs; GFLOP/s   best  median");
    let direct = time_runs(runs, || {
        sgemm(
            m,
            k,
            n,
            1.0,
            a.data(),
            k,
            1,
            b.data(),
            n,
            1,
            0.0,
            &mut c,
            n,
            1,
        )
        .unwrap()
    });
    row("direct sgemm, one call (1 thread)", gflops(flops, direct));
    let kernel = time_runs(runs, || {
        std::hint::black_box(a.matmul_t(&b, Transpose::No, Transpose::No).unwrap());
    });
    row(
        "Tensor::matmul_t (split over the threads)",
        gflops(flops, kernel),
    );
    let tape = time_runs(runs, || {
        let tape = Tape::new();
        let y = tape.var(a.clone()).matmul(tape.var(b.clone())).unwrap();
        std::hint::black_box(y.value());
    });
    row("tape forward", gflops(flops, tape));
}

fn main() {
    // Optional arguments pick sections (`a`, `b`, `c`), e.g. to profile one of them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let on = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    if on("a") {
        matmul_512(30);
    }
    if on("b") {
        bookkeeping(300);
    }
    if on("c") {
        conv_shape(
            "ResNet conv 3x3x64 -> 64 on 56x56, batch 32",
            64,
            576,
            100352,
            5,
        );
        conv_shape(
            "LeNet conv1 5x5 -> 6 on 28x28 (24x24 out), batch 64",
            6,
            25,
            36864,
            50,
        );
    }
}
