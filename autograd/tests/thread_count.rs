//! Results do not depend on the number of threads: every kernel that sums or splits work gives
//! the same bits inside rayon pools of 1, 2, 3 and 7 threads (3 and 7 catch splits keyed on the
//! count that 1 and 2 would miss). Sizes are above the ones at which work goes parallel (32,768
//! elements, 65,536 multiply-accumulates).

use tapegrad_autograd::{rng, Conv2dOptions, Tape, Tensor, Transpose};

/// `f` run inside a pool of `threads` threads.
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn bits(ts: &[Tensor]) -> Vec<Vec<u32>> {
    ts.iter()
        .map(|t| t.data().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Asserts that `f` gives the same bits on every pool size.
fn same_bits_on_any_pool(what: &str, f: impl Fn() -> Vec<Tensor> + Sync) {
    let want = bits(&on_threads(1, &f));
    for threads in [2, 3, 7] {
        let got = bits(&on_threads(threads, &f));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "{what}: result {i} on {threads} threads differs from 1 thread"
            );
        }
    }
}

#[test]
fn reductions_over_many_elements() {
    let mut g = rng(1);
    // One long row (a loss summed over everything), and the bias gradient of a convolution.
    // Values of mixed magnitude, so that summing them in another order changes the rounding.
    let long = Tensor::randn([300_000], &mut g).map(|v| v * v.abs().powi(3) + 1.0);
    let nchw = Tensor::randn([16, 8, 24, 24], &mut g);
    same_bits_on_any_pool("reductions", || {
        vec![
            long.sum_all(),
            long.mean(&[], false).unwrap(),
            long.max(&[], false).unwrap(),
            long.reshape([1, 300_000])
                .unwrap()
                .sum(&[1], false)
                .unwrap(),
            nchw.sum(&[0, 2, 3], false).unwrap(),
            nchw.mean(&[], false).unwrap(),
            nchw.max(&[1], true).unwrap(),
        ]
    });
}

#[test]
fn batch_norm_statistics_and_gradients() {
    let mut g = rng(2);
    // 16 x 4 x 24 x 24 = 36,864 elements: statistics per channel over 9,216 values each.
    let x = Tensor::randn([16, 4, 24, 24], &mut g).add_scalar(3.0);
    let r = Tensor::randn([16, 4, 24, 24], &mut g);
    let (w, b) = (Tensor::randn([4], &mut g), Tensor::randn([4], &mut g));
    same_bits_on_any_pool("batch norm", || {
        let tape = Tape::new();
        let (xv, wv, bv) = (
            tape.var(x.clone()),
            tape.var(w.clone()),
            tape.var(b.clone()),
        );
        let y = xv.batch_norm(None, Some(wv), Some(bv), true, 1e-5).unwrap();
        let loss = y
            .mul(tape.input(r.clone()))
            .unwrap()
            .sum(&[], false)
            .unwrap();
        let grads = loss.backward().unwrap();
        vec![
            y.value(),
            loss.value(),
            grads.get(xv).unwrap(),
            grads.get(wv).unwrap(),
            grads.get(bv).unwrap(),
        ]
    });
}

#[test]
fn convolution_weight_gradients_summed_over_the_batch() {
    let mut g = rng(3);
    // Products accumulated per share of the batch (inner dimension 300, and a LeNet-like conv2
    // weight gradient), and a batch packed into one long product (inner dimension 20, C of
    // 300 x 250).
    let cases = [
        ([16, 12, 300], [16, 40, 300], Transpose::No, Transpose::Yes),
        ([64, 16, 100], [64, 150, 100], Transpose::No, Transpose::Yes),
        ([5, 300, 20], [5, 20, 250], Transpose::No, Transpose::No),
    ]
    .map(|(a, b, ta, tb)| (Tensor::randn(a, &mut g), Tensor::randn(b, &mut g), ta, tb));
    let x = Tensor::randn([16, 3, 20, 20], &mut g);
    let w = Tensor::randn([8, 3, 3, 3], &mut g);
    same_bits_on_any_pool("summed products", || {
        let mut out: Vec<Tensor> = cases
            .iter()
            .map(|(a, b, ta, tb)| a.matmul_t_sum_batch(b, *ta, *tb).unwrap())
            .collect();
        let tape = Tape::new();
        let (xv, wv) = (tape.var(x.clone()), tape.var(w.clone()));
        let y = xv
            .conv2d(wv, None, Conv2dOptions::default().padding(1))
            .unwrap();
        let grads = y.square().sum(&[], false).unwrap().backward().unwrap();
        out.extend([y.value(), grads.get(xv).unwrap(), grads.get(wv).unwrap()]);
        out
    });
}

#[test]
fn matrix_products_split_over_threads() {
    let mut g = rng(4);
    // Tall, wide, a long inner dimension (blocked along k), a small C with a long inner
    // dimension, and a batch smaller than the pool (each product split) or larger.
    let cases = [
        (vec![300, 70], vec![70, 20]),
        (vec![20, 70], vec![70, 300]),
        (vec![70, 1100], vec![1100, 90]),
        (vec![8, 5000], vec![5000, 8]),
        (vec![3, 64, 600], vec![600, 80]),
        (vec![12, 30, 200], vec![12, 200, 40]),
    ]
    .map(|(a, b)| {
        (
            Tensor::randn(a.as_slice(), &mut g),
            Tensor::randn(b.as_slice(), &mut g),
        )
    });
    same_bits_on_any_pool("matmul", || {
        cases
            .iter()
            .flat_map(|(a, b)| {
                let t = b.transpose(-1, -2).unwrap();
                [
                    a.matmul(b).unwrap(),
                    a.matmul_t(&t, Transpose::No, Transpose::Yes).unwrap(),
                ]
            })
            .collect()
    });
}
