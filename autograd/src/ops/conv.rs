//! Convolution as a composition: unfold -> matmul with the weights (per group) -> reshape
//! (+ bias). Its backward pass needs no rule of its own: the tape runs matmul's and unfold's,
//! which is the lecture's point that the backward of a convolution is itself a convolution.

use crate::error::{Error, Result};
use crate::ops::present;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::{buffer_pool, Tensor, Transpose, Window2d};

op!(CONV2D = "conv2d", "a composition (unfold -> matmul -> + bias, on pieces of the batch): its gradient comes from the tape");
op!(
    CONV_TRANSPOSE2D = "conv_transpose2d",
    "a composition (matmul -> fold -> + bias): its gradient comes from the tape"
);

/// Unfolded images held at once by a convolution: the composition runs on as many images of the
/// batch at a time as fit (one at least), forward and backward, so that neither the unfolded
/// batch nor its gradient is ever whole. VGG-16's second layer unfolds an
/// image to 115 MB: one at a time; a ResNet's convolutions at batch 8 fit whole.
const PIECE_BYTES: usize = 128 << 20;

/// Images per piece for compositions that unfold `per_image` bytes per image.
fn images_per_piece(per_image: usize) -> usize {
    (PIECE_BYTES / per_image.max(1)).max(1)
}

/// Stride, padding, dilation and groups of a 2-d convolution (PyTorch's defaults: 1, 0, 1, 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

impl<'t> Var<'t> {
    /// 2-d cross-correlation of `[N, C, H, W]` input with `[O, C/groups, kh, kw]` weights (PyTorch's
    /// layout), plus an optional `[O]` bias. Groups split input channels and outputs into
    /// consecutive blocks; `groups == C` is a depthwise convolution.
    pub fn conv2d(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        o: Conv2dOptions,
    ) -> Result<Var<'t>> {
        let (xs, ws) = (self.shape(), weight.shape());
        if xs.rank() != 4 || ws.rank() != 4 {
            return Err(Error::shape(
                "conv2d",
                &[&xs, &ws],
                "an [N, C, H, W] input and [out, in/groups, kh, kw] weights",
            ));
        }
        let (c, h, w) = (xs.dim(1), xs.dim(2), xs.dim(3));
        let (oc, cg, kh, kw) = (ws.dim(0), ws.dim(1), ws.dim(2), ws.dim(3));
        let g = o.groups;
        if g == 0 || !c.is_multiple_of(g) || !oc.is_multiple_of(g) || cg != c / g {
            return Err(Error::shape(
                "conv2d",
                &[&xs, &ws],
                format!(
                    "groups ({g}) dividing both the {c} input and {oc} output channels, and weights with in/groups = {} channels",
                    c.checked_div(g).unwrap_or(0)
                ),
            ));
        }
        if let Some(b) = bias {
            if b.shape().dims() != [oc] {
                return Err(Error::shape(
                    "conv2d",
                    &[&ws, &b.shape()],
                    format!("a bias of shape [{oc}]"),
                ));
            }
        }
        empty_plane("conv2d", &xs, &ws)?;
        let win = Window2d::conv("conv2d", (h, w), (kh, kw), o.stride, o.padding, o.dilation)?;
        let inputs = present([Some(self), Some(weight), bias]);
        self.tape().composite(CONV2D, &inputs, || {
            self.conv2d_composition(weight, bias, &win, o)
        })
    }

    /// conv2d's composition, for validated arguments, on pieces of the batch whose unfolded
    /// images fit [`PIECE_BYTES`] (the whole batch when they do), joined along the batch.
    fn conv2d_composition(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        win: &Window2d,
        o: Conv2dOptions,
    ) -> Result<Var<'t>> {
        let (n, c) = (self.shape().dim(0), self.shape().dim(1));
        let ws = weight.shape();
        // Each image of the batch unfolds to `C kh kw` rows of `oh ow` columns (saturated: an
        // empty batch may carry sizes whose unfolded image could not exist).
        let per_image = [
            ws.dim(2),
            ws.dim(3),
            win.positions(),
            std::mem::size_of::<f32>(),
        ]
        .into_iter()
        .fold(c, usize::saturating_mul);
        let chunk = images_per_piece(per_image);
        if chunk >= n {
            return self.conv2d_piece(weight, bias, win, o);
        }
        if ![Some(self), Some(weight), bias]
            .into_iter()
            .flatten()
            .any(|v| v.requires_grad())
        {
            // Nothing needs a gradient (inference): each piece's output is written into the
            // whole's and dropped, so the pieces and their join are never all held at once.
            let (oh, ow) = win.output;
            let shape = Shape::new(&[n, ws.dim(0), oh, ow]);
            let storage = buffer_pool::try_for_overwrite("conv2d", shape.check_size("conv2d")?)?;
            // Every element is written below: the pieces cover the batch.
            let mut out = Tensor::from_parts(storage, shape);
            for start in (0..n).step_by(chunk) {
                let x = self.narrow(0, start, chunk.min(n - start))?;
                let y = x.conv2d_piece(weight, bias, win, o)?;
                out.copy_to_slice(0, start, &y.value())?;
                x.release();
                y.release();
            }
            return Ok(self.constant(out));
        }
        let mut parts = Vec::with_capacity(n.div_ceil(chunk));
        for start in (0..n).step_by(chunk) {
            let x = self.narrow(0, start, chunk.min(n - start))?;
            let y = x.conv2d_piece(weight, bias, win, o)?;
            // A slice is recomputable: it is held only while its piece is computed.
            x.release();
            parts.push(y);
        }
        let y = Var::concat(&parts, 0)?;
        parts.iter().for_each(|p| p.release());
        Ok(y)
    }

    /// conv2d's composition on one piece of the batch.
    fn conv2d_piece(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        win: &Window2d,
        o: Conv2dOptions,
    ) -> Result<Var<'t>> {
        let (xs, ws) = (self.shape(), weight.shape());
        let (n, c) = (xs.dim(0), xs.dim(1));
        let (oc, cg, kh, kw) = (ws.dim(0), ws.dim(1), ws.dim(2), ws.dim(3));
        let g = o.groups;
        let (oh, ow) = win.output;
        let l = oh * ow;
        let pointwise = (kh, kw) == (1, 1) && o.stride == (1, 1) && o.padding == (0, 0);
        // [N, C*kh*kw, L]; a 1x1 stride-1 convolution needs no unfold, only a view.
        let cols = if pointwise {
            self.reshape([n, c, l])?
        } else {
            self.unfold(win, 0.0)?
        };
        let k = cg * kh * kw;
        let y = if g == 1 {
            // [O, K] @ [N, K, L]: the weights broadcast over the batch.
            weight
                .reshape([oc, k])?
                .matmul_t(cols, Transpose::No, Transpose::No)?
        } else {
            let wg = weight.reshape([g, oc / g, k])?;
            let cg_cols = cols
                .reshape([n, g, k, l])?
                .recomputable(move |x| x[0].reshape([n, g, k, l]));
            let y = wg.matmul_t(cg_cols, Transpose::No, Transpose::No)?;
            cg_cols.release();
            y
        };
        // The unfolded input is recomputable: it is freed now and unfolded again when the
        // product's chain rule reads it (a 1x1 convolution's is a view of the input).
        cols.release();
        let y = y.reshape([n, oc, oh, ow])?;
        match bias {
            Some(b) => y.add(b.reshape([oc, 1, 1])?),
            None => Ok(y),
        }
    }

    /// Transposed convolution (the adjoint of `conv2d` in its input): input `[N, C, H, W]`,
    /// weights `[C, O/groups, kh, kw]` (PyTorch's layout), output size
    /// `(H - 1) s - 2p + d (k - 1) + output_padding + 1`. A composition: matmul with the
    /// transposed weights, then fold.
    pub fn conv_transpose2d(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        o: Conv2dOptions,
        output_padding: (usize, usize),
    ) -> Result<Var<'t>> {
        let (xs, ws) = (self.shape(), weight.shape());
        if xs.rank() != 4 || ws.rank() != 4 || ws.dim(0) != xs.dim(1) {
            return Err(Error::shape(
                "conv_transpose2d",
                &[&xs, &ws],
                "an [N, C, H, W] input and [C, out/groups, kh, kw] weights",
            ));
        }
        let (c, h, w) = (xs.dim(1), xs.dim(2), xs.dim(3));
        let (kh, kw) = (ws.dim(2), ws.dim(3));
        let g = o.groups;
        if g == 0 || !c.is_multiple_of(g) {
            return Err(Error::invalid(
                "conv_transpose2d",
                format!("groups ({g}) must divide the {c} input channels"),
            ));
        }
        if output_padding.0 >= o.stride.0.max(o.dilation.0)
            || output_padding.1 >= o.stride.1.max(o.dilation.1)
        {
            return Err(Error::invalid(
                "conv_transpose2d",
                format!("output_padding {output_padding:?} must be smaller than the stride or the dilation"),
            ));
        }
        empty_plane("conv_transpose2d", &xs, &ws)?;
        if [kh, kw, o.stride.0, o.stride.1, o.dilation.0, o.dilation.1].contains(&0) {
            return Err(Error::invalid(
                "conv_transpose2d",
                format!(
                    "kernel {kh}x{kw}, stride {:?} and dilation {:?} must be positive",
                    o.stride, o.dilation
                ),
            ));
        }
        // In checked arithmetic: each term may be near usize::MAX. `i` and `k` are positive.
        let size = |i: usize, s: usize, p: usize, d: usize, k: usize, op: usize| -> Result<usize> {
            let full = (i - 1)
                .checked_mul(s)
                .and_then(|x| d.checked_mul(k - 1).and_then(|y| x.checked_add(y)))
                .and_then(|x| x.checked_add(op))
                .and_then(|x| x.checked_add(1));
            full.and_then(|v| v.checked_sub(p.checked_mul(2)?))
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    Error::invalid(
                        "conv_transpose2d",
                        format!("input size {i} with stride {s}, padding {p}, dilation {d}, kernel {k} and output padding {op} gives no valid output size"),
                    )
                })
        };
        let out_h = size(
            h,
            o.stride.0,
            o.padding.0,
            o.dilation.0,
            kh,
            output_padding.0,
        )?;
        let out_w = size(
            w,
            o.stride.1,
            o.padding.1,
            o.dilation.1,
            kw,
            output_padding.1,
        )?;
        let win = Window2d::conv(
            "conv_transpose2d",
            (out_h, out_w),
            (kh, kw),
            o.stride,
            o.padding,
            o.dilation,
        )?;
        if win.output != (h, w) {
            return Err(Error::invalid(
                "conv_transpose2d",
                format!("input {h}x{w} is not a convolution output of the {out_h}x{out_w} result"),
            ));
        }
        let inputs = present([Some(self), Some(weight), bias]);
        self.tape().composite(CONV_TRANSPOSE2D, &inputs, || {
            self.conv_transpose2d_composition(weight, bias, &win, g)
        })
    }

    /// conv_transpose2d's composition, for validated arguments.
    fn conv_transpose2d_composition(
        self,
        weight: Var<'t>,
        bias: Option<Var<'t>>,
        win: &Window2d,
        g: usize,
    ) -> Result<Var<'t>> {
        let (xs, ws) = (self.shape(), weight.shape());
        let (n, c, h, w) = (xs.dim(0), xs.dim(1), xs.dim(2), xs.dim(3));
        let (og, kh, kw) = (ws.dim(1), ws.dim(2), ws.dim(3));
        let (cg, k) = (c / g, og * kh * kw);
        // cols[n, g] = W_gᵀ [k, cg] @ x[n, g] [cg, L], then fold into the output image.
        let wg = weight.reshape([g, cg, k])?;
        let xg = self.reshape([n, g, cg, h * w])?;
        let cols = wg
            .matmul_t(xg, Transpose::Yes, Transpose::No)?
            .reshape([n, g * k, h * w])?;
        let y = cols.fold(win)?;
        match bias {
            Some(b) => y.add(b.reshape([g * og, 1, 1])?),
            None => Ok(y),
        }
    }
}

/// As PyTorch, a convolution takes an empty batch or empty channels, not an empty plane: a
/// plane of zero rows or columns has no window to convolve (only padding could make one).
fn empty_plane(op: &'static str, x: &crate::Shape, w: &crate::Shape) -> Result<()> {
    if x.dim(2) == 0 || x.dim(3) == 0 {
        return Err(Error::shape(
            op,
            &[x, w],
            "an input whose height and width are non-zero (only the batch or the channels may be empty)",
        ));
    }
    Ok(())
}
