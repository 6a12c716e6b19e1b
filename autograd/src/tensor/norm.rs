//! Batch-norm kernels over the channels (axis 1) of `[N, C, ...]` data: per-channel statistics,
//! the per-channel affine map, and the two per-channel sums its chain rule needs. Each is one or
//! two passes over the data, where the composition of elementwise ops makes a dozen.
//!
//! The data of channel `c` is `N` contiguous blocks of `S` (the product of the axes after 1), at
//! `(n C + c) S`. Sums run per channel in f64, so they stay accurate over large batches.

use super::{buffer_pool, Tensor, PAR_THRESHOLD};
use rayon::prelude::*;

impl Tensor {
    /// `(N, C, S)` of `[N, C, ...]` data (rank 2 or more).
    fn channel_layout(&self) -> (usize, usize, usize) {
        let d = self.dims();
        (d[0], d[1], d[2..].iter().product())
    }

    /// For each channel `c`, `f(c, blocks)` where `blocks` yields the channel's `N` blocks of
    /// `S` elements of `data` (laid out like `self`); in parallel over channels when large.
    fn per_channel<'a, T: Send>(
        &self,
        data: &[&'a [f32]],
        f: impl Fn(usize, &dyn Fn(usize, usize) -> &'a [f32]) -> T + Sync,
    ) -> Vec<T> {
        let (_, c, s) = self.channel_layout();
        let one = |ch: usize| {
            let block = |which: usize, i: usize| &data[which][(i * c + ch) * s..][..s];
            f(ch, &block)
        };
        if self.numel() >= PAR_THRESHOLD && c > 1 {
            (0..c).into_par_iter().map(one).collect()
        } else {
            (0..c).map(one).collect()
        }
    }

    /// Mean and biased variance of each channel, in two passes (the variance of the deviations
    /// from the mean, accurate when |mean| >> std).
    pub(crate) fn channel_mean_var(&self) -> (Vec<f32>, Vec<f32>) {
        let (n, _, s) = self.channel_layout();
        let count = (n * s).max(1) as f64;
        let stats = self.per_channel(&[self.data()], |_, block| {
            let sum: f64 = (0..n).map(|i| sum64(block(0, i))).sum();
            let mean = sum / count;
            let m = mean as f32;
            let sq: f64 = (0..n)
                .map(|i| {
                    let b = block(0, i);
                    let mut acc = [0.0f32; 8];
                    let chunks = b.chunks_exact(8);
                    let rest = chunks.remainder();
                    for ch in chunks {
                        for k in 0..8 {
                            let d = ch[k] - m;
                            acc[k] += d * d;
                        }
                    }
                    let tail: f32 = rest.iter().map(|&v| (v - m) * (v - m)).sum();
                    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
                })
                .sum();
            (mean as f32, (sq / count) as f32)
        });
        stats.into_iter().unzip()
    }

    /// `(x - mean_c) * scale_c + shift_c` for every element of channel `c`.
    pub(crate) fn channel_affine(&self, mean: &[f32], scale: &[f32], shift: &[f32]) -> Tensor {
        let (_, c, s) = self.channel_layout();
        let mut out = buffer_pool::for_overwrite(self.numel());
        let x = self.data();
        for_each_block(&mut out, s, |i, o| {
            let ch = i % c;
            let (m, k, b) = (mean[ch], scale[ch], shift[ch]);
            for (o, &v) in o.iter_mut().zip(&x[i * s..][..s]) {
                *o = (v - m) * k + b;
            }
        });
        Tensor::from_parts(out, self.shape().clone())
    }

    /// Per channel, `sum(g)` and `sum(g * xhat)` with `xhat = (x - mean) * inv_std` (`self` is
    /// `x`, `grad` is `g`, shaped alike): the bias and weight gradients of batch norm.
    pub(crate) fn channel_grad_sums(
        &self,
        grad: &Tensor,
        mean: &[f32],
        inv_std: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let (n, _, _) = self.channel_layout();
        let sums = self.per_channel(&[self.data(), grad.data()], |ch, block| {
            let (m, k) = (mean[ch], inv_std[ch]);
            let mut sg = 0.0f64;
            let mut sgx = 0.0f64;
            for i in 0..n {
                let (x, g) = (block(0, i), block(1, i));
                sg += sum64(g);
                // Eight lanes, as `sum64`: one running sum would be a chain of dependent adds.
                let mut acc = [0.0f32; 8];
                let (xs, gs) = (x.chunks_exact(8), g.chunks_exact(8));
                let tail: f32 = xs
                    .remainder()
                    .iter()
                    .zip(gs.remainder())
                    .map(|(&x, &g)| g * (x - m))
                    .sum();
                for (x, g) in xs.zip(gs) {
                    for l in 0..8 {
                        acc[l] += g[l] * (x[l] - m);
                    }
                }
                let dot: f64 = acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64;
                sgx += dot * k as f64;
            }
            (sg as f32, sgx as f32)
        });
        sums.into_iter().unzip()
    }
}

impl Tensor {
    /// `p_c g + r_c (x - mean_c) + q_c` for every element of channel `c` (`self` is `x`, `grad`
    /// is `g`, shaped alike): batch norm's input gradient, whose per-channel constants come from
    /// [`Tensor::channel_grad_sums`].
    pub(crate) fn channel_grad_input(
        &self,
        grad: &Tensor,
        mean: &[f32],
        p: &[f32],
        r: &[f32],
        q: &[f32],
    ) -> Tensor {
        let (_, c, s) = self.channel_layout();
        let mut out = buffer_pool::for_overwrite(self.numel());
        let (x, g) = (self.data(), grad.data());
        for_each_block(&mut out, s, |i, o| {
            let ch = i % c;
            let (m, p, r, q) = (mean[ch], p[ch], r[ch], q[ch]);
            for ((o, &x), &g) in o.iter_mut().zip(&x[i * s..][..s]).zip(&g[i * s..][..s]) {
                *o = p * g + r * (x - m) + q;
            }
        });
        Tensor::from_parts(out, self.shape().clone())
    }
}

/// Calls `f(i, block)` for each block `i` of `s` elements of `out` (block `i` is sample
/// `i / C`, channel `i % C`), in parallel when the data is large.
fn for_each_block(out: &mut [f32], s: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if s == 0 {
        return;
    }
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(s)
            .enumerate()
            .with_min_len((4096 / s).max(1))
            .for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(s).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// Sum of a slice with eight f32 lanes, returned in f64.
fn sum64(s: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let chunks = s.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + rest.iter().map(|&v| v as f64).sum::<f64>()
}
