//! Movement kernels: reshape, permute, broadcast_to, narrow, pad, concat and stack.
//!
//! Storage is always contiguous, so a reshape shares storage and every other movement is one
//! strided copy (`strided_copy`): permute reads through permuted strides, broadcast_to through
//! zero strides, narrow through an offset.

use super::elementwise::{coalesce, Strides};
use super::{buffer_pool, Tensor, PAR_THRESHOLD};
use crate::error::{Error, Result};
use crate::shape::Shape;
use rayon::prelude::*;

impl Tensor {
    /// The same data under another shape with the same element count (no copy). One dimension
    /// may be given as `usize::MAX` to be inferred... use [`Tensor::reshape_infer`] for `-1`.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_numel() != Some(self.numel()) {
            return Err(Error::shape(
                "reshape",
                &[self.shape(), &shape],
                format!("a shape holding {} elements", self.numel()),
            ));
        }
        shape.check_size("reshape")?;
        Ok(self.reshape_unchecked(shape))
    }

    /// Reshape where one dimension may be `-1`, inferred from the others (as `torch.reshape`).
    pub fn reshape_infer(&self, dims: &[isize]) -> Result<Tensor> {
        Ok(self.reshape_unchecked(infer_shape(self.shape(), dims)?))
    }

    pub(crate) fn reshape_unchecked(&self, shape: Shape) -> Tensor {
        debug_assert_eq!(shape.numel(), self.numel());
        Tensor {
            data: self.data.clone(),
            shape,
        }
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        check_perm(self.shape(), perm)?;
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let strides = self.shape().strides();
        let src: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
        let shape = Shape::new(&perm.iter().map(|&p| self.dims()[p]).collect::<Vec<_>>());
        strided_copy("permute", self.data(), 0, &src, shape)
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Expands size-1 (and missing leading) dimensions to `shape`, NumPy style.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        let b = Shape::broadcast("broadcast_to", self.shape(), &shape)?;
        if b != shape {
            return Err(Error::shape(
                "broadcast_to",
                &[self.shape(), &shape],
                "a target every source dimension equals or that source dimension to be 1",
            ));
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let src = self.shape().broadcast_strides(&shape);
        strided_copy("broadcast_to", self.data(), 0, &src, shape)
    }

    /// `len` entries of `axis` starting at `start` (as `torch.narrow`).
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.shape().axis("narrow", axis)?;
        let n = self.dims()[a];
        if start.checked_add(len).is_none_or(|e| e > n) {
            return Err(Error::invalid(
                "narrow",
                format!(
                    "range {start}..{} is outside axis {a} of size {n} (shape {})",
                    start.saturating_add(len),
                    self.shape()
                ),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[a] = len;
        let strides = self.shape().strides();
        strided_copy(
            "narrow",
            self.data(),
            start * strides[a],
            &strides,
            Shape::new(&dims),
        )
    }

    /// Pads each axis with `pads[axis] = (before, after)` copies of `value`; `pads` may be shorter
    /// than the rank, in which case it applies to the last axes.
    pub fn pad(&self, pads: &[(usize, usize)], value: f32) -> Result<Tensor> {
        if pads.len() > self.rank() {
            return Err(Error::invalid(
                "pad",
                format!(
                    "{} (before, after) pairs given for a tensor of rank {} (shape {})",
                    pads.len(),
                    self.rank(),
                    self.shape()
                ),
            ));
        }
        if self.rank() == 0 {
            // A scalar has no axis to pad.
            return Ok(self.clone());
        }
        let off = self.rank() - pads.len();
        let pad_of = |i: usize| if i < off { (0, 0) } else { pads[i - off] };
        let too_big = || {
            Error::invalid(
                "pad",
                format!(
                    "padding {pads:?} of shape {} overflows the size of a tensor",
                    self.shape()
                ),
            )
        };
        let dims = (0..self.rank())
            .map(|i| {
                self.dims()[i]
                    .checked_add(pad_of(i).0)
                    .and_then(|d| d.checked_add(pad_of(i).1))
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(too_big)?;
        let shape = Shape::new(&dims);
        shape.check_size("pad")?;
        // From the pool: conv's batch pieces pad their input gradients every backward.
        let mut out = buffer_pool::try_full("pad", shape.numel(), value)?;
        if self.numel() == 0 {
            return Ok(Tensor::from_parts(out, shape));
        }
        let ostr = shape.strides();
        let rank = self.rank();
        let inner = self.dims()[rank - 1];
        let src = self.data();
        for (r, row) in src.chunks(inner).enumerate() {
            let (mut rem, mut o) = (r, pad_of(rank - 1).0);
            for ax in (0..rank - 1).rev() {
                o += (rem % self.dims()[ax] + pad_of(ax).0) * ostr[ax];
                rem /= self.dims()[ax];
            }
            out[o..o + inner].copy_from_slice(row);
        }
        Ok(Tensor::from_parts(out, shape))
    }

    /// Joins tensors along an existing axis; every other dimension must agree.
    pub fn concat(parts: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("concat", "needs at least one tensor"))?;
        let a = first.shape().axis("concat", axis)?;
        for p in parts {
            let ok = p.rank() == first.rank()
                && (0..first.rank()).all(|i| i == a || p.dims()[i] == first.dims()[i]);
            if !ok {
                return Err(Error::shape(
                    "concat",
                    &[first.shape(), p.shape()],
                    format!("equal ranks and sizes in every dimension but {a}"),
                ));
            }
        }
        let outer: usize = first.dims()[..a].iter().product();
        let inner: usize = first.dims()[a + 1..].iter().product();
        let total = parts
            .iter()
            .try_fold(0usize, |acc, p| acc.checked_add(p.dims()[a]));
        let mut dims = first.dims().to_vec();
        dims[a] = total.unwrap_or(usize::MAX);
        let shape = Shape::new(&dims);
        let n = shape.check_size("concat")?;
        // Every element is written below: the parts fill the result.
        let mut out = buffer_pool::try_for_overwrite("concat", n)?;
        let mut at = 0;
        for o in 0..outer {
            for p in parts {
                let block = p.dims()[a] * inner;
                out[at..at + block].copy_from_slice(&p.data()[o * block..(o + 1) * block]);
                at += block;
            }
        }
        Ok(Tensor::from_parts(out, shape))
    }

    /// Joins equally shaped tensors along a new axis.
    pub fn stack(parts: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?;
        let expanded = first.unsqueeze_shape("stack", axis)?;
        let mut views = Vec::with_capacity(parts.len());
        for p in parts {
            if p.shape() != first.shape() {
                return Err(Error::shape(
                    "stack",
                    &[first.shape(), p.shape()],
                    "equal shapes",
                ));
            }
            views.push(p.reshape_unchecked(expanded.0.clone()));
        }
        let refs: Vec<&Tensor> = views.iter().collect();
        Tensor::concat(&refs, expanded.1 as isize)
    }

    /// The shape with a new size-1 axis at `axis` (which may be `rank` or negative), and the
    /// normalised axis.
    pub(crate) fn unsqueeze_shape(&self, op: &'static str, axis: isize) -> Result<(Shape, usize)> {
        let r = self.rank() as isize + 1;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::Axis {
                op,
                axis,
                shape: self.shape().clone(),
                rank: self.rank(),
            });
        }
        let mut dims = self.dims().to_vec();
        dims.insert(a as usize, 1);
        Ok((Shape::new(&dims), a as usize))
    }
}

/// Resolves a `-1` in a requested shape.
pub(crate) fn infer_shape(from: &Shape, dims: &[isize]) -> Result<Shape> {
    let bad = || {
        Error::invalid(
            "reshape",
            format!(
                "cannot view shape {from} ({} elements) as {dims:?}",
                from.numel()
            ),
        )
    };
    let known = dims
        .iter()
        .filter(|&&d| d >= 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(bad)?;
    let holes = dims.iter().filter(|&&d| d == -1).count();
    if holes > 1 || dims.iter().any(|&d| d < -1) {
        return Err(bad());
    }
    let out: Vec<usize> = if holes == 1 {
        if known == 0 || !from.numel().is_multiple_of(known) {
            return Err(bad());
        }
        dims.iter()
            .map(|&d| {
                if d == -1 {
                    from.numel() / known
                } else {
                    d as usize
                }
            })
            .collect()
    } else {
        dims.iter().map(|&d| d as usize).collect()
    };
    let s = Shape::new(&out);
    if s.checked_numel() != Some(from.numel()) {
        return Err(bad());
    }
    s.check_size("reshape")?;
    Ok(s)
}

pub(crate) fn check_perm(shape: &Shape, perm: &[usize]) -> Result<()> {
    let mut seen = vec![false; shape.rank()];
    let ok = perm.len() == shape.rank()
        && perm
            .iter()
            .all(|&p| p < shape.rank() && !std::mem::replace(&mut seen[p], true));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "permute",
            format!(
                "{perm:?} is not a permutation of the {} axes of shape {shape}",
                shape.rank()
            ),
        ))
    }
}

/// Copies `src` read at `offset + sum(index[i] * strides[i])` into a contiguous tensor of `shape`.
///
/// The caller guarantees that every index read lies inside `src` (slices check it anyway).
pub(crate) fn strided_copy(
    op: &'static str,
    src: &[f32],
    offset: usize,
    strides: &[usize],
    shape: Shape,
) -> Result<Tensor> {
    let n = shape.check_size(op)?;
    // Every row below is written whole.
    let mut out = buffer_pool::try_for_overwrite(op, n)?;
    if n == 0 {
        return Ok(Tensor::from_parts(out, shape));
    }
    // Axes read as one run are merged, so rows are as long as the layout allows.
    let mut strides = [Strides::from_slice(strides)];
    let dims = coalesce(shape.dims(), &mut strides);
    let [strides] = strides;
    let rank = dims.len();
    if rank == 0 {
        out[0] = src[offset];
        return Ok(Tensor::from_parts(out, shape));
    }
    let inner = dims[rank - 1];
    let step = strides[rank - 1];
    // Where item `i` of the leading `lead` axes (a row, or a plane) starts in `src`.
    let start = |i: usize, lead: usize| {
        let (mut rem, mut base) = (i, offset);
        for ax in (0..lead).rev() {
            base += (rem % dims[ax]) * strides[ax];
            rem /= dims[ax];
        }
        base
    };
    if rank >= 2 && strides[rank - 2] == 1 && step > 1 && dims[rank - 2] > 1 {
        // A transposition of the last two axes: reading along each output row would touch a
        // new cache line per element, so planes are copied in square tiles instead.
        let rows = dims[rank - 2];
        let tiles = |base: usize, r0: usize, o: &mut [f32]| {
            transpose_tiles(&src[base..], step, r0, inner, o)
        };
        if n >= PAR_THRESHOLD {
            out.par_chunks_mut(rows * inner)
                .enumerate()
                .for_each(|(p, plane)| {
                    let base = start(p, rank - 2);
                    plane
                        .par_chunks_mut(TILE * inner)
                        .enumerate()
                        .for_each(|(b, o)| tiles(base, b * TILE, o));
                });
        } else {
            for (p, plane) in out.chunks_mut(rows * inner).enumerate() {
                let base = start(p, rank - 2);
                for (b, o) in plane.chunks_mut(TILE * inner).enumerate() {
                    tiles(base, b * TILE, o);
                }
            }
        }
        return Ok(Tensor::from_parts(out, shape));
    }
    let row = |r: usize, o: &mut [f32]| {
        let base = start(r, rank - 1);
        if step == 1 {
            o.copy_from_slice(&src[base..base + inner]);
        } else if step == 0 {
            o.fill(src[base]);
        } else {
            for (j, v) in o.iter_mut().enumerate() {
                *v = src[base + j * step];
            }
        }
    };
    if n >= PAR_THRESHOLD {
        // Rows are grouped so each task has a few thousand elements of work.
        out.par_chunks_mut(inner)
            .enumerate()
            .with_min_len((4096 / inner).max(1))
            .for_each(|(r, o)| row(r, o));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    }
    Ok(Tensor::from_parts(out, shape))
}

/// Side of the square tiles a transposition copies: 16 x 16 values read 16 cache lines and
/// write 16.
const TILE: usize = 16;

/// Rows `r0..` of a transposed plane, `o` holding whole rows of `cols` values: `o[r][c] =
/// src[(r0 + r) + c * step]`.
fn transpose_tiles(src: &[f32], step: usize, r0: usize, cols: usize, o: &mut [f32]) {
    let rows = o.len() / cols;
    for c0 in (0..cols).step_by(TILE) {
        let c1 = (c0 + TILE).min(cols);
        for r in 0..rows {
            let from = r0 + r;
            for (c, v) in (c0..c1).zip(&mut o[r * cols + c0..r * cols + c1]) {
                *v = src[from + c * step];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t234() -> Tensor {
        Tensor::arange(0.0, 24.0, 1.0)
            .unwrap()
            .reshape([2, 3, 4])
            .unwrap()
    }

    #[test]
    fn permute_moves_elements() {
        let t = t234();
        let p = t.permute(&[2, 0, 1]).unwrap();
        assert_eq!(p.dims(), &[4, 2, 3]);
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    assert_eq!(p.get(&[k, i, j]).unwrap(), t.get(&[i, j, k]).unwrap());
                }
            }
        }
        assert!(t.permute(&[0, 0, 1]).is_err());
    }

    #[test]
    fn narrow_pad_concat_stack() {
        let t = t234();
        let n = t.narrow(1, 1, 2).unwrap();
        assert_eq!(n.dims(), &[2, 2, 4]);
        assert_eq!(n.get(&[1, 0, 3]).unwrap(), t.get(&[1, 1, 3]).unwrap());
        assert!(t.narrow(1, 2, 2).is_err());
        let p = t.pad(&[(1, 0), (0, 2)], -1.0).unwrap();
        assert_eq!(p.dims(), &[2, 4, 6]);
        assert_eq!(p.get(&[1, 0, 0]).unwrap(), -1.0);
        assert_eq!(p.get(&[1, 1, 0]).unwrap(), t.get(&[1, 0, 0]).unwrap());
        let c = Tensor::concat(&[&t, &n], 1).unwrap();
        assert_eq!(c.dims(), &[2, 5, 4]);
        assert_eq!(c.get(&[1, 4, 2]).unwrap(), n.get(&[1, 1, 2]).unwrap());
        let s = Tensor::stack(&[&t, &t], 0).unwrap();
        assert_eq!(s.dims(), &[2, 2, 3, 4]);
        assert!(Tensor::concat(&[&t, &Tensor::zeros([2, 3])], 0).is_err());
    }

    #[test]
    fn reshape_infers_minus_one() {
        let t = t234();
        assert_eq!(t.reshape_infer(&[-1, 4]).unwrap().dims(), &[6, 4]);
        assert!(t.reshape_infer(&[-1, 5]).is_err());
        assert!(t.reshape([5, 5]).is_err());
        assert_eq!(
            Tensor::from_slice(&[1.0, 2.0])
                .broadcast_to([2, 2])
                .unwrap()
                .to_vec(),
            vec![1.0, 2.0, 1.0, 2.0]
        );
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    #[test]
    fn huge_padding_is_an_error_not_an_overflow() {
        let t = Tensor::ones([2, 2]);
        assert!(t.pad(&[(usize::MAX, 1)], 0.0).is_err());
        assert!(t.pad(&[(1 << 40, 0), (1 << 40, 0)], 0.0).is_err());
    }
}
