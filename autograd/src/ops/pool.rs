//! Pooling as compositions: unfold the windows, then reduce each one (max or mean).
//!
//! Overlapping windows (AlexNet's 3x3 stride 2) need nothing special: `unfold`'s rule is `fold`,
//! which sums the gradients of a cell that several windows share.
//!
//! Max pooling runs as fused kernels (`tensor/pool.rs`) with the composition's bits, forward and
//! backward: unfolding holds each input cell once per window covering it, and its backward spread
//! the gradient over all of them before folding it back. GoogLeNet's 3x3 stride-1 pools made
//! max pooling 23% of its training step (batch 8). The composition stays the definition: the
//! input gradient is recorded as it ([`Tape::record_fused`](crate::Tape::record_fused)), so a
//! recorded backward differentiates it, and tests check both kernels against it.
//!
//! Tie rule for max pooling: max is the `max` reduction, so when several cells of a window hold
//! the maximum the gradient is split evenly among them (as `torch.amax`; PyTorch's max_pool2d
//! kernel sends it all to the first). The indices returned by [`max_pool2d_indices`] name the
//! first maximum in row-major window order, as PyTorch's do.

use crate::error::{Error, Result};
use crate::grads;
use crate::tape::{Reads, Var};
use crate::tensor::{Tensor, Transpose, Window2d};

op!(
    MAX_POOL2D = "max_pool2d",
    "unfold -> max over each window, fused: self: the gradient of each window to its maxima (ties share it evenly), folded"
);
op!(
    MAX_POOL2D_GRAD = "max_pool2d_grad",
    "the gradient of max pooling's input gradient: the composition's (spread_max_grad -> fold)"
);
op!(
    AVG_POOL2D = "avg_pool2d",
    "a composition (unfold -> sum over each window / divisor): its gradient comes from the tape"
);
op!(
    ADAPTIVE_AVG_POOL2D = "adaptive_avg_pool2d",
    "a composition (two products with averaging matrices): its gradient comes from the tape"
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
        if shape.dims()[1..].contains(&0) {
            // As PyTorch: only the batch may be empty.
            return Err(Error::shape(
                op,
                &[shape],
                "an [N, C, H, W] input with non-zero C, H and W (only the batch may be empty)",
            ));
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
        let w = o.window("max_pool2d", &self.shape())?;
        let y = self.value().max_pool2d(&w)?;
        self.tape()
            .record_reading(MAX_POOL2D, &[self], y, Reads::ALL, move |c| {
                let (x, g) = (c.input(0), c.grad());
                let max = c.result().value();
                let value = x.value().max_pool2d_grad(&max, &g.value(), &w)?;
                let dx = c
                    .tape()
                    .record_fused(MAX_POOL2D_GRAD, &[x, g], value, move |v| {
                        max_pool2d_grad(v[0], v[1], &w)
                    })?;
                Ok(grads![dx])
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
        let divisor = avg_divisor(&w, count_include_pad)?;
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
        let ph = averaging_matrix(s.dim(2), out.0)?;
        let pw = averaging_matrix(s.dim(3), out.1)?;
        self.tape().composite(ADAPTIVE_AVG_POOL2D, &[self], || {
            let (ph, pw) = (self.constant(ph), self.constant(pw));
            let rows = self.matmul_t(pw, Transpose::No, Transpose::Yes)?;
            ph.matmul_t(rows, Transpose::No, Transpose::No)
        })
    }
}

/// The input gradient of max pooling for the gradient `g` of its result, in var ops of `x` and
/// `g`: the composition's backward (max's rule spreads `g` over each window's maxima, unfold's
/// folds the windows back), which a recorded backward differentiates.
fn max_pool2d_grad<'a>(x: Var<'a>, g: Var<'a>, w: &Window2d) -> Result<Var<'a>> {
    let s = x.shape();
    let windows = x
        .value()
        .reshape([s.dim(0) * s.dim(1), 1, s.dim(2), s.dim(3)])?
        .unfold(w, f32::NEG_INFINITY)?;
    let max = windows.max(&[1], true)?;
    g.reshape(max.shape().clone())?
        .spread_max_grad(&windows, &max, &[1])?
        .fold(w)?
        .reshape(s)
}

/// Indices of the maxima of `max_pool2d` as PyTorch returns them: the flat position `h*W + w`
/// of the first maximum of each window inside its (n, c) plane, as f32. Only cells of the input
/// are candidates (never padding); NaN counts as a maximum, as in PyTorch's kernel.
pub fn max_pool2d_indices(x: &Tensor, o: Pool2dOptions) -> Result<Tensor> {
    let s = x.shape().clone();
    let w = o.window("max_pool2d", &s)?;
    let (oh, ow) = w.output;
    let out_shape = crate::Shape::new(&[s.dim(0), s.dim(1), oh, ow]);
    let size = out_shape.check_size("max_pool2d")?;
    let mut out = Vec::new();
    out.try_reserve_exact(size)
        .map_err(|_| Error::OutOfMemory {
            op: "max_pool2d",
            bytes: size * 4,
        })?;
    let (h, wd) = w.input;
    // Input rows (or columns) a window at position `o` covers along one axis, in kernel order.
    let cells = |o: usize, k: usize, s: usize, p: usize, d: usize, n: usize| {
        (0..k).filter_map(move |i| (o * s + i * d).checked_sub(p).filter(|&c| c < n))
    };
    for plane in x.data().chunks(h * wd) {
        for oi in 0..oh {
            for oj in 0..ow {
                let (ks, ss, ps, ds) = (w.kernel, w.stride, w.padding, w.dilation);
                let mut best: Option<(f32, usize)> = None;
                for i in cells(oi, ks.0, ss.0, ps.0, ds.0, h) {
                    for j in cells(oj, ks.1, ss.1, ps.1, ds.1, wd) {
                        let v = plane[i * wd + j];
                        let wins = match best {
                            None => true,
                            Some((b, _)) => !b.is_nan() && (v > b || v.is_nan()),
                        };
                        if wins {
                            best = Some((v, i * wd + j));
                        }
                    }
                }
                // Padding is at most half the kernel, so every window holds an input cell.
                out.push(best.map_or(0.0, |(_, at)| at as f32));
            }
        }
    }
    Tensor::from_vec(out, out_shape)
}

/// PyTorch's avg_pool2d divisor per window position, as `[oh*ow]` (in i128: the window
/// bounds of a checked geometry fit in usize, not necessarily in isize).
fn avg_divisor(w: &Window2d, count_include_pad: bool) -> Result<Tensor> {
    let span = |o: usize, s: usize, p: usize, k: usize, n: usize| {
        let start = (o as i128) * (s as i128) - p as i128;
        let end = (start + k as i128).min(n as i128 + p as i128);
        let padded = end - start;
        let real = end.min(n as i128) - start.max(0);
        (padded, real)
    };
    let mut d = Tensor::try_zeros([w.positions()])?;
    let mut cells = d.data_mut().iter_mut();
    for oi in 0..w.output.0 {
        for oj in 0..w.output.1 {
            let (ph, rh) = span(oi, w.stride.0, w.padding.0, w.kernel.0, w.input.0);
            let (pw, rw) = span(oj, w.stride.1, w.padding.1, w.kernel.1, w.input.1);
            let v = if count_include_pad { ph * pw } else { rh * rw };
            *cells.next().expect("one cell per position") = v as f32;
        }
    }
    Ok(d)
}

/// `[out, n]` matrix whose row `i` averages the cells of adaptive window `i`.
fn averaging_matrix(n: usize, out: usize) -> Result<Tensor> {
    let mut m = Tensor::try_zeros([out, n])?;
    let data = m.data_mut();
    // Window bounds in u128: `i n` may exceed usize for large sizes.
    let bound = |x: usize, ceil: bool| {
        let (num, den) = (x as u128 * n as u128, out as u128);
        (if ceil { num.div_ceil(den) } else { num / den }) as usize
    };
    for i in 0..out {
        let (start, end) = (bound(i, false), bound(i + 1, true));
        for j in start..end {
            data[i * n + j] = 1.0 / (end - start) as f32;
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::{grad, Tape};
    use proptest::prelude::*;

    /// Max pooling as its composition: `unfold` (padding -inf), then `max` over each window.
    fn composition<'a>(x: Var<'a>, w: &Window2d) -> Result<Var<'a>> {
        let s = x.shape();
        x.pool_windows(w, f32::NEG_INFINITY)?
            .max(&[1], false)?
            .reshape([s.dim(0), s.dim(1), w.output.0, w.output.1])
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.to_vec().iter().map(|v| v.to_bits()).collect()
    }

    /// Values from a coarse grid, so that windows tie, with -inf and NaN among them.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            12 => (-3i32..3).prop_map(|v| v as f32 * 0.5),
            1 => Just(f32::NEG_INFINITY),
            1 => Just(f32::NAN),
        ]
    }

    /// A pooling geometry and an input it fits.
    fn case() -> impl Strategy<Value = (Pool2dOptions, Vec<usize>, Vec<f32>)> {
        let geometry = (
            1usize..4,
            1usize..4,
            1usize..4,
            1usize..4,
            1usize..3,
            any::<bool>(),
        );
        let dims = (1usize..3, 1usize..3, 1usize..8, 1usize..8);
        (geometry, dims).prop_flat_map(|((kh, kw, sh, sw, d, ceil), (n, c, h, w))| {
            let o = Pool2dOptions {
                kernel: (kh, kw),
                stride: (sh, sw),
                padding: (kh / 2, kw / 2),
                dilation: (d, d),
                ceil_mode: ceil,
            };
            let dims = vec![n, c, h, w];
            (
                Just(o),
                Just(dims),
                prop::collection::vec(value(), n * c * h * w),
            )
        })
    }

    /// `y` and, with `r` as the gradient of `y`, the input gradient and the gradient of
    /// `sum(dx * q)` with respect to `r` (through a recorded backward): by `pool`.
    fn run(
        x: &Tensor,
        pool: impl for<'a> Fn(Var<'a>) -> Result<Var<'a>>,
        seeds: &mut crate::tensor::Rng,
    ) -> (Tensor, Tensor, Tensor) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let y = pool(xv).unwrap();
        let r = tape.var(Tensor::randn(y.shape(), seeds));
        let q = tape.input(Tensor::randn(x.shape().clone(), seeds));
        let loss = y.mul(r).unwrap().sum_all();
        let dx = grad(&[loss], &[xv], true).unwrap()[0];
        let second = grad(&[dx.mul(q).unwrap().sum_all()], &[r], false).unwrap()[0];
        (y.value(), dx.value(), second.value())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The fused kernels give the composition's bits: the maxima (NaN winning, padding
        /// never), the input gradient (ties sharing it, windows overlapping, -inf windows
        /// counting their padding), and a recorded backward through the gradient.
        #[test]
        fn fused_max_pooling_is_its_composition((o, dims, values) in case(), seed in 0u64..1000) {
            let x = Tensor::from_vec(values, dims.clone()).unwrap();
            let Ok(w) = o.window("max_pool2d", x.shape()) else {
                return Ok(());
            };
            let fused = run(&x, |v| v.max_pool2d(o), &mut crate::tensor::rng(seed));
            let composed = run(&x, |v| composition(v, &w), &mut crate::tensor::rng(seed));
            prop_assert_eq!(bits(&fused.0), bits(&composed.0), "maxima");
            prop_assert_eq!(bits(&fused.1), bits(&composed.1), "input gradient");
            prop_assert_eq!(bits(&fused.2), bits(&composed.2), "second order");
        }
    }

    /// Planes large enough to run in parallel, with ties: the same bits.
    #[test]
    fn large_inputs_pool_as_the_composition() {
        let mut g = crate::tensor::rng(7);
        let x = Tensor::randn([2, 8, 45, 47], &mut g).map(|v| (v * 2.0).round());
        for o in [
            Pool2dOptions::new(3).stride(1).padding(1),
            Pool2dOptions::new(3).stride(2).ceil_mode(true),
            Pool2dOptions::new(2),
        ] {
            let w = o.window("max_pool2d", x.shape()).unwrap();
            let fused = run(&x, |v| v.max_pool2d(o), &mut crate::tensor::rng(1));
            let composed = run(&x, |v| composition(v, &w), &mut crate::tensor::rng(1));
            assert_eq!(bits(&fused.0), bits(&composed.0), "{o:?}");
            assert_eq!(bits(&fused.1), bits(&composed.1), "{o:?}");
            assert_eq!(bits(&fused.2), bits(&composed.2), "{o:?}");
        }
    }

    #[test]
    fn the_gradient_kernel_checks_its_shapes() {
        let x = Tensor::zeros([1, 2, 4, 4]);
        let w = Pool2dOptions::new(2)
            .window("max_pool2d", x.shape())
            .unwrap();
        let y = x.max_pool2d(&w).unwrap();
        assert_eq!(y.dims(), &[1, 2, 2, 2]);
        let wrong = Tensor::zeros([1, 2, 3, 2]);
        let err = x.max_pool2d_grad(&y, &wrong, &w).unwrap_err().to_string();
        assert!(err.contains("max_pool2d_grad"), "{err}");
        assert!(Tensor::zeros([2, 4, 4]).max_pool2d(&w).is_err());
    }
}
