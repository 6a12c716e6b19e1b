//! max_pool2d.json: `F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode,
//! return_indices=True)`; the `indices` extra output is the flat `h*W + w` position of each
//! window's maximum in its (n, c) plane.

use super::case::{Case, Outputs, Result};
use super::graph::Graph;
use super::registry::OpFn;
use tapegrad_autograd::ops::max_pool2d_indices;
use tapegrad_autograd::{Pool2dOptions, Tape};

pub const OPS: &[(&str, OpFn)] = &[("max_pool2d", max_pool2d)];

/// Pooling options from a case's `kernel_size`, `stride`, `padding`, `ceil_mode` and, when
/// `with_dilation`, `dilation`.
pub fn pool_options(case: &Case, with_dilation: bool) -> Result<Pool2dOptions> {
    let p = |k: &str| -> Result<(usize, usize)> {
        let [a, b] = case.param_pair(k)?;
        Ok((a, b))
    };
    Ok(Pool2dOptions {
        kernel: p("kernel_size")?,
        stride: p("stride")?,
        padding: p("padding")?,
        dilation: if with_dilation {
            p("dilation")?
        } else {
            (1, 1)
        },
        ceil_mode: case.param_bool("ceil_mode")?,
    })
}

fn max_pool2d(case: &Case) -> Result<Outputs> {
    let o = pool_options(case, true)?;
    let tape = Tape::new();
    let mut g = Graph::new(&tape, case)?;
    let x = g.input("x")?;
    let y = x.max_pool2d(o)?;
    g.extra("indices", max_pool2d_indices(&x.value(), o)?);
    g.finish(y)
}
