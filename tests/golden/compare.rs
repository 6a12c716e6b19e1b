//! Comparison of an op's results with a case's expected values, reporting the worst element.

use super::case::Outputs;
use tapegrad_autograd::Tensor;

/// One message per result that does not match: a missing or unexpected result, a shape that
/// differs, or values outside `|got - expected| <= atol + rtol * |expected|`.
pub fn compare(expected: &Outputs, got: &Outputs, rtol: f64, atol: f64) -> Vec<String> {
    let mut failures = Vec::new();
    for (key, want) in expected {
        match got.get(key) {
            None => failures.push(format!("{key}: the op produced no such result")),
            Some(have) => {
                if let Some(msg) = compare_tensor(have, want, rtol, atol) {
                    failures.push(format!("{key}: {msg}"));
                }
            }
        }
    }
    for key in got.keys().filter(|k| !expected.contains_key(*k)) {
        failures.push(format!(
            "{key}: produced, but the case expects no such result"
        ));
    }
    failures
}

/// `None` if every element is within tolerance, else a description of the worst one (the
/// largest ratio of error to allowed error; a NaN counts as worst of all).
pub fn compare_tensor(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Option<String> {
    if got.dims() != want.dims() {
        return Some(format!(
            "shape {:?}, expected {:?}",
            got.dims(),
            want.dims()
        ));
    }
    let mut bad = 0;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &e)) in got.data().iter().zip(want.data()).enumerate() {
        let (g, e) = (g as f64, e as f64);
        let allowed = atol + rtol * e.abs();
        let diff = (g - e).abs();
        // `g == e` also accepts equal infinities, whose difference is NaN.
        if g == e || diff <= allowed {
            continue;
        }
        bad += 1;
        let score = if diff.is_nan() {
            f64::INFINITY
        } else if allowed > 0.0 {
            diff / allowed
        } else {
            f64::MAX
        };
        if worst.is_none_or(|(_, s)| score > s) {
            worst = Some((i, score));
        }
    }
    let (i, _) = worst?;
    let (g, e) = (got.data()[i], want.data()[i]);
    Some(format!(
        "{bad} of {} elements out of tolerance; worst at {:?}: got {g:e}, expected {e:e}, \
         |diff| {:.3e} > {:.3e} (rtol {rtol:e}, atol {atol:e})",
        want.numel(),
        unravel(i, want.dims()),
        (g as f64 - e as f64).abs(),
        atol + rtol * (e as f64).abs(),
    ))
}

/// The multi-index of flat row-major position `i`.
fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for (slot, &d) in idx.iter_mut().zip(dims).rev() {
        *slot = i % d.max(1);
        i /= d.max(1);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_atol_plus_rtol_times_expected() {
        let want = Tensor::from_slice(&[100.0, 0.0]);
        // Allowed error at 100 is 1e-5 + 1e-4 * 100 = 0.01000..., at 0 it is 1e-5.
        let ok = Tensor::from_slice(&[100.0099, 0.9e-5]);
        assert_eq!(compare_tensor(&ok, &want, 1e-4, 1e-5), None);
        let off = Tensor::from_slice(&[100.0, 3e-5]);
        let msg = compare_tensor(&off, &want, 1e-4, 1e-5).expect("3e-5 > 1e-5 must fail");
        assert!(msg.contains("1 of 2") && msg.contains("[1]"), "{msg}");
        let nan = Tensor::from_slice(&[f32::NAN, 0.0]);
        assert!(compare_tensor(&nan, &want, 1e-4, 1e-5).is_some());
        let wrong_shape = Tensor::zeros([2, 1]);
        assert!(compare_tensor(&wrong_shape, &want, 1.0, 1.0).is_some());
    }

    #[test]
    fn worst_element_is_reported_with_its_multi_index() {
        let want = Tensor::zeros([2, 3]);
        let got = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0, 0.0, 5.0], [2, 3]).unwrap();
        let msg = compare_tensor(&got, &want, 0.0, 1e-3).unwrap();
        assert!(msg.contains("[1, 2]") && msg.contains("2 of 6"), "{msg}");
    }

    #[test]
    fn missing_and_unexpected_results_fail() {
        let mut want = Outputs::new();
        want.insert("output".into(), Tensor::scalar(1.0));
        let mut got = Outputs::new();
        got.insert("grads.x".into(), Tensor::scalar(1.0));
        let f = compare(&want, &got, 1e-4, 1e-5);
        assert_eq!(f.len(), 2, "{f:?}");
    }
}
