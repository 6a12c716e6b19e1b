//! Pooling layers: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`.

use crate::module::{Entry, EntryRef, LayerInfo, Module};
use tapegrad_autograd::{Pool2dOptions, Result, Var};

/// `nn.MaxPool2d`. Gradient ties split evenly (see the `pool` ops).
pub struct MaxPool2d(pub Pool2dOptions);

impl MaxPool2d {
    /// `k x k` windows with stride `s` (overlapping when `s < k`, as AlexNet's 3x3/2).
    pub fn new(k: usize, s: usize) -> MaxPool2d {
        MaxPool2d(Pool2dOptions::new(k).stride(s))
    }
}

impl Module for MaxPool2d {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| x.max_pool2d(m.0))
    }
    fn describe(&self) -> LayerInfo {
        LayerInfo::Pool {
            kernel: self.0.kernel,
            stride: self.0.stride,
            dilation: self.0.dilation,
        }
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// `nn.AvgPool2d`, counting padding cells in the divisor by default (as PyTorch).
pub struct AvgPool2d {
    pub options: Pool2dOptions,
    pub count_include_pad: bool,
}

impl AvgPool2d {
    pub fn new(k: usize, s: usize) -> AvgPool2d {
        AvgPool2d {
            options: Pool2dOptions::new(k).stride(s),
            count_include_pad: true,
        }
    }
}

impl Module for AvgPool2d {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| x.avg_pool2d(m.options, m.count_include_pad))
    }
    fn describe(&self) -> LayerInfo {
        let o = self.options;
        LayerInfo::Pool {
            kernel: o.kernel,
            stride: o.stride,
            dilation: o.dilation,
        }
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// `nn.AdaptiveAvgPool2d`: any input size to a fixed output size; (1, 1) is global average
/// pooling.
pub struct AdaptiveAvgPool2d(pub (usize, usize));

impl Module for AdaptiveAvgPool2d {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        crate::summary::scope::scoped(self, x, |m, x| x.adaptive_avg_pool2d(m.0))
    }
    fn describe(&self) -> LayerInfo {
        LayerInfo::AdaptivePool { output: self.0 }
    }
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
}
