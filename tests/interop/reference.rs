//! The reference forward pass for the interop tests: plain f64 loops over NCHW arrays, written
//! from PyTorch's definitions and sharing no code with tapegrad.

use std::collections::BTreeMap;

/// One tensor of the file: its PyTorch shape and values (f32 values, held as f64 for the
/// reference). `int` marks `num_batches_tracked`, written as I64.
pub struct Arr {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    pub int: bool,
}

/// A state dict by name, as written to the file.
pub type Weights = BTreeMap<String, Arr>;

/// An activation, `[n, c, h, w]` row-major.
#[derive(Clone)]
pub struct Act {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub d: Vec<f64>,
}

impl Act {
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Act {
        let d = vec![0.0; n * c * h * w];
        Act { n, c, h, w, d }
    }
    pub fn idx(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.c + c) * self.h + y) * self.w + x
    }
}

/// Direct convolution (cross-correlation), no bias: out[n,o,y,x] = sum_{i,ky,kx}
/// w[o,i,ky,kx] * in[n, i, y*s + ky - p, x*s + kx - p], zero outside the input.
pub fn conv(x: &Act, w: &Arr, stride: usize, pad: usize) -> Act {
    let [o, ci, kh, kw] = w.shape[..] else {
        panic!("conv weight {:?}", w.shape)
    };
    assert_eq!(ci, x.c);
    let oh = (x.h + 2 * pad - kh) / stride + 1;
    let ow = (x.w + 2 * pad - kw) / stride + 1;
    let mut out = Act::zeros(x.n, o, oh, ow);
    for n in 0..x.n {
        for oc in 0..o {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut s = 0.0;
                    for i in 0..ci {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (y * stride + ky) as isize - pad as isize;
                                let ix = (xx * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                    continue;
                                }
                                let wv = w.data[((oc * ci + i) * kh + ky) * kw + kx];
                                s += wv * x.d[x.idx(n, i, iy as usize, ix as usize)];
                            }
                        }
                    }
                    let at = out.idx(n, oc, y, xx);
                    out.d[at] = s;
                }
            }
        }
    }
    out
}

/// Batch norm in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias.
pub fn bn(mut x: Act, w: &Weights, prefix: &str, eps: f64) -> Act {
    let get = |k: &str| &w[&format!("{prefix}.{k}")].data;
    let (g, b, m, v) = (
        get("weight"),
        get("bias"),
        get("running_mean"),
        get("running_var"),
    );
    let plane = x.h * x.w;
    for (i, chunk) in x.d.chunks_mut(plane).enumerate() {
        let c = i % x.c;
        for e in chunk {
            *e = (*e - m[c]) / (v[c] + eps).sqrt() * g[c] + b[c];
        }
    }
    x
}

pub fn relu(mut x: Act) -> Act {
    x.d.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

pub fn add(mut a: Act, b: &Act) -> Act {
    assert_eq!((a.n, a.c, a.h, a.w), (b.n, b.c, b.h, b.w));
    a.d.iter_mut().zip(&b.d).for_each(|(x, y)| *x += y);
    a
}

/// PyTorch's output length of a max pool: floor((len + 2p - k) / s) + 1, or with ceil_mode the
/// ceiling, less one if the last window would start in the right padding.
pub fn pool_len(len: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    let span = len + 2 * p - k;
    let mut out = if ceil { span.div_ceil(s) } else { span / s } + 1;
    if ceil && (out - 1) * s >= len + p {
        out -= 1;
    }
    out
}

/// Max pool; padding and the overhang of a ceil-mode window never win (they count as -inf).
pub fn max_pool(x: &Act, k: usize, s: usize, p: usize, ceil: bool) -> Act {
    let (oh, ow) = (pool_len(x.h, k, s, p, ceil), pool_len(x.w, k, s, p, ceil));
    let mut out = Act::zeros(x.n, x.c, oh, ow);
    for n in 0..x.n {
        for c in 0..x.c {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut m = f64::NEG_INFINITY;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (y * s + ky) as isize - p as isize;
                            let ix = (xx * s + kx) as isize - p as isize;
                            if iy >= 0 && ix >= 0 && iy < x.h as isize && ix < x.w as isize {
                                m = m.max(x.d[x.idx(n, c, iy as usize, ix as usize)]);
                            }
                        }
                    }
                    let at = out.idx(n, c, y, xx);
                    out.d[at] = m;
                }
            }
        }
    }
    out
}

/// Concatenation on channels.
pub fn concat(parts: &[Act]) -> Act {
    let (n, h, w) = (parts[0].n, parts[0].h, parts[0].w);
    let c = parts.iter().map(|p| p.c).sum();
    let mut out = Act::zeros(n, c, h, w);
    let plane = h * w;
    let mut at = 0;
    for b in 0..n {
        for p in parts {
            assert_eq!((p.n, p.h, p.w), (n, h, w));
            let src = &p.d[b * p.c * plane..(b + 1) * p.c * plane];
            out.d[at..at + src.len()].copy_from_slice(src);
            at += src.len();
        }
    }
    out
}

/// Global average pool then `fc`: logits[n][o] = b[o] + sum_c W[o,c] * mean_{y,x} x[n,c,y,x].
pub fn head(x: &Act, w: &Weights, prefix: &str) -> Vec<Vec<f64>> {
    let (wt, b) = (
        &w[&format!("{prefix}.weight")],
        &w[&format!("{prefix}.bias")],
    );
    let [o, ci] = wt.shape[..] else { panic!() };
    assert_eq!(ci, x.c);
    let plane = x.h * x.w;
    (0..x.n)
        .map(|n| {
            let feat: Vec<f64> = (0..x.c)
                .map(|c| {
                    let s = x.idx(n, c, 0, 0);
                    x.d[s..s + plane].iter().sum::<f64>() / plane as f64
                })
                .collect();
            (0..o)
                .map(|k| b.data[k] + (0..ci).map(|c| wt.data[k * ci + c] * feat[c]).sum::<f64>())
                .collect()
        })
        .collect()
}

#[test]
fn the_reference_pool_follows_pytorchs_ceil_mode() {
    // MaxPool2d(3, 2) on 8: (8 - 3) / 2 = 2.5, floor 2 + 1 = 3 windows, ceil_mode 3 + 1 = 4
    // (the 4th starts at 6 and covers 6, 7). On 7, (7 - 3) / 2 = 2 exactly: 3 either way.
    assert_eq!(pool_len(8, 3, 2, 0, true), 4);
    assert_eq!(pool_len(8, 3, 2, 0, false), 3);
    assert_eq!(pool_len(7, 3, 2, 0, true), 3);
    // k 3, s 1, p 1 (inception's branch4) keeps the length.
    assert_eq!(pool_len(4, 3, 1, 1, true), 4);
    // MaxPool2d(2, 2, padding=1, ceil_mode=True) on 3: ceil((3 + 2 - 2) / 2) + 1 = 3, but the
    // 3rd window starts at 2 * 2 - 1 = 3, in the right padding, so PyTorch drops it: 2.
    assert_eq!(pool_len(3, 2, 2, 1, true), 2);
}
