//! Losses: class weights, label smoothing and ignored labels against hand computation, and
//! PyTorch's reference values.

mod common;

use common::{assert_close, cases, labels, tensor, tol};
use tapegrad_autograd::gradcheck::{gradcheck_with, GradcheckOptions};
use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_nn::loss::Reduction;
use tapegrad_nn::loss::{self, CrossEntropyLoss, NllLoss};

/// Logits whose log-softmax is exactly the log of these probabilities (they sum to 1):
/// sample 0 [1/2, 1/4, 1/4] label 0; sample 1 [1/8, 1/8, 3/4] label 2; sample 2 [1/4, 1/2, 1/4]
/// label 1. Class weights [1, 2, 3], so sum_i w[t_i] = 1 + 3 + 2 = 6.
fn setup() -> (Tensor, Vec<usize>, Tensor) {
    let p = [0.5f32, 0.25, 0.25, 0.125, 0.125, 0.75, 0.25, 0.5, 0.25];
    let logits = Tensor::from_vec(p.iter().map(|x| x.ln()).collect(), [3, 3]).unwrap();
    (logits, vec![0, 2, 1], Tensor::from_slice(&[1.0, 2.0, 3.0]))
}

const LN2: f64 = std::f64::consts::LN_2;

fn ln43() -> f64 {
    (4.0f64 / 3.0).ln()
}

fn close(got: f32, want: f64) {
    assert!(
        (got as f64 - want).abs() < 2e-6,
        "got {got}, expected {want}"
    );
}

#[test]
fn weighted_cross_entropy_by_hand() {
    let (x, y, w) = setup();
    // -log p[t]: ln 2, ln(4/3), ln 2, weighted by w[t] = 1, 3, 2.
    let per = [LN2, 3.0 * ln43(), 2.0 * LN2];
    let ce = CrossEntropyLoss::new().weight(w.clone());
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let none = ce
        .clone()
        .reduction(Reduction::None)
        .forward(xv, &y)
        .unwrap();
    for (g, w) in none.value().data().iter().zip(per) {
        close(*g, w);
    }
    let sum = ce
        .clone()
        .reduction(Reduction::Sum)
        .forward(xv, &y)
        .unwrap();
    close(sum.item().unwrap(), per.iter().sum());
    // PyTorch's weighted mean divides by sum_i w[t_i] = 6, not by N = 3.
    let mean = ce.forward(xv, &y).unwrap();
    close(mean.item().unwrap(), per.iter().sum::<f64>() / 6.0);
    // dL/dx_i = w[t_i] (p_i - onehot(t_i)) / 6: sample 0 is [-1/2, 1/4, 1/4] / 6.
    let g = mean.backward().unwrap().get(xv).unwrap();
    for (got, want) in g.data()[..3]
        .iter()
        .zip([-1.0 / 12.0, 1.0 / 24.0, 1.0 / 24.0])
    {
        close(*got, want);
    }
}

#[test]
fn weighted_cross_entropy_with_label_smoothing_by_hand() {
    // q_ic = (1 - eps) w[t_i] [c = t_i] + (eps / C) w[c], eps = 0.3, C = 3:
    // sample 0: 0.7 ln2 + 0.1 (ln2 + 2 ln4 + 3 ln4) = 1.8 ln2;
    // sample 1: 2.1 ln(4/3) + 0.1 (ln8 + 2 ln8 + 3 ln(4/3)) = 2.4 ln(4/3) + 0.9 ln2;
    // sample 2: 1.4 ln2 + 0.1 (ln4 + 2 ln2 + 3 ln4) = 2.4 ln2; the mean divides by 6.
    let (x, y, w) = setup();
    let tape = Tape::new();
    let loss = CrossEntropyLoss::new()
        .weight(w)
        .label_smoothing(0.3)
        .forward(tape.var(x), &y)
        .unwrap();
    close(loss.item().unwrap(), (5.1 * LN2 + 2.4 * ln43()) / 6.0);
}

#[test]
fn ignored_labels_leave_the_loss_and_the_denominator() {
    // Ignoring label 2 drops sample 1: (1 ln2 + 2 ln2) / (1 + 2) = ln 2.
    let (x, y, w) = setup();
    let tape = Tape::new();
    let xv = tape.var(x);
    let loss = CrossEntropyLoss::new()
        .weight(w)
        .ignore_index(2)
        .forward(xv, &y)
        .unwrap();
    close(loss.item().unwrap(), LN2);
    let g = loss.backward().unwrap().get(xv).unwrap();
    assert!(g.data()[3..6].iter().all(|&v| v == 0.0));
}

#[test]
fn weighted_nll_by_hand() {
    // The same picks, on log-probabilities given directly.
    let (x, y, w) = setup();
    let tape = Tape::new();
    let logp = tape.var(log_softmax(&x));
    let mean = NllLoss::new().weight(w).forward(logp, &y).unwrap();
    close(mean.item().unwrap(), (LN2 + 3.0 * ln43() + 2.0 * LN2) / 6.0);
    let plain = loss::nll_loss(logp, &y).unwrap();
    close(plain.item().unwrap(), (2.0 * LN2 + ln43()) / 3.0);
}

/// log_softmax of a tensor along axis 1, for building inputs.
fn log_softmax(x: &Tensor) -> Tensor {
    let tape = Tape::inference();
    tape.input(x.clone()).log_softmax(1).unwrap().value()
}

#[test]
fn mse_and_bce_by_hand() {
    let tape = Tape::new();
    let a = tape.var(Tensor::from_slice(&[1.0, 2.0]));
    let b = tape.input(Tensor::from_slice(&[0.0, 4.0]));
    // (1 + 4) / 2 = 2.5
    close(
        loss::mse_loss(a, b, Reduction::Mean)
            .unwrap()
            .item()
            .unwrap(),
        2.5,
    );
    let x = tape.var(Tensor::from_slice(&[0.0, 2.0]));
    let y = tape.input(Tensor::from_slice(&[1.0, 0.0]));
    // x=0, y=1: ln 2; x=2, y=0: 2 + ln(1 + e^-2) = 2.126928.
    let l = loss::bce_with_logits(x, y, Reduction::None)
        .unwrap()
        .value();
    close(l.data()[0], LN2);
    close(l.data()[1], 2.0 + (1.0 + (-2.0f64).exp()).ln());
}

#[test]
fn bad_inputs_are_errors() {
    let (x, y, _) = setup();
    let tape = Tape::new();
    let xv = tape.var(x);
    let ce = CrossEntropyLoss::new();
    assert!(ce.forward(xv, &[0, 1]).is_err());
    assert!(ce.forward(xv, &[0, 1, 3]).is_err());
    assert!(ce
        .clone()
        .weight(Tensor::ones([2]))
        .forward(xv, &y)
        .is_err());
    assert!(ce.clone().label_smoothing(1.5).forward(xv, &y).is_err());
    let err = NllLoss::new().forward(xv, &[0, 7, 1]).unwrap_err();
    assert!(err.to_string().contains("label 7"), "{err}");
}

#[test]
fn weighted_smoothed_cross_entropy_gradcheck() {
    let x = Tensor::randn([4, 5], &mut rng(11));
    let w = Tensor::from_slice(&[0.5, 1.0, 2.0, 0.1, 3.0]);
    let report = gradcheck_with(
        |_, v| {
            CrossEntropyLoss::new()
                .weight(w.clone())
                .label_smoothing(0.2)
                .forward(v[0], &[4, 0, 2, 2])
        },
        &[x],
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn losses_match_pytorch() {
    for case in &cases("losses.json") {
        let name = case["name"].as_str().unwrap();
        let inp = &case["inputs"];
        let tape = Tape::new();
        let x = tape.var(tensor(&inp["input"]));
        let out = match case["op"].as_str().unwrap() {
            "cross_entropy" => {
                let eps = case["params"]["label_smoothing"].as_f64().unwrap() as f32;
                let y = labels(&inp["target"]);
                CrossEntropyLoss::new().label_smoothing(eps).forward(x, &y)
            }
            "nll_loss" => loss::nll_loss(x, &labels(&inp["target"])),
            "mse_loss" => loss::mse_loss(x, tape.var(tensor(&inp["target"])), Reduction::Mean),
            other => panic!("{name}: unknown loss {other}"),
        }
        .unwrap();
        assert_close(
            &format!("{name} loss"),
            &out.value(),
            &tensor(&case["output"]),
            tol(case),
        );
        let g = out.backward_with(tensor(&case["grad_output"])).unwrap();
        let want = tensor(&case["grads"]["input"]);
        assert_close(
            &format!("{name} d input"),
            &g.get(x).unwrap(),
            &want,
            tol(case),
        );
    }
}
