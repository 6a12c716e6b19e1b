//! The ops a PyTorch user reaches for: `sum_all`/`mean_all`, `pow`, `log1p`, `softplus`, a
//! seedless backward with options, and `autograd::grad` for second derivatives.

#![allow(clippy::approx_constant)] // the tables hold PyTorch's reference values, as it printed them.

mod common;

use common::*;
use proptest::prelude::*;
use tapegrad::autograd::grad;
use tapegrad::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn log1p_softplus_and_pow_gradients(
        x in tensor(0, 4, -0.5, 3.0),
        s in tensor(0, 4, -4.0, 4.0),
        p in tensor(0, 4, 0.5, 2.0),
        e in -2.0f32..3.0,
    ) {
        // d log1p x = 1 / (1 + x) (smooth for x > -1); d softplus = sigmoid; d x^e = e x^(e-1).
        check(|_, v| Ok(v[0].log1p()), &[x])?;
        check(|_, v| Ok(v[0].softplus()), &[s])?;
        check(move |_, v| Ok(v[0].pow(e)), &[p])?;
    }

    #[test]
    fn sum_all_and_mean_all_gradients(x in tensor(0, 4, -2.0, 2.0)) {
        check(|_, v| Ok(v[0].sum_all()), std::slice::from_ref(&x))?;
        check(|_, v| Ok(v[0].mean_all()), &[x])?;
    }
}

/// `(x, softplus, d softplus, d2 softplus)` from PyTorch 2.15 in float64
/// (`torch.nn.functional.softplus` and two `torch.autograd.grad` calls).
const SOFTPLUS_TORCH: [(f32, f64, f64, f64); 10] = [
    (
        -100.0,
        3.720075976020836e-44,
        3.720075976020836e-44,
        3.7200759760208356e-44,
    ),
    (
        -20.0,
        2.061153620314381e-09,
        2.0611536181902033e-09,
        2.0611536139418496e-09,
    ),
    (
        -3.0,
        0.04858735157374206,
        0.04742587317756679,
        0.04517665973091214,
    ),
    (
        -0.5,
        0.4740769841801067,
        0.37754066879814546,
        0.2350037122015945,
    ),
    (0.0, 0.6931471805599453, 0.5, 0.25),
    (
        1e-7,
        0.6931472305599465,
        0.5000000250000001,
        0.24999999999999936,
    ),
    (
        0.5,
        0.9740769841801067,
        0.6224593312018546,
        0.2350037122015945,
    ),
    (
        3.0,
        3.048587351573742,
        0.9525741268224333,
        0.045176659730912,
    ),
    (20.0, 20.000000002061153, 0.9999999979388464, 0.0),
    (100.0, 100.0, 1.0, 0.0),
];

/// Within f32 rounding of a float64 reference (absolutely, for values below f32's normal range).
fn close(got: f32, want: f64, what: &str) {
    let err = (got as f64 - want).abs();
    assert!(
        err <= 4.0 * f32::EPSILON as f64 * want.abs() + 1e-37,
        "{what}: got {got:e}, PyTorch {want:e}"
    );
}

#[test]
fn softplus_and_its_derivatives_match_pytorch_at_every_scale() {
    let xs: Vec<f32> = SOFTPLUS_TORCH.iter().map(|r| r.0).collect();
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&xs));
    let y = x.softplus();
    let d = grad(&[y.sum_all()], &[x], true).unwrap().remove(0);
    let d2 = grad(&[d.sum_all()], &[x], false).unwrap().remove(0);
    for (i, &(at, f, df, d2f)) in SOFTPLUS_TORCH.iter().enumerate() {
        close(y.value().data()[i], f, &format!("softplus({at})"));
        close(d.value().data()[i], df, &format!("softplus'({at})"));
        // PyTorch switches to the identity above 20, so its second derivative is 0 there; ours
        // is sigmoid' = 2e-9 at 20, within f32 rounding of 0 next to the first derivative.
        let got = d2.value().data()[i];
        if at >= 20.0 {
            assert!(got.abs() < 3e-9, "softplus''({at}) = {got:e}");
        } else {
            close(got, d2f, &format!("softplus''({at})"));
        }
    }
    // The true derivative at 0, where a composition through relu and abs would give 0.
    assert_eq!(d.value().data()[4], 0.5);
}

#[test]
fn log1p_keeps_the_digits_of_small_arguments() {
    // (x, log1p x) from PyTorch 2.15 in float64.
    let cases: [(f32, f64); 8] = [
        (-0.9, -2.302585092994046),
        (-0.5, -0.6931471805599453),
        (-1e-6, -1.0000005000003334e-06),
        (0.0, 0.0),
        (1e-7, 9.999999500000033e-08),
        (0.5, 0.4054651081081644),
        (3.0, 1.3862943611198906),
        (1e6, 13.815511557963774),
    ];
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&cases.map(|c| c.0)));
    let y = x.log1p();
    for (i, &(at, want)) in cases.iter().enumerate() {
        close(y.value().data()[i], want, &format!("log1p({at})"));
    }
    // (1 + x).log() rounds 1 + 1e-7 to the nearest f32 first: 19% off.
    let naive = x.add_scalar(1.0).log().value().data()[4];
    assert!(
        (naive as f64 - cases[4].1).abs() > 0.1 * cases[4].1,
        "{naive:e}"
    );
}

#[test]
fn sum_all_mean_all_and_a_seedless_backward_with_options() {
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[1.0, 2.0, 3.0, 6.0]));
    assert_eq!(x.sum_all().item().unwrap(), 12.0);
    assert_eq!(x.mean_all().item().unwrap(), 3.0);
    // d/dx of sum x^3 with create_graph, then the second derivative from that gradient.
    let y = x.pow(3.0).sum_all();
    let opts = BackwardOptions {
        create_graph: true,
        ..Default::default()
    };
    let g = y.backward_with_opts(opts).unwrap();
    let dx = g.var(x).unwrap();
    assert_eq!(dx.value().to_vec(), vec![3.0, 12.0, 27.0, 108.0]);
    let d2 = dx.sum_all().backward().unwrap();
    assert_eq!(d2.get(x).unwrap().to_vec(), vec![6.0, 12.0, 18.0, 36.0]);
    // A non-scalar output still asks for a seed.
    let err = x.square().backward_with_opts(opts).unwrap_err().to_string();
    assert!(err.contains("single element"), "{err}");
}
