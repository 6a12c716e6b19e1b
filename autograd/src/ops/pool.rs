//! Pooling as compositions: unfold the windows, then reduce each one (max or mean).
//!
//! Overlapping windows (AlexNet's 3x3 stride 2) need nothing special: `unfold`'s rule is `fold`,
//! which sums the gradients of a cell that several windows share.
//!
//! Tie rule for max pooling: max is the `max` reduction, so when several cells of a window hold
//! the maximum the gradient is split evenly among them (as `torch.amax`; PyTorch's max_pool2d
//! kernel sends it all to the first). The indices returned by [`max_pool2d_indices`] name the
//! first maximum in row-major window order, as PyTorch's do.

use crate::error::{Error, Result};
use crate::tape::{Op, Var};
use crate::tensor::{Tensor, Transpose, Window2d};

pub const MAX_POOL2D: Op = Op::new(
    "max_pool2d",
    "a composition (unfold -> max over each window): its gradient comes from the tape",
);
pub const AVG_POOL2D: Op = Op::new(
    "avg_pool2d",
    "a composition (unfold -> sum over each window / divisor): its gradient comes from the tape",
);
pub const ADAPTIVE_AVG_POOL2D: Op = Op::new(
    "adaptive_avg_pool2d",
    "a composition (two products with averaging matrices): its gradient comes from the tape",
);

/// Kernel, stride, padding, dilation and ceil mode of a pooling layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ceil_mode: bool,
}

impl Pool2dOptions {
    /// A `k x k` window with stride `k` (PyTorch's default stride is the kernel size).
    pub fn new(k: usize) -> Self {
        Pool2dOptions {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self
    }
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }

    fn window(&self, op: &'static str, shape: &crate::Shape) -> Result<Window2d> {
        if shape.rank() != 4 {
            return Err(Error::shape(op, &[shape], "an [N, C, H, W] input"));
        }
        Window2d::pool(
            op,
            (shape.dim(2), shape.dim(3)),
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
        )
    }
}

impl<'t> Var<'t> {
    /// Windows of each channel as `[N*C, kh*kw, oh*ow]`, padded with `pad`.
    fn pool_windows(self, w: &Window2d, pad: f32) -> Result<Var<'t>> {
        let s = self.shape();
        self.reshape([s.dim(0) * s.dim(1), 1, s.dim(2), s.dim(3)])?
            .unfold(w, pad)
    }

    /// Max pooling; padding reads -inf, so it never wins.
    pub fn max_pool2d(self, o: Pool2dOptions) -> Result<Var<'t>> {
        let s = self.shape();
        let w = o.window("max_pool2d", &s)?;
        self.tape().composite(MAX_POOL2D, &[self], || {
            let windows = self.pool_windows(&w, f32::NEG_INFINITY)?;
            let y = windows.max(&[1], false)?;
            // Recomputable: unfolded again when max's chain rule reads it.
            windows.release();
            y.reshape([s.dim(0), s.dim(1), w.output.0, w.output.1])
        })
    }

    /// Average pooling with PyTorch's divisor: padding cells count when `count_include_pad`,
    /// a ceil-mode overhang beyond the padding never does.
    pub fn avg_pool2d(self, o: Pool2dOptions, count_include_pad: bool) -> Result<Var<'t>> {
        let s = self.shape();
        if o.dilation != (1, 1) {
            return Err(Error::invalid(
                "avg_pool2d",
                "dilation is not defined for average pooling",
            ));
        }
        let w = o.window("avg_pool2d", &s)?;
        let divisor = avg_divisor(&w, count_include_pad);
        self.tape().composite(AVG_POOL2D, &[self], || {
            let windows = self.pool_windows(&w, 0.0)?;
            let y = windows.sum(&[1], false)?;
            // The sum's rule reads no value: the windows are freed now.
            windows.release();
            y.div(self.constant(divisor))?
                .reshape([s.dim(0), s.dim(1), w.output.0, w.output.1])
        })
    }

    /// Adaptive average pooling to `out` = (oh, ow): window `i` covers
    /// `[floor(i In / Out), ceil((i + 1) In / Out))`. Computed as `P_h x P_wᵀ` with constant
    /// averaging matrices, so windows may overlap or repeat; (1, 1) is the global mean.
    pub fn adaptive_avg_pool2d(self, out: (usize, usize)) -> Result<Var<'t>> {
        let s = self.shape();
        if s.rank() != 4 || out.0 == 0 || out.1 == 0 || s.dim(2) == 0 || s.dim(3) == 0 {
            return Err(Error::shape(
                "adaptive_avg_pool2d",
                &[&s],
                format!("a non-empty [N, C, H, W] input and a positive output size (got {out:?})"),
            ));
        }
        if out == (1, 1) {
            return self.mean(&[2, 3], true);
        }
        self.tape().composite(ADAPTIVE_AVG_POOL2D, &[self], || {
            let ph = self.constant(averaging_matrix(s.dim(2), out.0));
            let pw = self.constant(averaging_matrix(s.dim(3), out.1));
            let rows = self.matmul_t(pw, Transpose::No, Transpose::Yes)?;
            ph.matmul_t(rows, Transpose::No, Transpose::No)
        })
    }
}

/// Indices of the maxima of `max_pool2d` as PyTorch returns them: the flat position `h*W + w`
/// of the first maximum of each window inside its (n, c) plane, as f32.
pub fn max_pool2d_indices(x: &Tensor, o: Pool2dOptions) -> Result<Tensor> {
    let s = x.shape().clone();
    let w = o.window("max_pool2d", &s)?;
    let planes = x.reshape([s.dim(0) * s.dim(1), 1, s.dim(2), s.dim(3)])?;
    let cols = planes.unfold2d(&w, f32::NEG_INFINITY)?;
    let (kk, l) = (w.cells(), w.positions());
    let mut out = Vec::with_capacity(cols.dims()[0] * l);
    for plane in cols.data().chunks(kk * l) {
        for p in 0..l {
            let (oi, oj) = (p / w.output.1, p % w.output.1);
            let mut best = (f32::NEG_INFINITY, 0usize);
            for k in 0..kk {
                let v = plane[k * l + p];
                if v > best.0 || (k == 0 && v == best.0) {
                    best = (v, k);
                }
            }
            let (ki, kj) = (best.1 / w.kernel.1, best.1 % w.kernel.1);
            let i = oi * w.stride.0 + ki * w.dilation.0 - w.padding.0;
            let j = oj * w.stride.1 + kj * w.dilation.1 - w.padding.1;
            out.push((i * s.dim(3) + j) as f32);
        }
    }
    Tensor::from_vec(out, [s.dim(0), s.dim(1), w.output.0, w.output.1])
}

/// PyTorch's avg_pool2d divisor per window position, as `[oh*ow]`.
fn avg_divisor(w: &Window2d, count_include_pad: bool) -> Tensor {
    let span = |o: usize, s: usize, p: usize, k: usize, n: usize| {
        let start = (o * s) as isize - p as isize;
        let end = (start + k as isize).min((n + p) as isize);
        let padded = end - start;
        let real = end.min(n as isize) - start.max(0);
        (padded, real)
    };
    let mut d = Vec::with_capacity(w.positions());
    for oi in 0..w.output.0 {
        for oj in 0..w.output.1 {
            let (ph, rh) = span(oi, w.stride.0, w.padding.0, w.kernel.0, w.input.0);
            let (pw, rw) = span(oj, w.stride.1, w.padding.1, w.kernel.1, w.input.1);
            d.push(if count_include_pad { ph * pw } else { rh * rw } as f32);
        }
    }
    Tensor::from_slice(&d)
}

/// `[out, n]` matrix whose row `i` averages the cells of adaptive window `i`.
fn averaging_matrix(n: usize, out: usize) -> Tensor {
    let mut m = vec![0.0f32; out * n];
    for i in 0..out {
        let start = i * n / out;
        let end = ((i + 1) * n).div_ceil(out);
        for j in start..end {
            m[i * n + j] = 1.0 / (end - start) as f32;
        }
    }
    Tensor::from_vec(m, [out, n]).expect("out * n values")
}
