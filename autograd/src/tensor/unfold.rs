//! im2col (`unfold`) and col2im (`fold`) kernels for 2-d sliding windows over NCHW data.
//!
//! `unfold` turns `[N, C, H, W]` into `[N, C*kh*kw, L]` (PyTorch's `F.unfold` layout, `L` the
//! number of window positions): row `(c*kh + i)*kw + j` holds, for every position, the input at
//! kernel offset `(i, j)` of channel `c`. Cells outside the input (padding, or a ceil-mode window
//! hanging over the edge) read `pad_value`. `fold` is its adjoint: it scatters each column
//! entry back to its input cell, summing where windows overlap, and drops what fell on padding.
//!
//! Each (sample, channel) plane is independent, so both run in parallel over planes.

use super::{buffer_pool, Tensor, PAR_THRESHOLD};
use crate::error::{Error, Result};
use crate::shape::Shape;
use rayon::prelude::*;

/// Geometry of 2-d sliding windows: window `(oi, oj)` covers input rows
/// `oi*stride.0 - padding.0 + i*dilation.0` for `i < kernel.0`, and likewise for columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    /// Cells of padding before the first row and column.
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    /// Height and width of the (unpadded) input.
    pub input: (usize, usize),
    /// Number of window positions down and across.
    pub output: (usize, usize),
}

impl Window2d {
    /// The windows of a convolution: `floor((H + 2p - d(k-1) - 1) / s) + 1` positions each way.
    /// Fails on a zero kernel, stride or dilation, or a kernel larger than the padded input.
    pub fn conv(
        op: &'static str,
        input: (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
    ) -> Result<Window2d> {
        Self::build(op, input, kernel, stride, padding, dilation, false)
    }

    /// The windows of a pooling layer, with PyTorch's output size: with `ceil_mode` the last
    /// partial window counts, unless it would start beyond the input and its left padding.
    /// Padding may be at most half the kernel.
    pub fn pool(
        op: &'static str,
        input: (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        ceil_mode: bool,
    ) -> Result<Window2d> {
        // `p > k / 2` is `2 p > k` without the overflow of `2 p`.
        if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
            return Err(Error::invalid(
                op,
                format!("padding {padding:?} must be at most half the kernel {kernel:?}"),
            ));
        }
        Self::build(op, input, kernel, stride, padding, dilation, ceil_mode)
    }

    fn build(
        op: &'static str,
        input: (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        ceil_mode: bool,
    ) -> Result<Window2d> {
        for (what, v) in [
            ("kernel", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if v.0 == 0 || v.1 == 0 {
                return Err(Error::invalid(op, format!("{what} {v:?} must be positive")));
            }
        }
        let too_big = || {
            Error::invalid(
                op,
                format!(
                    "input {input:?} with kernel {kernel:?}, stride {stride:?}, padding {padding:?} and dilation {dilation:?} overflows the size of a tensor"
                ),
            )
        };
        let out = |i: usize, k: usize, s: usize, p: usize, d: usize| -> Result<usize> {
            let padded = p
                .checked_mul(2)
                .and_then(|p2| i.checked_add(p2))
                .ok_or_else(too_big)?;
            let span = d
                .checked_mul(k - 1)
                .and_then(|x| x.checked_add(1))
                .ok_or_else(too_big)?;
            if padded < span {
                return Err(Error::invalid(
                    op,
                    format!(
                        "kernel {kernel:?} with dilation {dilation:?} spans {span} cells, more than the padded input ({padded} with padding {p})"
                    ),
                ));
            }
            // `floor((x + s - 1) / s)` is `ceil(x / s)`, without the overflow of `x + s`.
            let free = padded - span;
            let mut o = if ceil_mode {
                free.div_ceil(s)
            } else {
                free / s
            } + 1;
            // In u128, where neither side can overflow: `o - 1 < 2^64` and `s < 2^64`.
            if ceil_mode && (o as u128 - 1) * s as u128 >= i as u128 + p as u128 {
                o -= 1;
            }
            // The kernels compute padded positions up to `(o - 1) s + (k - 1) d`: it must fit.
            (o - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(span - 1))
                .ok_or_else(too_big)?;
            Ok(o)
        };
        let output = (
            out(input.0, kernel.0, stride.0, padding.0, dilation.0)?,
            out(input.1, kernel.1, stride.1, padding.1, dilation.1)?,
        );
        // `positions` and `cells` are then products that fit.
        output.0.checked_mul(output.1).ok_or_else(too_big)?;
        kernel.0.checked_mul(kernel.1).ok_or_else(too_big)?;
        Ok(Window2d {
            kernel,
            stride,
            padding,
            dilation,
            input,
            output,
        })
    }

    /// Checks a window built by hand (its fields are public): it must be what [`Window2d::conv`]
    /// or a ceil-mode pooling window computes from its own kernel, stride, padding, dilation and
    /// input, so that the kernels' indices stay inside the input and the columns.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let args = (
            self.input,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
        );
        let matches = |ceil: bool| {
            Self::build(op, args.0, args.1, args.2, args.3, args.4, ceil).map(|w| w == *self)
        };
        if matches(false)? || matches(true)? {
            return Ok(());
        }
        Err(Error::invalid(
            op,
            format!("window {self:?} has an output size its geometry does not give"),
        ))
    }

    /// Window positions, `oh * ow` (a product that fits: `build` checked it).
    pub fn positions(&self) -> usize {
        self.output.0 * self.output.1
    }

    /// Cells per window, `kh * kw`.
    pub fn cells(&self) -> usize {
        self.kernel.0 * self.kernel.1
    }

    /// Input row (or column) read by window position `o` at kernel offset `k` along one axis, or
    /// `None` when it falls outside the input.
    #[inline]
    pub(crate) fn source(
        o: usize,
        k: usize,
        s: usize,
        p: usize,
        d: usize,
        n: usize,
    ) -> Option<usize> {
        (o * s + k * d).checked_sub(p).filter(|&i| i < n)
    }

    /// The window positions along a row whose column at kernel offset `kj` falls inside the
    /// input: a contiguous range `[lo, hi)` (empty if none), position `lo` reading column
    /// `lo * stride.1 + kj * dilation.1 - padding.1`.
    pub(crate) fn columns(&self, kj: usize) -> (usize, usize) {
        let (wd, ow) = (self.input.1, self.output.1);
        let (sw, pw, dw) = (self.stride.1, self.padding.1, self.dilation.1);
        let lo = (pw.saturating_sub(kj * dw)).div_ceil(sw).min(ow);
        let hi = if wd + pw > kj * dw {
            ((wd + pw - kj * dw).div_ceil(sw)).min(ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    }
}

/// Batch and channels of an `[N, C, H, W]` tensor whose planes `w` was built for.
pub(super) fn check_nchw(op: &'static str, t: &Tensor, w: &Window2d) -> Result<(usize, usize)> {
    if t.rank() != 4 || (t.dims()[2], t.dims()[3]) != w.input {
        return Err(Error::shape(
            op,
            &[t.shape()],
            format!("an [N, C, {}, {}] input", w.input.0, w.input.1),
        ));
    }
    Ok((t.dims()[0], t.dims()[1]))
}

impl Tensor {
    /// im2col: `[N, C, H, W]` to `[N, C*kh*kw, oh*ow]`; cells outside the input read `pad_value`.
    pub fn unfold(&self, w: &Window2d, pad_value: f32) -> Result<Tensor> {
        w.validate("unfold")?;
        let (n, c) = check_nchw("unfold", self, w)?;
        let (h, wd) = w.input;
        let (kk, l) = (w.cells(), w.positions());
        // Saturated, a size too large to exist: `check_size` refuses it.
        let rows = c.saturating_mul(kk);
        let shape = Shape::new(&[n, rows, l]);
        // `unfold_plane` writes every entry, padding included.
        let mut out = buffer_pool::try_for_overwrite("unfold", shape.check_size("unfold")?)?;
        let plane = |(dst, src): (&mut [f32], &[f32])| unfold_plane(src, dst, w, pad_value);
        if out.is_empty() {
            return Ok(Tensor::from_parts(out, shape));
        }
        if h * wd == 0 {
            // An empty plane (which only padding can make windows over): all padding.
            out.fill(pad_value);
            return Ok(Tensor::from_parts(out, shape));
        }
        if out.len() >= PAR_THRESHOLD {
            out.par_chunks_mut(kk * l)
                .zip(self.data().par_chunks(h * wd))
                .for_each(plane);
        } else {
            out.chunks_mut(kk * l)
                .zip(self.data().chunks(h * wd))
                .for_each(plane);
        }
        Ok(Tensor::from_parts(out, shape))
    }

    /// col2im, the adjoint of `unfold`: `[N, C*kh*kw, oh*ow]` to `[N, C, H, W]`, summing
    /// overlapping windows; entries that fell on padding are dropped.
    pub fn fold(&self, w: &Window2d) -> Result<Tensor> {
        w.validate("fold")?;
        let (kk, l) = (w.cells(), w.positions());
        if self.rank() != 3 || self.dims()[2] != l || kk == 0 || !self.dims()[1].is_multiple_of(kk)
        {
            return Err(Error::shape(
                "fold",
                &[self.shape()],
                format!("an [N, C*{kk}, {l}] input for kernel {:?}", w.kernel),
            ));
        }
        let (n, c) = (self.dims()[0], self.dims()[1] / kk);
        let (h, wd) = w.input;
        let shape = Shape::new(&[n, c, h, wd]);
        let mut out = buffer_pool::try_zeroed("fold", shape.check_size("fold")?)?;
        let plane = |(dst, src): (&mut [f32], &[f32])| fold_plane(src, dst, w);
        // Nothing to add into (an empty plane drops every entry, all on padding), or nothing
        // to add.
        if out.is_empty() || l == 0 {
            return Ok(Tensor::from_parts(out, shape));
        }
        if self.numel() >= PAR_THRESHOLD {
            out.par_chunks_mut(h * wd)
                .zip(self.data().par_chunks(kk * l))
                .for_each(plane);
        } else {
            out.chunks_mut(h * wd)
                .zip(self.data().chunks(kk * l))
                .for_each(plane);
        }
        Ok(Tensor::from_parts(out, shape))
    }
}

/// One (sample, channel) plane `src` (`H x W`) into its `kh*kw x L` block of columns `dst`.
fn unfold_plane(src: &[f32], dst: &mut [f32], w: &Window2d, pad: f32) {
    let (h, wd) = w.input;
    let (oh, ow) = w.output;
    let (sh, sw) = w.stride;
    let (ph, pw) = w.padding;
    let (dh, dw) = w.dilation;
    for ki in 0..w.kernel.0 {
        for kj in 0..w.kernel.1 {
            let row = &mut dst[(ki * w.kernel.1 + kj) * oh * ow..][..oh * ow];
            let (lo, hi) = w.columns(kj);
            for oi in 0..oh {
                let line = &mut row[oi * ow..(oi + 1) * ow];
                match Window2d::source(oi, ki, sh, ph, dh, h) {
                    None => line.fill(pad),
                    Some(i) => {
                        let src_row = &src[i * wd..(i + 1) * wd];
                        line[..lo].fill(pad);
                        line[hi..].fill(pad);
                        if lo == hi {
                            continue;
                        }
                        let first = lo * sw + kj * dw - pw;
                        if sw == 1 {
                            line[lo..hi].copy_from_slice(&src_row[first..first + (hi - lo)]);
                        } else {
                            for (t, v) in line[lo..hi].iter_mut().enumerate() {
                                *v = src_row[first + t * sw];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `unfold_plane`: adds each column entry into its input cell.
fn fold_plane(src: &[f32], dst: &mut [f32], w: &Window2d) {
    let (h, wd) = w.input;
    let (oh, ow) = w.output;
    let (sh, sw) = w.stride;
    let (ph, pw) = w.padding;
    let (dh, dw) = w.dilation;
    for ki in 0..w.kernel.0 {
        for kj in 0..w.kernel.1 {
            let row = &src[(ki * w.kernel.1 + kj) * oh * ow..][..oh * ow];
            let (lo, hi) = w.columns(kj);
            for oi in 0..oh {
                if lo == hi {
                    break;
                }
                if let Some(i) = Window2d::source(oi, ki, sh, ph, dh, h) {
                    let line = &row[oi * ow..(oi + 1) * ow];
                    let dst_row = &mut dst[i * wd..(i + 1) * wd];
                    let first = lo * sw + kj * dw - pw;
                    if sw == 1 {
                        dst_row[first..first + (hi - lo)]
                            .iter_mut()
                            .zip(&line[lo..hi])
                            .for_each(|(d, s)| *d += s);
                    } else {
                        for (t, s) in line[lo..hi].iter().enumerate() {
                            dst_row[first + t * sw] += s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::rng;

    /// The definition, one element at a time: the reference for the fast kernel.
    fn naive_unfold(x: &Tensor, w: &Window2d, pad: f32) -> Tensor {
        let (n, c, h, wd) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let (kh, kw) = w.kernel;
        let (oh, ow) = w.output;
        let mut out = vec![0.0; n * c * kh * kw * oh * ow];
        for b in 0..n {
            for ch in 0..c {
                for ki in 0..kh {
                    for kj in 0..kw {
                        for oi in 0..oh {
                            for oj in 0..ow {
                                let i = (oi * w.stride.0 + ki * w.dilation.0) as isize
                                    - w.padding.0 as isize;
                                let j = (oj * w.stride.1 + kj * w.dilation.1) as isize
                                    - w.padding.1 as isize;
                                let v = if i >= 0 && j >= 0 && (i as usize) < h && (j as usize) < wd
                                {
                                    x.get(&[b, ch, i as usize, j as usize]).unwrap()
                                } else {
                                    pad
                                };
                                let r = (ch * kh + ki) * kw + kj;
                                out[((b * c * kh * kw) + r) * oh * ow + oi * ow + oj] = v;
                            }
                        }
                    }
                }
            }
        }
        Tensor::from_vec(out, [n, c * kh * kw, oh * ow]).unwrap()
    }

    fn geometries() -> Vec<Window2d> {
        let mut v = Vec::new();
        for &(k, s, p, d) in &[
            ((3, 3), (1, 1), (1, 1), (1, 1)),
            ((2, 3), (2, 1), (0, 2), (1, 1)),
            ((3, 2), (3, 2), (2, 1), (2, 1)),
            ((1, 1), (2, 2), (0, 0), (1, 1)),
            ((5, 5), (4, 4), (5, 5), (1, 1)),
        ] {
            v.push(Window2d::conv("t", (7, 6), k, s, p, d).unwrap());
        }
        v.push(Window2d::pool("t", (5, 5), (2, 2), (2, 2), (1, 1), (1, 1), true).unwrap());
        v
    }

    #[test]
    fn unfold_matches_the_definition() {
        let mut g = rng(3);
        for w in geometries() {
            let x = Tensor::randn([2, 3, w.input.0, w.input.1], &mut g);
            for pad in [0.0, f32::NEG_INFINITY] {
                assert_eq!(
                    x.unfold(&w, pad).unwrap(),
                    naive_unfold(&x, &w, pad),
                    "{w:?}"
                );
            }
        }
    }

    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        // <unfold(x), y> = <x, fold(y)> for every x, y: the definition of the adjoint.
        let mut g = rng(4);
        for w in geometries() {
            let x = Tensor::randn([2, 3, w.input.0, w.input.1], &mut g);
            let cols = x.unfold(&w, 0.0).unwrap();
            let y = Tensor::randn(cols.shape().clone(), &mut g);
            let lhs: f64 = cols
                .data()
                .iter()
                .zip(y.data())
                .map(|(a, b)| (a * b) as f64)
                .sum();
            let back = y.fold(&w).unwrap();
            let rhs: f64 = x
                .data()
                .iter()
                .zip(back.data())
                .map(|(a, b)| (a * b) as f64)
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{w:?}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        // H=5, k=2, s=2, p=1, ceil: 3 windows (a 4th would start in the right padding).
        let w = Window2d::pool("t", (5, 5), (2, 2), (2, 2), (1, 1), (1, 1), true).unwrap();
        assert_eq!(w.output, (3, 3));
        let w = Window2d::conv("t", (227, 227), (11, 11), (4, 4), (0, 0), (1, 1)).unwrap();
        assert_eq!(w.output, (55, 55));
        assert!(Window2d::conv("t", (3, 3), (5, 5), (1, 1), (0, 0), (1, 1)).is_err());
        assert!(Window2d::conv("t", (3, 3), (1, 1), (0, 1), (0, 0), (1, 1)).is_err());
    }
}
