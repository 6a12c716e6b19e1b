//! Max pooling's fused kernels: the value and the input gradient of the composition `unfold ->
//! max over each window` (see `ops/pool.rs`), computed plane by plane without the unfolded
//! windows, which hold every input cell once per window covering it (nine times over for
//! GoogLeNet's 3x3 stride-1 pools).
//!
//! Both give the composition's bits. The maximum scans a window's cells in unfold's row order,
//! with the `max` reduction's comparison (NaN wins), padding reading -inf. The gradient sends
//! each window's gradient to the cells equal to its maximum, split evenly (the `max` rule's
//! `g * (hit / count)`, a padding cell counting when the maximum is -inf), and adds the terms
//! into each cell in `fold`'s order: kernel offset, then window row, then window column.

use super::buffer_pool::{self, Storage};
use super::unfold::{check_nchw, Window2d};
use super::{Tensor, PAR_THRESHOLD};
use crate::error::{Error, Result};
use crate::shape::Shape;
use rayon::prelude::*;

impl Tensor {
    /// The maximum of each window of each `[H, W]` plane of an `[N, C, H, W]` tensor, as
    /// `[N, C, oh, ow]`; cells outside the input read -inf.
    pub(crate) fn max_pool2d(&self, w: &Window2d) -> Result<Tensor> {
        let (n, c) = planes("max_pool2d", self, w)?;
        let shape = Shape::new(&[n, c, w.output.0, w.output.1]);
        // Each plane is filled with -inf by its own task below, while it is in cache.
        let mut out =
            buffer_pool::try_for_overwrite("max_pool2d", shape.check_size("max_pool2d")?)?;
        let (hw, l) = (w.input.0 * w.input.1, w.positions());
        if out.is_empty() || hw == 0 {
            out.fill(f32::NEG_INFINITY);
            return Ok(Tensor::from_parts(out, shape));
        }
        let plane = |(dst, src): (&mut [f32], &[f32])| {
            dst.fill(f32::NEG_INFINITY);
            max_plane(src, dst, w)
        };
        if self.numel() >= PAR_THRESHOLD {
            out.par_chunks_mut(l)
                .zip(self.data().par_chunks(hw))
                .try_for_each(plane)?;
        } else {
            out.chunks_mut(l)
                .zip(self.data().chunks(hw))
                .try_for_each(plane)?;
        }
        Ok(Tensor::from_parts(out, shape))
    }

    /// The gradient of [`Tensor::max_pool2d`] with respect to its input `self`, given the pooled
    /// maxima `max` and their gradient `grad` (both `[N, C, oh, ow]`).
    pub(crate) fn max_pool2d_grad(
        &self,
        max: &Tensor,
        grad: &Tensor,
        w: &Window2d,
    ) -> Result<Tensor> {
        let (n, c) = planes("max_pool2d_grad", self, w)?;
        let pooled = Shape::new(&[n, c, w.output.0, w.output.1]);
        if max.shape() != &pooled || grad.shape() != &pooled {
            return Err(Error::shape(
                "max_pool2d_grad",
                &[self.shape(), max.shape(), grad.shape()],
                format!("the maxima and their gradient shaped {pooled}"),
            ));
        }
        // Each plane is zeroed by its own task below, while it is in cache.
        let mut out = buffer_pool::try_for_overwrite("max_pool2d_grad", self.numel())?;
        let (hw, l) = (w.input.0 * w.input.1, w.positions());
        if out.is_empty() || l == 0 {
            out.fill(0.0);
            return Ok(Tensor::from_parts(out, self.shape().clone()));
        }
        let (x, m, g) = (self.data(), max.data(), grad.data());
        let plane = |(p, dst): (usize, &mut [f32])| {
            dst.fill(0.0);
            let pooled = p * l..(p + 1) * l;
            grad_plane(&x[p * hw..][..hw], &m[pooled.clone()], &g[pooled], dst, w)
        };
        if self.numel() >= PAR_THRESHOLD {
            out.par_chunks_mut(hw).enumerate().try_for_each(plane)?;
        } else {
            out.chunks_mut(hw).enumerate().try_for_each(plane)?;
        }
        Ok(Tensor::from_parts(out, self.shape().clone()))
    }
}

/// Batch and channels of an `[N, C, H, W]` tensor whose planes `w` (checked) was built for.
fn planes(op: &'static str, t: &Tensor, w: &Window2d) -> Result<(usize, usize)> {
    w.validate(op)?;
    check_nchw(op, t, w)
}

/// For every kernel offset `(ki, kj)` and window row whose input row at `ki` is inside the
/// input, the run of window positions whose cells at that offset are inside too, in unfold's
/// order: `f(first position, cell, count)`, the cells of a run being `count` consecutive
/// values of the plane's [`Phases`] from `cell`.
fn runs(w: &Window2d, mut f: impl FnMut(usize, usize, usize)) {
    let h = w.input.0;
    let (oh, ow) = w.output;
    let layout = Phases::layout(w);
    for ki in 0..w.kernel.0 {
        for kj in 0..w.kernel.1 {
            let (lo, hi) = w.columns(kj);
            if lo == hi {
                continue;
            }
            let column = lo * w.stride.1 + kj * w.dilation.1 - w.padding.1;
            for oi in 0..oh {
                if let Some(i) = Window2d::source(oi, ki, w.stride.0, w.padding.0, w.dilation.0, h)
                {
                    f(oi * ow + lo, layout.at(i, column), hi - lo);
                }
            }
        }
    }
}

/// A plane with its columns grouped by their remainder modulo the column stride (the phases):
/// the cells a window row reads at one kernel offset, `stride` columns apart, are then
/// consecutive, and the loops over them vectorise. With stride 1 it is the plane itself.
#[derive(Clone, Copy)]
struct Phases {
    rows: usize,
    width: usize,
    stride: usize,
    /// Columns of each phase (the first's, which has the most).
    per_phase: usize,
}

impl Phases {
    fn layout(w: &Window2d) -> Phases {
        let (rows, width) = w.input;
        let stride = w.stride.1;
        Phases {
            rows,
            width,
            stride,
            per_phase: width.div_ceil(stride),
        }
    }

    /// Where input cell `(i, j)` sits.
    fn at(&self, i: usize, j: usize) -> usize {
        if self.stride == 1 {
            return i * self.width + j;
        }
        ((j % self.stride) * self.rows + i) * self.per_phase + j / self.stride
    }

    /// Room for a plane in this layout: the non-empty phases (a stride wider than the plane
    /// leaves one column per phase), under twice the plane's size.
    fn len(&self) -> usize {
        self.stride.min(self.width) * self.rows * self.per_phase
    }

    /// The runs of cells of one phase of one row: `f(plane row slice start, layout start,
    /// count)`, the plane's cells `stride` apart from the start.
    fn rows(&self, mut f: impl FnMut(usize, usize, usize)) {
        for p in 0..self.stride.min(self.width) {
            let count = (self.width - p).div_ceil(self.stride);
            for i in 0..self.rows {
                f(
                    i * self.width + p,
                    (p * self.rows + i) * self.per_phase,
                    count,
                );
            }
        }
    }

    /// `plane` in this layout (itself when the stride is 1).
    fn of<'a>(&self, plane: &'a [f32]) -> Result<Laid<'a>> {
        if self.stride == 1 {
            return Ok(Laid::Plane(plane));
        }
        // Slots past a short phase's end are never read.
        let mut out = scratch(self.len())?;
        self.rows(|from, to, n| {
            let cells = plane[from..].iter().step_by(self.stride);
            out[to..to + n]
                .iter_mut()
                .zip(cells)
                .for_each(|(o, &v)| *o = v);
        });
        Ok(Laid::Copy(out))
    }

    /// Writes `laid` (in this layout) back into `plane`.
    fn put(&self, laid: &[f32], plane: &mut [f32]) {
        self.rows(|to, from, n| {
            let cells = plane[to..].iter_mut().step_by(self.stride);
            cells.zip(&laid[from..from + n]).for_each(|(o, &v)| *o = v);
        });
    }
}

/// A plane in its [`Phases`] layout: the plane itself, or a copy.
enum Laid<'a> {
    Plane(&'a [f32]),
    Copy(Storage),
}

impl std::ops::Deref for Laid<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Laid::Plane(p) => p,
            Laid::Copy(c) => c,
        }
    }
}

/// Per-plane working storage from the pool: a 224 x 224 plane is 200 KB, which the allocator
/// would map afresh (and the kernel zero) for every plane.
fn scratch(len: usize) -> Result<Storage> {
    Ok(Storage::new(buffer_pool::try_for_overwrite(
        "max_pool2d",
        len,
    )?))
}

/// The maxima of one plane into `dst` (filled with -inf): the cells of every window in unfold's
/// order, a padding cell (-inf) never replacing the running maximum.
fn max_plane(src: &[f32], dst: &mut [f32], w: &Window2d) -> Result<()> {
    let src = Phases::layout(w).of(src)?;
    runs(w, |at, cell, len| {
        let out = dst[at..at + len].iter_mut().zip(&src[cell..cell + len]);
        out.for_each(|(d, &s)| *d = if (s > *d) | s.is_nan() { s } else { *d });
    });
    Ok(())
}

/// The input gradient of one plane into `dst` (zeroed), from its maxima `max` and their
/// gradient `grad`.
fn grad_plane(src: &[f32], max: &[f32], grad: &[f32], dst: &mut [f32], w: &Window2d) -> Result<()> {
    let layout = Phases::layout(w);
    let src = layout.of(src)?;
    // Cells equal to each window's maximum, and cells inside the input.
    let (mut count, mut inside) = (counters(max.len())?, counters(max.len())?);
    runs(w, |at, cell, len| {
        let hits = count[at..at + len].iter_mut().zip(&max[at..at + len]);
        hits.zip(&src[cell..cell + len])
            .for_each(|((c, &m), &s)| *c += (s == m) as u32);
        inside[at..at + len].iter_mut().for_each(|n| *n += 1);
    });
    // Padding cells read -inf: they hold the maximum of a window whose maximum is -inf.
    let all = w.cells() as u32;
    for ((c, &m), &n) in count.iter_mut().zip(max).zip(&inside) {
        if m == f32::NEG_INFINITY {
            *c += all - n;
        }
    }
    // Summed in the layout (each cell's terms in the same order), then put in place.
    let mut sums = scratch(if layout.stride == 1 { 0 } else { layout.len() })?;
    sums.fill(0.0);
    let out: &mut [f32] = if layout.stride == 1 { dst } else { &mut sums };
    runs(w, |at, cell, len| {
        let windows = max[at..at + len]
            .iter()
            .zip(&grad[at..at + len])
            .zip(&count[at..at + len]);
        let cells = out[cell..cell + len].iter_mut().zip(&src[cell..cell + len]);
        cells.zip(windows).for_each(|((d, &s), ((&m, &g), &c))| {
            *d += g * ((s == m) as u8 as f32 / c as f32);
        });
    });
    if layout.stride > 1 {
        layout.put(&sums, dst);
    }
    Ok(())
}

/// `len` zero counters, or an error if they cannot be allocated.
fn counters(len: usize) -> Result<Vec<u32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        op: "max_pool2d",
        bytes: len.saturating_mul(4),
    })?;
    v.resize(len, 0);
    Ok(v)
}
