//! A PyTorch-like `Display`: nested brackets, four decimals, and `...` past 1,000 elements.

use super::Tensor;
use std::fmt;

/// Tensors with more elements than this are printed with only the first and last `EDGE` entries
/// of each dimension.
const SUMMARISE_ABOVE: usize = 1000;
const EDGE: usize = 3;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summarise = self.numel() > SUMMARISE_ABOVE;
        let sci = needs_scientific(self.data());
        write!(f, "tensor(")?;
        if self.numel() == 0 {
            // As PyTorch: no brackets per dimension, which could be 2^62 of them.
            write!(f, "[]")?;
        } else if self.rank() == 0 {
            write_value(f, self.data()[0], sci)?;
        } else {
            write_dim(f, self, 0, 0, summarise, sci)?;
        }
        write!(f, ", shape={})", self.shape())
    }
}

/// Whether some value would print as zero, or too wide, with four decimals: then every value
/// of the tensor prints in scientific notation, as PyTorch does.
pub(crate) fn needs_scientific(data: &[f32]) -> bool {
    data.iter()
        .any(|v| v.is_finite() && *v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-3))
}

/// One value with five significant digits (`sci`) or four decimals.
pub(crate) fn format_value(v: f32, sci: bool) -> String {
    if sci {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

fn write_value(f: &mut fmt::Formatter<'_>, v: f32, sci: bool) -> fmt::Result {
    if sci {
        write!(f, "{v:.4e}")
    } else {
        write!(f, "{v:.4}")
    }
}

fn write_dim(
    f: &mut fmt::Formatter<'_>,
    t: &Tensor,
    axis: usize,
    offset: usize,
    summarise: bool,
    sci: bool,
) -> fmt::Result {
    let n = t.dims()[axis];
    let stride: usize = t.dims()[axis + 1..].iter().product();
    let indices: Vec<Option<usize>> = if summarise && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    write!(f, "[")?;
    for (k, i) in indices.iter().enumerate() {
        if k > 0 {
            if axis + 1 == t.rank() {
                write!(f, ", ")?;
            } else {
                write!(f, ",\n{:width$}", "", width = 8 + axis)?;
            }
        }
        match i {
            None => write!(f, "...")?,
            Some(i) if axis + 1 == t.rank() => write_value(f, t.data()[offset + i], sci)?,
            Some(i) => write_dim(f, t, axis + 1, offset + i * stride, summarise, sci)?,
        }
    }
    write!(f, "]")
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tensors_print_in_full_and_large_ones_summarised() {
        let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        assert_eq!(
            t.to_string(),
            "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2, 2])"
        );
        let big = Tensor::zeros([2000]).to_string();
        assert!(big.contains("..."), "{big}");
        assert!(big.len() < 200);
        assert_eq!(Tensor::scalar(0.5).to_string(), "tensor(0.5000, shape=[])");
        let empty = Tensor::zeros([1 << 40, 0]).to_string();
        assert_eq!(empty, "tensor([], shape=[1099511627776, 0])");
    }
}
