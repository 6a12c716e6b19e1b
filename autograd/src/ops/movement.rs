//! Movement primitives: reshape, permute, broadcast_to, narrow, pad, concat (and stack, a
//! composition). Each one's adjoint is another movement: a narrow's gradient is a pad with zeros,
//! a pad's is a narrow, a broadcast's is a sum.

use crate::error::{Error, Result};
use crate::grads;
use crate::shape::Shape;
use crate::tape::{InputGrads, Reads, Var};
use crate::tensor::Tensor;

op!(RESHAPE = "reshape", "grad.reshape(self.shape)");
op!(PERMUTE = "permute", "grad.permute(inverse(perm))");
op!(BROADCAST_TO = "broadcast_to", "grad.sum_to(self.shape)");
op!(
    NARROW = "narrow",
    "grad.pad(start, size - start - len) with zeros"
);
op!(PAD = "pad", "grad.narrow(before, size) on each axis");
op!(
    CONCAT = "concat",
    "grad.narrow(offset_i, size_i) for each input i"
);

impl<'t> Var<'t> {
    /// The same values under another shape with the same element count.
    /// Rule: [`RESHAPE`].
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Var<'t>> {
        let shape = shape.into();
        if shape == self.shape() {
            return Ok(self);
        }
        let v = self.value().reshape(shape)?;
        self.tape()
            .record_reading(RESHAPE, &[self], v, Reads::NOTHING, |c| {
                Ok(grads![c.grad().reshape(c.input(0).shape())?])
            })
    }

    /// Reshape with one dimension given as `-1` and inferred.
    pub fn reshape_infer(self, dims: &[isize]) -> Result<Var<'t>> {
        let shape = crate::tensor::infer_shape(&self.shape(), dims)?;
        self.reshape(shape)
    }

    /// Flattens axes `start..` into one: `[N, C, H, W] -> [N, C*H*W]` for `start = 1`.
    pub fn flatten(self, start: usize) -> Result<Var<'t>> {
        let s = self.shape();
        if start > s.rank() {
            return Err(Error::Axis {
                op: "flatten",
                axis: start as isize,
                shape: s.clone(),
                rank: s.rank(),
            });
        }
        let mut dims = s.dims()[..start].to_vec();
        dims.push(s.dims()[start..].iter().product());
        self.reshape(dims)
    }

    /// Output axis `i` is input axis `perm[i]`. Rule: [`PERMUTE`].
    pub fn permute(self, perm: &[usize]) -> Result<Var<'t>> {
        let v = self.value().permute(perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        self.tape()
            .record_reading(PERMUTE, &[self], v, Reads::NOTHING, move |c| {
                Ok(grads![c.grad().permute(&inverse)?])
            })
    }

    /// Swaps two axes.
    pub fn transpose(self, a: isize, b: isize) -> Result<Var<'t>> {
        let s = self.shape();
        let (a, b) = (s.axis("transpose", a)?, s.axis("transpose", b)?);
        let mut perm: Vec<usize> = (0..s.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Expands size-1 and missing leading dimensions. Rule: [`BROADCAST_TO`].
    pub fn broadcast_to(self, shape: impl Into<Shape>) -> Result<Var<'t>> {
        let shape = shape.into();
        if shape == self.shape() {
            return Ok(self);
        }
        let v = self.value().broadcast_to(shape)?;
        self.tape()
            .record_reading(BROADCAST_TO, &[self], v, Reads::NOTHING, |c| {
                Ok(grads![c.grad().sum_to(&c.input(0).shape())?])
            })
    }

    /// `len` entries of `axis` from `start`. Rule: [`NARROW`].
    pub fn narrow(self, axis: isize, start: usize, len: usize) -> Result<Var<'t>> {
        let v = self.value().narrow(axis, start, len)?;
        let a = self.shape().axis("narrow", axis)?;
        let size = self.shape().dim(a);
        let part = self
            .tape()
            .record_reading(NARROW, &[self], v, Reads::NOTHING, move |c| {
                if c.send_to_slice(0, a, start, c.grad()) {
                    return Ok(grads![None::<Var>]);
                }
                let mut pads = vec![(0, 0); a + 1];
                pads[a] = (start, size - start - len);
                let rank = c.input(0).rank();
                pads.extend(std::iter::repeat_n((0, 0), rank - a - 1));
                Ok(grads![c.grad().pad(&pads, 0.0)?])
            })?;
        Ok(part.recomputable(move |x| x[0].narrow(a as isize, start, len)))
    }

    /// Pads each axis (the last `pads.len()` axes) with `(before, after)` copies of `value`.
    /// Rule: [`PAD`] on each axis.
    pub fn pad(self, pads: &[(usize, usize)], value: f32) -> Result<Var<'t>> {
        let v = self.value().pad(pads, value)?;
        let pads = pads.to_vec();
        self.tape()
            .record_reading(PAD, &[self], v, Reads::NOTHING, move |c| {
                let x = c.input(0).shape();
                let off = x.rank() - pads.len();
                let mut g = c.grad();
                for (i, &(before, _)) in pads.iter().enumerate() {
                    g = g.narrow((off + i) as isize, before, x.dim(off + i))?;
                }
                Ok(grads![g])
            })
    }

    /// Joins vars along an existing axis. Rule: [`CONCAT`] for
    /// each input.
    pub fn concat(parts: &[Var<'t>], axis: isize) -> Result<Var<'t>> {
        let first = *parts
            .first()
            .ok_or_else(|| Error::invalid("concat", "needs at least one var"))?;
        let values: Vec<Tensor> = parts.iter().map(|p| p.value()).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let v = Tensor::concat(&refs, axis)?;
        let a = first.shape().axis("concat", axis)?;
        first
            .tape()
            .record_reading(CONCAT, parts, v, Reads::NOTHING, move |c| {
                let mut out = InputGrads::new();
                let mut offset = 0;
                for i in 0..c.inputs.len() {
                    let n = c.input(i).shape().dim(a);
                    out.push(Some(c.grad().narrow(a as isize, offset, n)?));
                    offset += n;
                }
                Ok(out)
            })
    }

    /// Joins equally shaped vars along a new axis (a reshape of each, then concat).
    pub fn stack(parts: &[Var<'t>], axis: isize) -> Result<Var<'t>> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("stack", "needs at least one var"))?;
        // `record`'s check, under this composition's name (concat would name itself).
        first.tape().check_own("stack", parts)?;
        let (shape, a) = first.value().unsqueeze_shape("stack", axis)?;
        let mut views = Vec::with_capacity(parts.len());
        for p in parts {
            if p.shape() != first.shape() {
                return Err(Error::shape(
                    "stack",
                    &[&first.shape(), &p.shape()],
                    "equal shapes",
                ));
            }
            views.push(p.reshape(shape.clone())?);
        }
        Var::concat(&views, a as isize)
    }

    /// Adds a size-1 axis at `axis`.
    pub fn unsqueeze(self, axis: isize) -> Result<Var<'t>> {
        let (shape, _) = self.value().unsqueeze_shape("unsqueeze", axis)?;
        self.reshape(shape)
    }
}
