//! `Shape`: the dimensions of a row-major tensor, and the rules that combine them (axes,
//! broadcasting, strides).

use crate::error::{Error, Result};
use smallvec::SmallVec;
use std::fmt;

/// Most f32 elements a tensor may hold: `isize::MAX` bytes.
pub const MAX_ELEMENTS: usize = isize::MAX as usize / std::mem::size_of::<f32>();

/// Dimensions of a tensor, outermost first. Rank 0 is a scalar with one element.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(SmallVec<[usize; 6]>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Self {
        Shape(SmallVec::from_slice(dims))
    }

    /// The rank-0 shape of a scalar.
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar). Panics if the product overflows `usize` (it never
    /// wraps); a tensor's shape always fits, see [`Shape::check_size`].
    pub fn numel(&self) -> usize {
        self.checked_numel().unwrap_or_else(|| {
            panic!("Shape::numel: shape {self} has more than usize::MAX elements")
        })
    }

    /// Number of elements, or `None` if the product overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        if self.0.contains(&0) {
            return Some(0);
        }
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// The element count of a tensor of this shape, or an error naming `op` if it could not
    /// exist: the product of its non-zero dimensions, in bytes of f32, must not exceed
    /// `isize::MAX` (Rust's bound on an allocation). Every product of some of the dimensions
    /// (strides, matrix sizes, plane sizes) then fits too, so kernels indexing a checked shape
    /// cannot overflow, even for a shape holding no element.
    pub fn check_size(&self, op: &'static str) -> Result<usize> {
        let fits = self
            .0
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_ELEMENTS);
        match fits {
            Some(_) => Ok(self.numel()),
            None => Err(Error::invalid(
                op,
                format!(
                    "a tensor of shape {self} would need more than isize::MAX bytes ({MAX_ELEMENTS} f32 elements)"
                ),
            )),
        }
    }

    /// Size of dimension `axis` (already normalised).
    pub fn dim(&self, axis: usize) -> usize {
        self.0[axis]
    }

    /// Row-major strides in elements. Panics if one overflows `usize` (never for the shape of
    /// a tensor, see [`Shape::check_size`]).
    pub fn strides(&self) -> SmallVec<[usize; 6]> {
        let mut s: SmallVec<[usize; 6]> = SmallVec::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1].checked_mul(self.0[i + 1]).unwrap_or_else(|| {
                panic!("Shape::strides: a stride of shape {self} overflows usize")
            });
        }
        s
    }

    /// Turns a possibly negative axis (`-1` is the last) into an index, or an [`Error::Axis`].
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::Axis {
                op,
                axis,
                shape: self.clone(),
                rank: self.rank(),
            });
        }
        Ok(a as usize)
    }

    /// Normalises a set of axes, rejecting duplicates; an empty list means every axis.
    pub fn axes(&self, op: &'static str, axes: &[isize]) -> Result<SmallVec<[usize; 6]>> {
        if axes.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        let mut out: SmallVec<[usize; 6]> = SmallVec::new();
        for &a in axes {
            let a2 = self.axis(op, a)?;
            if out.contains(&a2) {
                return Err(Error::invalid(
                    op,
                    format!("axis {a} is named twice in {axes:?} for shape {self}"),
                ));
            }
            out.push(a2);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// NumPy broadcasting of two shapes: align on the right; sizes must match or be 1.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        let r = a.rank().max(b.rank());
        let mut out: SmallVec<[usize; 6]> = SmallVec::from_elem(0, r);
        for i in 0..r {
            let da = if i + a.rank() >= r {
                a.0[i + a.rank() - r]
            } else {
                1
            };
            let db = if i + b.rank() >= r {
                b.0[i + b.rank() - r]
            } else {
                1
            };
            out[i] = if da == db || db == 1 {
                da
            } else if da == 1 {
                db
            } else {
                return Err(Error::shape(
                    op,
                    &[a, b],
                    format!(
                        "sizes to be equal or 1 in every aligned dimension (dimension {i} has {da} vs {db})"
                    ),
                ));
            };
        }
        let out = Shape(out);
        out.check_size(op)?;
        Ok(out)
    }

    /// Strides for reading a tensor of this shape as if it had shape `target` (which it must
    /// broadcast to): broadcast dimensions get stride 0.
    pub fn broadcast_strides(&self, target: &Shape) -> SmallVec<[usize; 6]> {
        let own = self.strides();
        let off = target.rank() - self.rank();
        (0..target.rank())
            .map(|i| {
                if i < off || self.0[i - off] == 1 {
                    0
                } else {
                    own[i - off]
                }
            })
            .collect()
    }

    /// The shape with `axes` removed (or set to 1 with `keepdim`).
    pub fn reduced(&self, axes: &[usize], keepdim: bool) -> Shape {
        let mut out = SmallVec::new();
        for (i, &d) in self.0.iter().enumerate() {
            if axes.contains(&i) {
                if keepdim {
                    out.push(1);
                }
            } else {
                out.push(d);
            }
        }
        Shape(out)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}
impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(d: &[usize; N]) -> Self {
        Shape::new(d)
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape::new(&d)
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let a = Shape::new(&[2, 3, 4]);
        let b = Shape::new(&[3, 1]);
        assert_eq!(Shape::broadcast("t", &a, &b).unwrap().dims(), &[2, 3, 4]);
        assert!(Shape::broadcast("t", &a, &Shape::new(&[2, 4])).is_err());
        assert_eq!(a.broadcast_strides(&a).as_slice(), &[12, 4, 1]);
        assert_eq!(b.broadcast_strides(&a).as_slice(), &[0, 1, 0]);
    }

    #[test]
    fn axes_normalise_and_reject_bad_ones() {
        let s = Shape::new(&[2, 3, 4]);
        assert_eq!(s.axis("t", -1).unwrap(), 2);
        assert!(s.axis("t", 3).is_err());
        assert!(s.axes("t", &[1, -2]).is_err());
        assert_eq!(s.axes("t", &[]).unwrap().as_slice(), &[0, 1, 2]);
    }
}
