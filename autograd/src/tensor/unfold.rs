//! im2col (`unfold`) and col2im (`fold`) kernels for 2-d sliding windows.

/// Geometry of a 2-d sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
}
