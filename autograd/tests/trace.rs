//! The backward trace, the DOT export and anomaly mode.

use tapegrad_autograd::trace::to_dot;
use tapegrad_autograd::{BackwardOptions, Error, Tape, Tensor};

#[test]
fn trace_of_a_residual_join_shows_the_summed_gradient() {
    // y = sum(x + relu(w * x)); x feeds both the product and the join, so its gradient is the
    // sum of two paths: 1 from the skip, and w * relu'(w x) from the branch.
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[1.0, -2.0])).label("x");
    let w = tape.var(Tensor::from_slice(&[3.0, 3.0])).label("w");
    let branch = (w * x).relu();
    let y = (x + branch).sum(&[], false).unwrap();
    let opts = BackwardOptions {
        trace: true,
        ..Default::default()
    };
    let g = y.backward_with_options(Tensor::scalar(1.0), opts).unwrap();
    let trace = g.trace().unwrap();
    let join = trace.step(x.id()).unwrap();
    assert_eq!(join.paths, 2);
    assert_eq!(join.label.as_deref(), Some("x"));
    // Path 1: the skip sends 1; path 2: w * (w x > 0) = [3, 0].
    assert_eq!(join.grad.to_vec(), vec![4.0, 1.0]);
    assert_eq!(g.get(x).unwrap().to_vec(), vec![4.0, 1.0]);
    assert_eq!(trace.joins().count(), 1);
    // Steps come in the order backward visited them: the output first.
    assert_eq!(trace.steps[0].node, y.id());
    let text = trace.to_string();
    assert!(text.contains("grad (sum of 2 paths)"), "{text}");
    assert!(text.contains("rule: grad * (result > 0)"), "{text}");
    let dot = to_dot(&tape, Some(trace));
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("|g|"));
}

#[test]
fn stop_after_ends_the_pass_early() {
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[0.5]));
    let h = x.exp();
    let y = h.tanh().sum(&[], false).unwrap();
    let opts = BackwardOptions {
        trace: true,
        stop_after: Some(h.id()),
        ..Default::default()
    };
    let g = y.backward_with_options(Tensor::scalar(1.0), opts).unwrap();
    assert!(g.get(x).is_none());
    assert_eq!(g.trace().unwrap().steps.last().unwrap().node, h.id());
}

#[test]
fn anomaly_mode_names_the_first_non_finite_op() {
    let tape = Tape::new();
    tape.detect_anomaly(true);
    let x = tape.var(Tensor::from_slice(&[1.0, -1.0]));
    let y = x.log().exp().sum(&[], false).unwrap();
    match y.backward() {
        Err(Error::NonFinite { op, pass, .. }) => {
            assert_eq!(op, "log");
            assert_eq!(pass, "forward");
        }
        other => panic!("expected an anomaly, got {:?}", other.map(|_| ())),
    }
    // Backward anomalies too: sqrt'(0) = inf.
    let tape = Tape::new();
    tape.detect_anomaly(true);
    let x = tape.var(Tensor::from_slice(&[0.0]));
    let err = x.sqrt().sum(&[], false).unwrap().backward().err().unwrap();
    assert!(err.to_string().contains("backward"), "{err}");
}

#[test]
fn the_trace_prints_small_gradients_as_numbers_not_zeros() {
    // A saturated tanh: d tanh(x)/dx = 1 - tanh(x)^2, about 2e-6 at x = 7.5.
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[7.5, -7.5])).label("x");
    let y = x.tanh().sum(&[], false).unwrap();
    let opts = BackwardOptions {
        trace: true,
        ..Default::default()
    };
    let g = y.backward_with_options(Tensor::scalar(1.0), opts).unwrap();
    let grad = g.get(x).unwrap().to_vec();
    assert!(grad.iter().all(|&d| d > 1e-7 && d < 1e-5), "{grad:?}");
    let text = g.trace().unwrap().to_string();
    let shown = format!("{:.4e}", grad[0]);
    assert!(text.contains(&shown), "{shown} missing from:\n{text}");
    assert!(!text.contains("0.0000,"), "{text}");
}
