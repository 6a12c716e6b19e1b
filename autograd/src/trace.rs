//! Summaries of tensors for traces and anomaly reports.

use crate::tensor::Tensor;

/// Statistics of a tensor: `shape [2, 3], mean 0.1, std 1.2, min -2, max 3, norm 4.1`
/// (NaN and infinities are counted, not averaged).
pub fn summary(t: &Tensor) -> String {
    let d = t.data();
    let finite: Vec<f64> = d
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| x as f64)
        .collect();
    let nan = d.iter().filter(|x| x.is_nan()).count();
    let inf = d.iter().filter(|x| x.is_infinite()).count();
    let n = finite.len().max(1) as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let var = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let min = finite.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let norm = finite.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut s = format!(
        "shape {}, mean {mean:.4e}, std {:.4e}, min {min:.4e}, max {max:.4e}, norm {norm:.4e}",
        t.shape(),
        var.sqrt()
    );
    if nan + inf > 0 {
        s.push_str(&format!(", {nan} NaN, {inf} inf"));
    }
    s
}
