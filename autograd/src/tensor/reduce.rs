//! Reduction kernels: sum, mean and max over any set of axes, argmax, top-k, and `sum_to` (the
//! adjoint of broadcasting).
//!
//! A multi-axis reduction runs as single-axis passes from the last axis to the first, each over
//! a `[outer, n, inner]` view of contiguous data, with runs of adjacent reduced axes merged into one
//! pass (so summing NCHW over H and W is a single pass of row sums).

use super::{buffer_pool, Tensor, PAR_THRESHOLD};
use crate::error::{Error, Result};
use crate::shape::Shape;
use rayon::prelude::*;

#[derive(Clone, Copy)]
enum Reducer {
    Sum,
    Max,
}

impl Tensor {
    /// Sum over `axes` (all when empty), keeping reduced axes as size 1 with `keepdim`.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce("sum", axes, keepdim, Reducer::Sum)
    }

    /// Mean over `axes` (all when empty).
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let ax = self.shape().axes("mean", axes)?;
        let count: usize = ax.iter().map(|&a| self.dims()[a]).product();
        Ok(self
            .reduce("mean", axes, keepdim, Reducer::Sum)?
            .mul_scalar(1.0 / count as f32))
    }

    /// Maximum over `axes` (all when empty). Reducing an empty axis is an error.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.reduce("max", axes, keepdim, Reducer::Max)
    }

    /// The chain rule of `max` (the `max` primitive's): `grad * (self == max) / count`, where
    /// `max` and `grad` have the reduced shape with `keepdim` and `count` is the number of
    /// elements of each reduced group equal to its maximum (ties share the gradient evenly). Over
    /// one run of adjacent axes, such as a pooling window's, it is one pass per group with no
    /// temporaries; otherwise it is the composition of broadcasting kernels. Both give the same
    /// bits: each element is `grad * (hit / count)`.
    pub fn max_backward(&self, max: &Tensor, grad: &Tensor, axes: &[isize]) -> Result<Tensor> {
        let ax = self.shape().axes("max_backward", axes)?;
        let kept = self.shape().reduced(&ax, true);
        if max.shape() != &kept || grad.shape() != &kept {
            return Err(Error::shape(
                "max_backward",
                &[self.shape(), max.shape(), grad.shape()],
                format!("the maximum and its gradient shaped {kept}"),
            ));
        }
        let run = ax.windows(2).all(|w| w[1] == w[0] + 1);
        if !run || ax.is_empty() {
            let hits = self.eq_mask(max)?;
            let weight = hits.div(&hits.sum(axes, true)?)?;
            return grad.broadcast_to(self.shape())?.mul(&weight);
        }
        let (start, end) = (ax[0], ax[ax.len() - 1]);
        let dims = self.dims();
        let outer: usize = dims[..start].iter().product();
        let n: usize = dims[start..=end].iter().product();
        let inner: usize = dims[end + 1..].iter().product();
        // Every group below is written whole.
        let mut out = buffer_pool::try_for_overwrite("max_backward", self.numel())?;
        let (x, m, g) = (self.data(), max.data(), grad.data());
        let group = |o: usize, dst: &mut [f32]| {
            let src = &x[o * n * inner..(o + 1) * n * inner];
            let (mo, go) = (
                &m[o * inner..(o + 1) * inner],
                &g[o * inner..(o + 1) * inner],
            );
            let mut count = vec![0u32; inner];
            for row in src.chunks_exact(inner) {
                for ((c, &v), &mx) in count.iter_mut().zip(row).zip(mo) {
                    *c += (v == mx) as u32;
                }
            }
            for (d_row, row) in dst.chunks_exact_mut(inner).zip(src.chunks_exact(inner)) {
                for (((d, &v), &mx), (&gv, &c)) in
                    d_row.iter_mut().zip(row).zip(mo).zip(go.iter().zip(&count))
                {
                    *d = gv * ((v == mx) as u8 as f32 / c as f32);
                }
            }
        };
        if inner > 0 && n > 0 {
            if out.len() >= PAR_THRESHOLD && outer > 1 {
                out.par_chunks_mut(n * inner)
                    .enumerate()
                    .with_min_len((4096 / (n * inner)).max(1))
                    .for_each(|(o, d)| group(o, d));
            } else {
                out.chunks_mut(n * inner)
                    .enumerate()
                    .for_each(|(o, d)| group(o, d));
            }
        }
        Ok(Tensor::from_parts(out, self.shape().clone()))
    }

    /// Sum of every element, as a rank-0 tensor.
    pub fn sum_all(&self) -> Tensor {
        self.reduce("sum", &[], false, Reducer::Sum)
            .expect("reducing every axis of a valid tensor cannot fail")
    }

    fn reduce(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        r: Reducer,
    ) -> Result<Tensor> {
        let ax = self.shape().axes(op, axes)?;
        if matches!(r, Reducer::Max) && ax.iter().any(|&a| self.dims()[a] == 0) {
            return Err(Error::shape(op, &[self.shape()], "non-empty reduced axes"));
        }
        let out_shape = self.shape().reduced(&ax, keepdim);
        let mut dims: Vec<usize> = self.dims().to_vec();
        // The first pass reads the tensor's own data; later passes their predecessor's output.
        let mut cur: Option<Vec<f32>> = None;
        // Runs of adjacent axes, last run first, each reduced in one pass.
        let mut i = ax.len();
        while i > 0 {
            let end = ax[i - 1];
            let mut start = end;
            i -= 1;
            while i > 0 && ax[i - 1] + 1 == start {
                start -= 1;
                i -= 1;
            }
            let outer: usize = dims[..start].iter().product();
            let n: usize = dims[start..=end].iter().product();
            let inner: usize = dims[end + 1..].iter().product();
            let src = cur.as_deref().unwrap_or(self.data());
            cur = Some(reduce_pass(op, src, outer, n, inner, r)?);
            dims.splice(start..=end, [1]);
        }
        let data = match cur {
            Some(d) => d,
            None => {
                let mut d = buffer_pool::try_for_overwrite(op, self.numel())?;
                d.copy_from_slice(self.data());
                d
            }
        };
        Ok(Tensor::from_parts(data, out_shape))
    }

    /// Sums a broadcast result back to `shape` (which must broadcast to this tensor's shape): the
    /// gradient rule of every broadcasting op.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let b = Shape::broadcast("sum_to", shape, self.shape())?;
        if &b != self.shape() {
            return Err(Error::shape(
                "sum_to",
                &[self.shape(), shape],
                "the target shape to broadcast to the source shape",
            ));
        }
        let off = self.rank() - shape.rank();
        let axes: Vec<isize> = (0..self.rank())
            .filter(|&i| i < off || (shape.dims()[i - off] == 1 && self.dims()[i] != 1))
            .map(|i| i as isize)
            .collect();
        Ok(self.sum(&axes, true)?.reshape_unchecked(shape.clone()))
    }

    /// Index of the largest value along `axis` (the first one on ties), as f32 (exact below 2^24).
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = self.shape().axis("argmax", axis)?;
        let (values, indices) = self.topk(1, axis)?;
        let _ = values;
        let shape = self.shape().reduced(&[a], keepdim);
        Ok(indices.reshape_unchecked(shape))
    }

    /// The `k` largest values along `axis`, in descending order, and their indices (as f32), as
    /// `torch.topk`. Ties keep the lower index first; NaN counts as largest.
    pub fn topk(&self, k: usize, axis: isize) -> Result<(Tensor, Tensor)> {
        let a = self.shape().axis("topk", axis)?;
        let n = self.dims()[a];
        if k == 0 || k > n {
            return Err(Error::invalid(
                "topk",
                format!(
                    "k = {k} must be in 1..={n} for axis {axis} of shape {}",
                    self.shape()
                ),
            ));
        }
        let outer: usize = self.dims()[..a].iter().product();
        let inner: usize = self.dims()[a + 1..].iter().product();
        let mut dims = self.dims().to_vec();
        dims[a] = k;
        let shape = Shape::new(&dims);
        // At most the input's size (k <= n), which may hold nothing with a huge axis.
        let size = shape.check_size("topk")?;
        let mut vals = buffer_pool::try_zeroed("topk", size)?;
        let mut idxs = buffer_pool::try_zeroed("topk", size)?;
        let d = self.data();
        // Filled per group below; empty (not n long) when there is no group.
        let mut order: Vec<usize> = Vec::new();
        for o in 0..outer {
            for i in 0..inner {
                order.clear();
                order.extend(0..n);
                let at = |j: usize| d[(o * n + j) * inner + i];
                order.sort_by(|&x, &y| {
                    let (vx, vy) = (at(x), at(y));
                    let key = |v: f32| if v.is_nan() { f32::INFINITY } else { v };
                    key(vy).total_cmp(&key(vx)).then(x.cmp(&y))
                });
                for (j, &src) in order[..k].iter().enumerate() {
                    vals[(o * k + j) * inner + i] = at(src);
                    idxs[(o * k + j) * inner + i] = src as f32;
                }
            }
        }
        Ok((
            Tensor::from_parts(vals, shape.clone()),
            Tensor::from_parts(idxs, shape),
        ))
    }
}

/// Reduces the middle axis of a contiguous `[outer, n, inner]` array. The result is larger
/// than `x` when the axis is empty (a sum of nothing per cell), hence allocated fallibly.
fn reduce_pass(
    op: &'static str,
    x: &[f32],
    outer: usize,
    n: usize,
    inner: usize,
    r: Reducer,
) -> Result<Vec<f32>> {
    let mut out = buffer_pool::try_zeroed(op, outer * inner)?;
    let block = |o: usize, dst: &mut [f32]| {
        let src = &x[o * n * inner..(o + 1) * n * inner];
        match r {
            Reducer::Sum if inner == 1 => dst[0] = sum_slice(src),
            Reducer::Sum => {
                for k in 0..n {
                    let row = &src[k * inner..(k + 1) * inner];
                    dst.iter_mut().zip(row).for_each(|(d, &s)| *d += s);
                }
            }
            Reducer::Max => {
                dst.copy_from_slice(&src[..inner]);
                for k in 1..n {
                    let row = &src[k * inner..(k + 1) * inner];
                    // A select on a comparison mask (no branch, so it vectorises); NaN wins.
                    dst.iter_mut().zip(row).for_each(|(d, &s)| {
                        let take = (s > *d) | s.is_nan();
                        *d = if take { s } else { *d };
                    });
                }
            }
        }
    };
    if inner == 0 {
        return Ok(out);
    }
    if x.len() >= PAR_THRESHOLD && outer > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .with_min_len((4096 / (n * inner).max(1)).max(1))
            .for_each(|(o, d)| block(o, d));
    } else if x.len() >= PAR_THRESHOLD && inner == 1 && matches!(r, Reducer::Sum) {
        out[0] = sum_long(x);
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| block(o, d));
    }
    Ok(out)
}

/// Elements per partial sum of [`sum_long`].
const SUM_CHUNK: usize = 1 << 14;

/// Sum of a long slice in parallel: a partial sum per fixed chunk of [`SUM_CHUNK`] elements,
/// then the sum of the partials, in chunk order, by [`sum_slice`]. Neither the chunks nor the
/// order of any addition depend on the number of threads (rayon's own `sum` combines partials
/// in an order set by how it split the work), so the result has the same bits on any of them.
fn sum_long(x: &[f32]) -> f32 {
    let mut partials = Vec::with_capacity(x.len().div_ceil(SUM_CHUNK));
    x.par_chunks(SUM_CHUNK)
        .map(sum_slice)
        .collect_into_vec(&mut partials);
    sum_slice(&partials)
}

/// Sum with eight independent accumulators: vectorises, and its error grows more slowly than a
/// single running sum's.
fn sum_slice(s: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = s.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut total = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in rest {
        total += v;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t234() -> Tensor {
        Tensor::arange(0.0, 24.0, 1.0)
            .unwrap()
            .reshape([2, 3, 4])
            .unwrap()
    }

    #[test]
    fn sums_over_axis_sets_match_loops() {
        let t = t234();
        let s = t.sum(&[0, 2], false).unwrap();
        assert_eq!(s.dims(), &[3]);
        for j in 0..3 {
            let mut want = 0.0;
            for i in 0..2 {
                for k in 0..4 {
                    want += t.get(&[i, j, k]).unwrap();
                }
            }
            assert_eq!(s.data()[j], want);
        }
        assert_eq!(t.sum(&[1], true).unwrap().dims(), &[2, 1, 4]);
        assert_eq!(t.sum_all().item().unwrap(), 276.0);
        assert!(t.sum(&[3], false).is_err());
    }

    #[test]
    fn max_argmax_and_topk() {
        let t = Tensor::from_vec(vec![1.0, 5.0, 3.0, 7.0, 2.0, 7.0], [2, 3]).unwrap();
        assert_eq!(t.max(&[1], false).unwrap().to_vec(), vec![5.0, 7.0]);
        assert_eq!(t.argmax(1, false).unwrap().to_vec(), vec![1.0, 0.0]);
        let (v, i) = t.topk(2, -1).unwrap();
        assert_eq!(v.to_vec(), vec![5.0, 3.0, 7.0, 7.0]);
        assert_eq!(i.to_vec(), vec![1.0, 2.0, 0.0, 2.0]);
        assert!(t.topk(4, 1).is_err());
    }

    /// The reference for every sum: one running sum in f64.
    fn naive_sum(x: &[f32]) -> f64 {
        x.iter().map(|&v| v as f64).sum()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

        /// Long rows, through both paths (the parallel one from 32,768 elements): close to the
        /// f64 sum, and bit for bit the fixed chunking (a sum per 16,384 elements, then the
        /// partials in order) computed on one thread.
        #[test]
        fn long_sums_match_the_reference_and_the_fixed_chunking(
            len in 1usize..100_000,
            shift in -2.0f32..2.0,
            seed in 0u64..1000,
        ) {
            let x = Tensor::randn([len], &mut crate::tensor::rng(seed)).add_scalar(shift);
            let got = x.sum_all().item().unwrap();
            let want = naive_sum(x.data());
            let scale: f64 = x.data().iter().map(|&v| v.abs() as f64).sum();
            proptest::prop_assert!((got as f64 - want).abs() <= 1e-5 * scale, "{got} vs {want}");
            if len >= PAR_THRESHOLD {
                let partials: Vec<f32> = x.data().chunks(SUM_CHUNK).map(sum_slice).collect();
                proptest::prop_assert_eq!(got.to_bits(), sum_slice(&partials).to_bits());
            }
        }
    }

    #[test]
    fn sum_to_undoes_broadcasting() {
        let g = Tensor::ones([2, 3, 4]);
        assert_eq!(
            g.sum_to(&Shape::new(&[3, 1])).unwrap().to_vec(),
            vec![8.0; 3]
        );
        assert_eq!(g.sum_to(&Shape::scalar()).unwrap().item().unwrap(), 24.0);
        assert!(g.sum_to(&Shape::new(&[5])).is_err());
    }
}
