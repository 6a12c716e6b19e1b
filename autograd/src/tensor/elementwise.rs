//! Elementwise kernels: unary maps and NumPy-broadcast binary and ternary ops.
//!
//! Broadcasting never materialises the expanded operand: each operand is read through strides in
//! which broadcast dimensions have stride 0, one output row (the last dimension) at a time, and
//! rows are spread over rayon's threads when the output is large.

use super::{buffer_pool, Tensor, PAR_THRESHOLD};
use crate::error::{Error, Result};
use crate::shape::Shape;
use rayon::prelude::*;
use smallvec::SmallVec;

impl Tensor {
    /// Applies `f` to every element (in parallel for large tensors).
    pub fn map(&self, f: impl Fn(f32) -> f32 + Sync + Send) -> Tensor {
        let src = self.data();
        let mut out = buffer_pool::for_overwrite(src.len());
        let apply = |(o, s): (&mut [f32], &[f32])| {
            o.iter_mut().zip(s).for_each(|(o, &x)| *o = f(x));
        };
        if src.len() >= PAR_THRESHOLD {
            out.par_chunks_mut(4096)
                .zip(src.par_chunks(4096))
                .for_each(apply);
        } else {
            apply((&mut out, src));
        }
        Tensor::from_parts(out, self.shape().clone())
    }

    /// Combines two tensors elementwise with NumPy broadcasting; `op` names the caller in errors.
    pub fn zip_with(
        &self,
        other: &Tensor,
        op: &'static str,
        f: impl Fn(f32, f32) -> f32 + Sync + Send,
    ) -> Result<Tensor> {
        let shape = Shape::broadcast(op, self.shape(), other.shape())?;
        let (a, b) = (self.data(), other.data());
        if self.shape() == other.shape() {
            let mut out = buffer_pool::try_for_overwrite(op, a.len())?;
            let apply = |((o, x), y): ((&mut [f32], &[f32]), &[f32])| {
                for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *o = f(x, y);
                }
            };
            if a.len() >= PAR_THRESHOLD {
                out.par_chunks_mut(4096)
                    .zip(a.par_chunks(4096))
                    .zip(b.par_chunks(4096))
                    .for_each(apply);
            } else {
                apply(((&mut out, a), b));
            }
            return Ok(Tensor::from_parts(out, shape));
        }
        if other.numel() == 1 {
            let s = b[0];
            return Ok(self.map(|x| f(x, s)).reshape_unchecked(shape));
        }
        if self.numel() == 1 {
            let s = a[0];
            return Ok(other.map(|y| f(s, y)).reshape_unchecked(shape));
        }
        let mut strides = [
            self.shape().broadcast_strides(&shape),
            other.shape().broadcast_strides(&shape),
        ];
        let dims = coalesce(shape.dims(), &mut strides);
        let [sa, sb] = &strides;
        let out = broadcast_rows(op, &dims, |row_out, offsets, inner| {
            let (oa, ob) = (offsets(sa), offsets(sb));
            let len = row_out.len();
            // The common strides get loops the compiler vectorises.
            match (inner(sa), inner(sb)) {
                (1, 1) => {
                    let (ra, rb) = (&a[oa..oa + len], &b[ob..ob + len]);
                    for ((o, &x), &y) in row_out.iter_mut().zip(ra).zip(rb) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in row_out.iter_mut().zip(&a[oa..oa + len]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in row_out.iter_mut().zip(&b[ob..ob + len]) {
                        *o = f(x, y);
                    }
                }
                (ia, ib) => {
                    for (j, o) in row_out.iter_mut().enumerate() {
                        *o = f(a[oa + j * ia], b[ob + j * ib]);
                    }
                }
            }
        })?;
        Ok(Tensor::from_parts(out, shape))
    }

    /// `where(mask, a, b)`: `a` where `mask` is non-zero, else `b`, all three broadcast together.
    pub fn where_cond(mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let shape = Shape::broadcast("where", mask.shape(), a.shape())?;
        let shape = Shape::broadcast("where", &shape, b.shape())?;
        let mut strides = [
            mask.shape().broadcast_strides(&shape),
            a.shape().broadcast_strides(&shape),
            b.shape().broadcast_strides(&shape),
        ];
        let dims = coalesce(shape.dims(), &mut strides);
        let [sm, sa, sb] = &strides;
        let (m, ad, bd) = (mask.data(), a.data(), b.data());
        let out = broadcast_rows("where", &dims, |row_out, offsets, inner| {
            let (om, oa, ob) = (offsets(sm), offsets(sa), offsets(sb));
            let (im, ia, ib) = (inner(sm), inner(sa), inner(sb));
            for (j, o) in row_out.iter_mut().enumerate() {
                *o = if m[om + j * im] != 0.0 {
                    ad[oa + j * ia]
                } else {
                    bd[ob + j * ib]
                };
            }
        })?;
        Ok(Tensor::from_parts(out, shape))
    }

    /// `self += other` for tensors of one shape, in place unless another tensor shares
    /// `self`'s storage (then it is copied first, so no other tensor sees the change). The
    /// backward pass sums the gradients of a value used several times this way.
    pub fn add_assign(&mut self, other: &Tensor) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(Error::shape(
                "add_assign",
                &[self.shape(), other.shape()],
                "tensors of one shape",
            ));
        }
        add_into(self.data_mut(), other.data());
        Ok(())
    }

    /// `self[.., start..start + len, ..] += part` along `axis`, where `part` is `self`'s shape
    /// with `len` entries on that axis: the gradient of a narrowed piece summed into the
    /// whole's without padding it to the whole's shape first. In place as [`Tensor::add_assign`].
    pub fn add_to_slice(&mut self, axis: usize, start: usize, part: &Tensor) -> Result<()> {
        self.apply_to_slice("add_to_slice", axis, start, part, add_into)
    }

    /// `self[.., start..start + len, ..] = part` along `axis` (shapes as
    /// [`Tensor::add_to_slice`]): the pieces of a result written into the whole one by one, so
    /// that they and their join are never all held at once. In place as [`Tensor::add_assign`].
    pub fn copy_to_slice(&mut self, axis: usize, start: usize, part: &Tensor) -> Result<()> {
        self.apply_to_slice("copy_to_slice", axis, start, part, |d, s| {
            d.copy_from_slice(s)
        })
    }

    /// Applies `f(whole's run, part's run)` to each run of the slice of `self` that `part`
    /// covers (see [`Tensor::add_to_slice`]).
    fn apply_to_slice(
        &mut self,
        op: &'static str,
        axis: usize,
        start: usize,
        part: &Tensor,
        f: fn(&mut [f32], &[f32]),
    ) -> Result<()> {
        let (dims, pd) = (self.dims(), part.dims());
        let fits = axis < dims.len()
            && pd.len() == dims.len()
            && (0..dims.len()).all(|i| i == axis || pd[i] == dims[i])
            && start
                .checked_add(pd[axis])
                .is_some_and(|end| end <= dims[axis]);
        if !fits {
            return Err(Error::shape(
                op,
                &[self.shape(), part.shape()],
                format!(
                    "a part equal to the whole but on axis {axis}, placed from {start} inside it"
                ),
            ));
        }
        // Each of the `outer` blocks of the whole holds its run of the part at the same place.
        let inner: usize = dims[axis + 1..].iter().product();
        let (block, run) = (dims[axis] * inner, pd[axis] * inner);
        if run == 0 {
            return Ok(());
        }
        let whole = self.data_mut();
        for (dst, src) in whole.chunks_mut(block).zip(part.data().chunks(run)) {
            f(&mut dst[start * inner..][..run], src);
        }
        Ok(())
    }

    pub fn add(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "add", |a, b| a + b)
    }
    pub fn sub(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "sub", |a, b| a - b)
    }
    pub fn mul(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "mul", |a, b| a * b)
    }
    pub fn div(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "div", |a, b| a / b)
    }
    /// Elementwise maximum; NaN in either operand gives NaN.
    pub fn maximum(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(
            o,
            "maximum",
            |a, b| if a.is_nan() | (a >= b) { a } else { b },
        )
    }
    /// Elementwise minimum; NaN in either operand gives NaN.
    pub fn minimum(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(
            o,
            "minimum",
            |a, b| if a.is_nan() | (a <= b) { a } else { b },
        )
    }
    /// Mask (1.0 / 0.0) of `self > o`.
    pub fn gt(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "gt", |a, b| (a > b) as u8 as f32)
    }
    /// Mask of `self >= o`.
    pub fn ge(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "ge", |a, b| (a >= b) as u8 as f32)
    }
    /// Mask of `self < o`.
    pub fn lt(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "lt", |a, b| (a < b) as u8 as f32)
    }
    /// Mask of `self <= o`.
    pub fn le(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "le", |a, b| (a <= b) as u8 as f32)
    }
    /// Mask of `self == o`.
    pub fn eq_mask(&self, o: &Tensor) -> Result<Tensor> {
        self.zip_with(o, "eq", |a, b| (a == b) as u8 as f32)
    }

    pub fn neg(&self) -> Tensor {
        self.map(|x| -x)
    }
    pub fn exp(&self) -> Tensor {
        self.map(f32::exp)
    }
    pub fn log(&self) -> Tensor {
        self.map(f32::ln)
    }
    pub fn sqrt(&self) -> Tensor {
        self.map(f32::sqrt)
    }
    pub fn abs(&self) -> Tensor {
        self.map(f32::abs)
    }
    /// `x^p`; the common exponents take exact shortcuts (`powf` is many times slower than a
    /// multiply, and `square` sits in every batch norm).
    pub fn powf(&self, p: f32) -> Tensor {
        match p {
            1.0 => self.clone(),
            2.0 => self.map(|x| x * x),
            3.0 => self.map(|x| x * x * x),
            0.5 => self.map(f32::sqrt),
            -1.0 => self.map(|x| 1.0 / x),
            _ => self.map(move |x| x.powf(p)),
        }
    }
    /// `1 / (1 + e^-x)`, written so that neither branch overflows.
    pub fn sigmoid(&self) -> Tensor {
        self.map(sigmoid)
    }
    pub fn tanh(&self) -> Tensor {
        self.map(f32::tanh)
    }
    pub fn relu(&self) -> Tensor {
        self.map(|x| if x > 0.0 { x } else { 0.0 })
    }
    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.map(move |x| x + s)
    }
    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.map(move |x| x * s)
    }
}

/// `dst += src` elementwise (equal lengths), over rayon's threads when long.
fn add_into(dst: &mut [f32], src: &[f32]) {
    let add = |(d, s): (&mut [f32], &[f32])| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
    if dst.len() >= PAR_THRESHOLD {
        dst.par_chunks_mut(4096)
            .zip(src.par_chunks(4096))
            .for_each(add);
    } else {
        add((dst, src));
    }
}

/// The numerically stable logistic function.
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Merges adjacent axes that every operand steps through as one (`stride[i] = stride[i + 1] *
/// dims[i + 1]`, true of the contiguous output too) and drops axes of size 1, so that rows are as
/// long as the operands allow: adding a `[C, 1, 1]` bias to `[N, C, H, W]` runs over `[N, C, H*W]`
/// with rows of `H*W`, not `W`. Returns the new dims; `strides` are rewritten to match.
pub(crate) fn coalesce<const K: usize>(
    dims: &[usize],
    strides: &mut [Strides; K],
) -> SmallVec<[usize; 6]> {
    let mut out: SmallVec<[usize; 6]> = SmallVec::new();
    let mut kept: [Strides; K] = std::array::from_fn(|_| Strides::new());
    for (ax, &d) in dims.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let merge = out.last().is_some_and(|_| {
            strides
                .iter()
                .zip(&kept)
                .all(|(s, k)| *k.last().expect("kept in step with out") == s[ax] * d)
        });
        if merge {
            *out.last_mut().expect("checked") *= d;
            for (s, k) in strides.iter().zip(kept.iter_mut()) {
                *k.last_mut().expect("checked") = s[ax];
            }
        } else {
            out.push(d);
            for (s, k) in strides.iter().zip(kept.iter_mut()) {
                k.push(s[ax]);
            }
        }
    }
    *strides = kept;
    out
}

pub(crate) type Strides = SmallVec<[usize; 6]>;

/// Drives a broadcast kernel row by row over an output of `dims`. `kernel(row, offsets, inner)`
/// fills one output row; `offsets(strides)` is the operand's offset at the row start and
/// `inner(strides)` its stride along the last dimension. `dims` are those of a checked shape
/// (merged); the output, which may be larger than any operand, is allocated fallibly.
fn broadcast_rows<K>(op: &'static str, dims: &[usize], kernel: K) -> Result<Vec<f32>>
where
    K: Fn(&mut [f32], &dyn Fn(&[usize]) -> usize, &dyn Fn(&[usize]) -> usize) + Sync,
{
    let n: usize = dims.iter().product();
    // The kernels write every element of each row.
    let mut out = buffer_pool::try_for_overwrite(op, n)?;
    if n == 0 {
        return Ok(out);
    }
    let rank = dims.len();
    if rank == 0 {
        // A scalar result (or one whose axes all have size 1) is one row of one element, read
        // at offset 0 of every operand.
        kernel(&mut out, &|_| 0, &|_| 0);
        return Ok(out);
    }
    let inner_len = dims[rank - 1];
    let row = |r: usize, o: &mut [f32]| {
        let offsets = |strides: &[usize]| {
            let (mut rem, mut off) = (r, 0);
            for ax in (0..rank - 1).rev() {
                off += (rem % dims[ax]) * strides[ax];
                rem /= dims[ax];
            }
            off
        };
        let inner = |strides: &[usize]| strides[rank - 1];
        kernel(o, &offsets, &inner);
    };
    if inner_len == 0 {
        return Ok(out);
    }
    if n >= PAR_THRESHOLD {
        // Rows are grouped so each task has a few thousand elements of work.
        out.par_chunks_mut(inner_len)
            .enumerate()
            .with_min_len((4096 / inner_len).max(1))
            .for_each(|(r, o)| row(r, o));
    } else {
        out.chunks_mut(inner_len)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_add_matches_explicit_loops() {
        let a = Tensor::arange(0.0, 24.0, 1.0)
            .unwrap()
            .reshape([2, 3, 4])
            .unwrap();
        let b = Tensor::from_vec(vec![10.0, 20.0, 30.0], [3, 1]).unwrap();
        let c = a.add(&b).unwrap();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    let want = a.get(&[i, j, k]).unwrap() + b.get(&[j, 0]).unwrap();
                    assert_eq!(c.get(&[i, j, k]).unwrap(), want);
                }
            }
        }
        assert!(a.add(&Tensor::zeros([2, 4])).is_err());
    }

    #[test]
    fn sigmoid_is_finite_at_extremes() {
        let t = Tensor::from_slice(&[-100.0, 0.0, 100.0]).sigmoid();
        assert!(t.data()[0] > 0.0 && t.data()[0] < 1e-40);
        assert_eq!(t.data()[1], 0.5);
        assert_eq!(t.data()[2], 1.0);
    }

    #[test]
    fn where_broadcasts_three_ways() {
        let m = Tensor::from_vec(vec![1.0, 0.0], [2, 1]).unwrap();
        let r = Tensor::where_cond(&m, &Tensor::ones([1, 3]), &Tensor::scalar(-1.0)).unwrap();
        assert_eq!(r.to_vec(), vec![1.0, 1.0, 1.0, -1.0, -1.0, -1.0]);
    }
}

#[cfg(test)]
mod powf_tests {
    use super::*;

    #[test]
    fn shortcut_exponents_agree_with_powf() {
        let x = Tensor::from_slice(&[0.0, 0.3, 1.0, 2.5, 7.0]);
        for p in [1.0f32, 2.0, 3.0, 0.5, -1.0, 0.75] {
            let want = x.data().iter().map(|v| v.powf(p)).collect::<Vec<_>>();
            let got = x.powf(p);
            for (a, b) in got.data().iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0) || a == b,
                    "p = {p}: {a} vs {b}"
                );
            }
        }
    }
}
