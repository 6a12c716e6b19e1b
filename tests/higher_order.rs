//! Gradients of gradients: backward with `create_graph` records the chain rule on the tape, so
//! its result can be differentiated again (second derivatives, Hessian-vector products,
//! gradient penalties).

mod common;

use common::{check_with, OPTS};
use proptest::prelude::*;
use tapegrad::prelude::*;

const CREATE: BackwardOptions = BackwardOptions {
    create_graph: true,
    retain_graph: true,
};

fn grid() -> Tensor {
    Tensor::arange(-5.0, 5.25, 0.5).unwrap()
}

/// f'(x) and f''(x) of an elementwise `f`, each by a backward pass of `sum(...)` (the sum makes
/// the elementwise derivatives the gradient).
fn first_and_second(f: impl for<'t> Fn(Var<'t>) -> Var<'t>, x: &Tensor) -> (Tensor, Tensor) {
    let tape = Tape::new();
    let v = tape.var(x.clone());
    let y = f(v).sum(&[], false).unwrap();
    let g = y
        .backward_with_options(Tensor::scalar(1.0), CREATE)
        .unwrap();
    let d1 = g.var(v).expect("x is reached");
    let d2 = d1
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap()
        .get(v)
        .unwrap();
    (d1.value(), d2)
}

fn assert_close(got: &Tensor, want: &[f32], tol: f32, what: &str) {
    for (i, (&g, &w)) in got.data().iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn second_derivative_of_tanh() {
    // t = tanh x: t' = 1 - t^2, t'' = -2 t t' = -2 t (1 - t^2).
    let x = grid();
    let (d1, d2) = first_and_second(|v| v.tanh(), &x);
    let t: Vec<f64> = x.data().iter().map(|&x| (x as f64).tanh()).collect();
    let want1: Vec<f32> = t.iter().map(|t| (1.0 - t * t) as f32).collect();
    let want2: Vec<f32> = t
        .iter()
        .map(|t| (-2.0 * t * (1.0 - t * t)) as f32)
        .collect();
    assert_close(&d1, &want1, 1e-6, "tanh'");
    assert_close(&d2, &want2, 1e-6, "tanh''");
}

#[test]
fn second_derivative_of_swish() {
    // f = x s with s' = s (1 - s): f' = s + x s (1 - s), and
    // f'' = s (1 - s) + s (1 - s) + x s (1 - s)(1 - 2 s) = s (1 - s)(2 + x (1 - 2 s)).
    let x = grid();
    let (d1, d2) = first_and_second(|v| v.swish(), &x);
    let (mut want1, mut want2) = (vec![], vec![]);
    for &x in x.data() {
        let x = x as f64;
        let s = 1.0 / (1.0 + (-x).exp());
        want1.push((s + x * s * (1.0 - s)) as f32);
        want2.push((s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))) as f32);
    }
    assert_close(&d1, &want1, 1e-6, "swish'");
    assert_close(&d2, &want2, 2e-6, "swish''");
}

/// A two-layer tanh MLP's loss `mean((tanh(tanh(x W1^T + b1) W2^T + b2) - y)^2)` with the
/// parameters `p = [W1, b1, W2, b2]` given as vars.
fn mlp_loss<'t>(p: &[Var<'t>], x: Var<'t>, y: Var<'t>) -> Result<Var<'t>> {
    let h = x.linear(p[0], Some(p[1]))?.tanh();
    h.linear(p[2], Some(p[3]))?.tanh().mse(y)
}

/// The loss gradient with respect to each parameter, at `params`.
fn mlp_grad(params: &[Tensor], x: &Tensor, y: &Tensor) -> Vec<Tensor> {
    let tape = Tape::new();
    let p: Vec<Var> = params.iter().map(|t| tape.var(t.clone())).collect();
    let loss = mlp_loss(&p, tape.input(x.clone()), tape.input(y.clone())).unwrap();
    let g = loss.backward().unwrap();
    p.iter().map(|&v| g.get_or_zeros(v)).collect()
}

/// `params + s * dir`, elementwise per parameter.
fn step(params: &[Tensor], dir: &[Tensor], s: f32) -> Vec<Tensor> {
    params
        .iter()
        .zip(dir)
        .map(|(p, d)| p.add(&d.mul_scalar(s)).unwrap())
        .collect()
}

#[test]
fn hessian_vector_product_of_a_tanh_mlp() {
    // H v = d/dp (grad L(p) . v): one backward with create_graph gives grad L as vars, a second
    // backward of their dot product with v gives H v. Central differences of the gradient along
    // v, (grad L(p + h v) - grad L(p - h v)) / 2h, approximate the same product.
    let mut r = rng(11);
    let (n, i, hidden, o) = (5, 3, 4, 2);
    let params = vec![
        Tensor::randn([hidden, i], &mut r).mul_scalar(0.7),
        Tensor::randn([hidden], &mut r).mul_scalar(0.3),
        Tensor::randn([o, hidden], &mut r).mul_scalar(0.7),
        Tensor::randn([o], &mut r).mul_scalar(0.3),
    ];
    let dir: Vec<Tensor> = params
        .iter()
        .map(|p| Tensor::randn(p.shape().clone(), &mut r))
        .collect();
    let x = Tensor::randn([n, i], &mut r);
    let y = Tensor::rand([n, o], -0.8, 0.8, &mut r);

    let tape = Tape::new();
    let p: Vec<Var> = params.iter().map(|t| tape.var(t.clone())).collect();
    let loss = mlp_loss(&p, tape.input(x.clone()), tape.input(y.clone())).unwrap();
    let g = loss
        .backward_with_options(Tensor::scalar(1.0), CREATE)
        .unwrap();
    let mut dot = tape.input(Tensor::scalar(0.0));
    for (k, &v) in p.iter().enumerate() {
        let gk = g.var(v).expect("every parameter is reached");
        let term = gk.mul(tape.input(dir[k].clone())).unwrap();
        dot = dot.add(term.sum(&[], false).unwrap()).unwrap();
    }
    let hv_grads = dot.backward().unwrap();

    let h = 1e-2;
    let plus = mlp_grad(&step(&params, &dir, h), &x, &y);
    let minus = mlp_grad(&step(&params, &dir, -h), &x, &y);
    let mut largest = 0.0f32;
    for (k, &v) in p.iter().enumerate() {
        let hv = hv_grads.get_or_zeros(v);
        let fd = plus[k].sub(&minus[k]).unwrap().mul_scalar(1.0 / (2.0 * h));
        largest = largest.max(fd.data().iter().fold(0.0f32, |m, x| m.max(x.abs())));
        assert!(
            hv.allclose(&fd, 1e-2, 2e-3),
            "parameter {k}: H v = {hv:?}, finite differences {fd:?}"
        );
    }
    // The product is not trivially zero.
    assert!(largest > 1e-2, "largest |H v| entry {largest}");
}

/// A gradient penalty `P(x, W) = |d/dx sum(tanh(x W^T))|^2`. The inner gradient is
/// `(1 - tanh(x W^T)^2) W`, computed by a backward pass that records itself.
fn gradient_penalty<'t>(_: &'t Tape, v: &[Var<'t>]) -> Result<Var<'t>> {
    let inner = v[0].linear(v[1], None)?.tanh().sum(&[], false)?;
    let g = inner.backward_with_options(Tensor::scalar(1.0), CREATE)?;
    let dx = g
        .var(v[0])
        .ok_or_else(|| Error::invalid("gradient_penalty", "x got no gradient"))?;
    dx.square().sum(&[], false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn gradient_of_a_gradient_norm(
        x in common::tensor_of(vec![3, 4], -1.5, 1.5),
        w in common::tensor_of(vec![2, 4], -1.0, 1.0),
    ) {
        // gradcheck differentiates P through the inner backward pass.
        check_with(gradient_penalty, &[x.clone(), w.clone()], OPTS)?;

        // Elementwise, with a closed form: P(x) = sum(w^2 (1 - tanh(x)^2)^2), so
        // dP/dx = w^2 * 2 (1 - t^2)(-2 t (1 - t^2)) = -4 w^2 t (1 - t^2)^2.
        let wv = w.data()[0];
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let inner = xv.tanh().mul_scalar(wv).sum(&[], false).unwrap();
        let g = inner.backward_with_options(Tensor::scalar(1.0), CREATE).unwrap();
        let p = g.var(xv).unwrap().square().sum(&[], false).unwrap();
        let dp = p.backward().unwrap().get(xv).unwrap();
        for (&got, &xi) in dp.data().iter().zip(x.data()) {
            let t = (xi as f64).tanh();
            let want = -4.0 * (wv as f64).powi(2) * t * (1.0 - t * t).powi(2);
            prop_assert!((got as f64 - want).abs() < 1e-5, "{} vs {}", got, want);
        }
    }
}
