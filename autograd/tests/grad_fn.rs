//! `grad(outputs, inputs, create_graph)`, PyTorch's `torch.autograd.grad`.

use tapegrad_autograd::{grad, Tape, Tensor};

#[test]
fn first_and_second_derivatives_of_tanh_match_their_formulas() {
    let xs = [-2.0f32, -0.3, 0.0, 0.7, 1.5];
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&xs));
    let y = x.tanh().sum(&[], false).unwrap();
    let dy = grad(&[y], &[x], true).unwrap().remove(0);
    let d2y = grad(&[dy.sum(&[], false).unwrap()], &[x], false)
        .unwrap()
        .remove(0);
    for (i, &v) in xs.iter().enumerate() {
        let t = v.tanh();
        let (d1, d2) = (1.0 - t * t, -2.0 * t * (1.0 - t * t));
        assert!((dy.value().data()[i] - d1).abs() < 1e-6, "tanh' at {v}");
        assert!((d2y.value().data()[i] - d2).abs() < 1e-6, "tanh'' at {v}");
    }
    // Without create_graph the gradient is a constant: differentiating it again finds nothing.
    let y = x.tanh().sum(&[], false).unwrap();
    let flat = grad(&[y], &[x], false).unwrap().remove(0);
    let again = grad(&[flat.sum(&[], false).unwrap()], &[x], false);
    assert!(again.is_err());
}

#[test]
fn intermediates_and_several_outputs() {
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[1.0, 2.0]));
    let h = x.mul_scalar(3.0); // an intermediate
    let a = h.square().sum(&[], false).unwrap(); // sum 9 x^2
    let b = h.sum(&[], false).unwrap(); // sum 3 x
    let g = grad(&[a, b], &[h, x], false).unwrap();
    // d(a + b)/dh = 2 h + 1; d(a + b)/dx = 18 x + 3.
    assert_eq!(g[0].value().to_vec(), vec![7.0, 13.0]);
    assert_eq!(g[1].value().to_vec(), vec![21.0, 39.0]);
}

#[test]
fn bad_calls_are_errors_naming_what_is_wrong() {
    let tape = Tape::new();
    let x = tape.var(Tensor::from_slice(&[1.0, 2.0]));
    let unused = tape.var(Tensor::scalar(5.0));
    let y = x.square().sum(&[], false).unwrap();
    let err = grad(&[y], &[x, unused], false).unwrap_err().to_string();
    assert!(err.contains("input 1") && err.contains("not used"), "{err}");
    let err = grad(&[x.square()], &[x], false).unwrap_err().to_string();
    assert!(
        err.contains("output 0") && err.contains("one element"),
        "{err}"
    );
    assert!(grad(&[], &[x], false).is_err());
    let other = Tape::new();
    let z = other.var(Tensor::scalar(1.0));
    let y = x.square().sum(&[], false).unwrap();
    let err = grad(&[y], &[z], false).unwrap_err().to_string();
    assert!(err.contains("different tapes"), "{err}");
}
