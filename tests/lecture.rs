//! The identities and figures of the lecture the project grew from, checked on the tape (and
//! against the PyTorch values in the golden `seed_examples.json`).

mod common;
use common::seed_example;
use serde_json::Value;
use tapegrad::prelude::*;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// `|got - want| <= tol * max(1, |want|)`: absolute near 0, relative (in ulps) for large values.
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: got {g}, want {w} (tolerance {tol})"
        );
    }
}

/// The lecture's grid: -5, -4.5, ..., 5.
fn grid() -> Tensor {
    Tensor::arange(-5.0, 5.25, 0.5).unwrap()
}

#[test]
fn softmax_of_2_4_2_1_versus_plain_normalisation() {
    // softmax_i = e^{x_i} / sum_j e^{x_j}: e^2 / (2e^2 + e^4 + e) = 0.1025 and so on, while
    // x_i / sum x = [2, 4, 2, 1] / 9. The exponential favours the largest score.
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[2.0, 4.0, 2.0, 1.0]));
    let soft = x.softmax(0).unwrap().value().to_vec();
    let plain = (x / x.sum(&[], false).unwrap()).value().to_vec();
    let four_dp = |v: &[f32]| -> Vec<i32> { v.iter().map(|x| (x * 1e4).round() as i32).collect() };
    assert_eq!(four_dp(&soft), vec![1025, 7573, 1025, 377]);
    assert_eq!(four_dp(&plain), vec![2222, 4444, 2222, 1111]);
    assert!(soft[1] > plain[1] && soft[3] < plain[3]);
    assert!((soft.iter().sum::<f32>() - 1.0).abs() < 1e-6);

    let golden = seed_example("softmax_2_4_2_1");
    assert_eq!(floats(&golden["input"]), vec![2.0, 4.0, 2.0, 1.0]);
    assert_close(
        &soft,
        &floats(&golden["output"]),
        1e-6,
        "softmax vs PyTorch",
    );
    assert_close(
        &soft,
        &floats(&golden["output_float64"]),
        1e-6,
        "softmax vs f64",
    );
}

#[test]
fn tanh_is_a_rescaled_sigmoid() {
    // tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 / (1 + e^-2x) - 1 = 2 sigmoid(2x) - 1, and so
    // their derivatives agree too: 1 - tanh^2 = 4 sigmoid'(2x).
    let tape = Tape::new();
    let x = tape.var(grid());
    let t = x.tanh();
    let s = x.mul_scalar(2.0).sigmoid().mul_scalar(2.0).sub_scalar(1.0);
    assert_close(
        &t.value().to_vec(),
        &s.value().to_vec(),
        3e-7,
        "tanh vs 2s(2x)-1",
    );

    let dt = t
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap()
        .get(x)
        .unwrap();
    let tape2 = Tape::new();
    let x2 = tape2.var(grid());
    let s2 = x2.mul_scalar(2.0).sigmoid().mul_scalar(2.0).sub_scalar(1.0);
    let ds = s2
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap()
        .get(x2)
        .unwrap();
    assert_close(dt.data(), ds.data(), 1e-6, "d tanh vs d(2s(2x)-1)");

    let golden = seed_example("tanh_vs_sigmoid");
    assert_close(grid().data(), &floats(&golden["x"]), 0.0, "grid");
    assert_close(
        &t.value().to_vec(),
        &floats(&golden["tanh"]),
        2e-7,
        "tanh vs PyTorch",
    );
    assert_close(
        &s.value().to_vec(),
        &floats(&golden["two_sigmoid_2x_minus_1"]),
        3e-7,
        "2s(2x)-1 vs PyTorch",
    );
}

#[test]
fn swish_derivative_is_f_plus_sigmoid_times_one_minus_f() {
    // f = x s(x), so f' = s + x s (1 - s) = s + x s - s (x s) = f + s (1 - f): the product rule
    // on the tape must give the lecture's closed form.
    let tape = Tape::new();
    let x = tape.var(grid());
    let f = x.swish();
    let df = f
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap()
        .get(x)
        .unwrap();
    let closed: Vec<f32> = grid()
        .data()
        .iter()
        .zip(f.value().data())
        .map(|(&x, &f)| {
            let s = 1.0 / (1.0 + (-x as f64).exp());
            (f as f64 + s * (1.0 - f as f64)) as f32
        })
        .collect();
    assert_close(df.data(), &closed, 3e-7, "tape vs closed form");

    let golden = seed_example("swish");
    assert_close(grid().data(), &floats(&golden["x"]), 0.0, "grid");
    assert_close(
        &f.value().to_vec(),
        &floats(&golden["f"]),
        3e-7,
        "f vs PyTorch",
    );
    assert_close(
        df.data(),
        &floats(&golden["df_autograd"]),
        3e-7,
        "f' vs PyTorch",
    );
    assert_close(df.data(), &floats(&golden["df_float64"]), 3e-7, "f' vs f64");
    assert_close(
        &closed,
        &floats(&golden["df_closed_form"]),
        3e-7,
        "closed form",
    );
}

#[test]
fn chain_rule_on_a_scalar_example() {
    // z = f(x, y) = x^2 y + e^(x y). By hand: dz/dx = 2 x y + y e^(x y), dz/dy = x^2 + x e^(x y).
    // Backward receives dL/dz and passes on dL/dx = dL/dz dz/dx (same for y): with L = 3 z the
    // gradients are three times those of z.
    let (xv, yv) = (1.5f64, -0.5f64);
    let dzdx = 2.0 * xv * yv + yv * (xv * yv).exp();
    let dzdy = xv * xv + xv * (xv * yv).exp();
    for dl_dz in [1.0f32, 3.0] {
        let tape = Tape::new();
        let x = tape.var(Tensor::scalar(xv as f32));
        let y = tape.var(Tensor::scalar(yv as f32));
        let z = x.square() * y + (x * y).exp();
        let want_z = xv * xv * yv + (xv * yv).exp();
        assert!((z.item().unwrap() as f64 - want_z).abs() < 1e-6);
        let g = z.backward_with(Tensor::scalar(dl_dz)).unwrap();
        let (gx, gy) = (
            g.get(x).unwrap().item().unwrap(),
            g.get(y).unwrap().item().unwrap(),
        );
        assert!(
            (gx as f64 - dl_dz as f64 * dzdx).abs() < 1e-5,
            "dL/dx = {gx}"
        );
        assert!(
            (gy as f64 - dl_dz as f64 * dzdy).abs() < 1e-5,
            "dL/dy = {gy}"
        );
    }
}

#[test]
fn softmax_and_log_softmax_are_stable_at_1000() {
    // With the max subtracted first: softmax([1000, -1000, 0, 999]) = [1, 0, 0, e^-1] / (1 + e^-1)
    // and log_softmax = x - 1000 - log(1 + e^-1); a naive e^1000 would be inf and give NaN.
    let x = [1000.0f32, -1000.0, 0.0, 999.0];
    let lse = 1000.0 + (1.0 + (-1.0f64).exp()).ln();
    let tape = Tape::new();
    let v = tape.var(Tensor::from_slice(&x));
    let p = v.softmax(0).unwrap().value();
    let lp = v.log_softmax(0).unwrap().value();
    assert!(p.data().iter().chain(lp.data()).all(|x| x.is_finite()));
    let z = 1.0 + (-1.0f64).exp();
    let want_p = [1.0 / z, 0.0, 0.0, (-1.0f64).exp() / z].map(|v| v as f32);
    assert_close(p.data(), &want_p, 1e-6, "softmax at 1000");
    let want_lp: Vec<f32> = x.iter().map(|&x| (x as f64 - lse) as f32).collect();
    assert_close(lp.data(), &want_lp, 1e-6, "log_softmax at 1000");
    // The rows stay finite for negative extremes too, and cross-entropy's gradient is p - onehot.
    let rows = tape.var(Tensor::from_vec(vec![-1000.0, 1000.0, -1000.0, -999.0], [2, 2]).unwrap());
    let ce = rows.cross_entropy(&[0, 1]).unwrap();
    assert!(ce.item().unwrap().is_finite());
    let g = ce.backward().unwrap().get(rows).unwrap();
    // Row 0: p = [0, 1], target 0 -> (p - q) / N = [-0.5, 0.5]. Row 1: p = [1, e] / (1 + e).
    let e = std::f64::consts::E;
    let want = [-0.5, 0.5, 0.5 / (1.0 + e), 0.5 * e / (1.0 + e) - 0.5].map(|v| v as f32);
    assert_close(g.data(), &want, 1e-6, "cross-entropy gradient at 1000");
    assert!((ce.item().unwrap() as f64 - 0.5 * (2000.0 + (1.0 + e).ln() - 1.0)).abs() < 1e-3);
}

#[test]
fn leaky_relu_and_stacked_linear_layers() {
    // Leaky ReLU is 0.01 x below 0 (slope 0.01, derivative 0.01 there).
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[-3.0, -0.5, 0.5, 2.0]));
    let y = x.leaky_relu(0.01);
    assert_close(
        &y.value().to_vec(),
        &[-0.03, -0.005, 0.5, 2.0],
        1e-7,
        "leaky",
    );
    let g = y
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap()
        .get(x)
        .unwrap();
    assert_close(g.data(), &[0.01, 0.01, 1.0, 1.0], 0.0, "leaky'");

    // A stack of linear layers is one linear layer: W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2).
    let mut r = rng(3);
    let (w1, b1) = (Tensor::randn([5, 4], &mut r), Tensor::randn([5], &mut r));
    let (w2, b2) = (Tensor::randn([3, 5], &mut r), Tensor::randn([3], &mut r));
    let xs = Tensor::randn([6, 4], &mut r);
    let tape = Tape::new();
    let (w1, b1, w2, b2, xs) = (
        tape.input(w1),
        tape.input(b1),
        tape.input(w2),
        tape.input(b2),
        tape.input(xs),
    );
    let two = xs
        .linear(w1, Some(b1))
        .unwrap()
        .linear(w2, Some(b2))
        .unwrap();
    let w = w2.matmul(w1).unwrap();
    let b = w2.matmul(b1).unwrap().add(b2).unwrap();
    let one = xs.linear(w, Some(b)).unwrap();
    assert!(two.value().allclose(&one.value(), 1e-5, 1e-5));
}
