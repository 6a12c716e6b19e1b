//! Matrix multiplication: 2-d and batched with broadcast batch dimensions, through the `gemm`
//! crate's kernels (and matrixmultiply's sgemm for long inner dimensions on CPUs without AVX-512,
//! where it is the faster one; see the `gemm` module).
//!
//! Either operand may be read transposed (`Transpose`) without a copy, since both kernels take any
//! strides; the backward rules of matmul use this. Work is parallel with rayon: over the batch when
//! it has at least as many matrices as threads, otherwise the product itself is split (by the
//! `gemm` crate, or into one block of rows or columns per thread).

use super::gemm::{gemm_split, kernel};
use super::{buffer_pool, Tensor};
use crate::error::{Error, Result};
use crate::shape::Shape;
use rayon::prelude::*;

/// Whether a matmul operand is read as stored or transposed (its last two axes swapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    No,
    Yes,
}

/// Below this many multiply-accumulates a matmul runs on one thread.
pub(crate) const PAR_MACS: usize = 1 << 16;

impl Tensor {
    /// `torch.matmul`: 2-d, batched, with NumPy broadcasting of the batch dimensions; a 1-d
    /// operand is promoted to a matrix (a row on the left, a column on the right) and the added
    /// dimension is removed from the result.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        if self.rank() == 0 || other.rank() == 0 {
            return Err(Error::shape(
                "matmul",
                &[self.shape(), other.shape()],
                "operands of rank 1 or more",
            ));
        }
        let a = if self.rank() == 1 {
            self.reshape_unchecked(Shape::new(&[1, self.numel()]))
        } else {
            self.clone()
        };
        let b = if other.rank() == 1 {
            other.reshape_unchecked(Shape::new(&[other.numel(), 1]))
        } else {
            other.clone()
        };
        let c = a.matmul_t(&b, Transpose::No, Transpose::No)?;
        let mut dims = c.dims().to_vec();
        if other.rank() == 1 {
            dims.pop();
        }
        if self.rank() == 1 {
            let r = dims.len();
            dims.remove(r - if other.rank() == 1 { 1 } else { 2 });
        }
        Ok(c.reshape_unchecked(Shape::new(&dims)))
    }

    /// Batched `op(a) @ op(b)` for operands of rank >= 2, where `op` transposes the last two axes
    /// when asked. Batch dimensions broadcast.
    pub fn matmul_t(&self, other: &Tensor, ta: Transpose, tb: Transpose) -> Result<Tensor> {
        let p = Plan::new(self, other, ta, tb)?;
        if ta == Transpose::Yes && p.batch.numel() > 1 && self.numel() == p.mat_a && p.m > 1 {
            // One matrix read transposed by every product of a batch (a convolution's input
            // gradient, Wᵀ G_i): the kernel would repack it, strided, for each item; laid out
            // row-major once, it is read as stored. The input gradient of VGG-16's and
            // ResNet-18's last 3x3 layers (Wᵀ [4608, 512] by G_i [512, 49], batch 8): 114-128
            // GFLOP/s read strided, 185-201 with the copy (on 2 threads).
            let rows = self.transpose(-2, -1)?;
            return rows.matmul_t(other, Transpose::No, tb);
        }
        let (m, n, nb) = (p.m, p.n, p.batch.numel());
        if (ta, tb) == (Transpose::No, Transpose::Yes) && m < n && p.k >= m.max(64) {
            // `a bᵀ` computed as `(b aᵀ)ᵀ`: with its longer side first, the product streams the
            // larger operand (a linear layer's weights) along its rows. AlexNet's first fully
            // connected layer at batch 8 (x [8, 9216] by Wᵀ, W [4096, 9216]): 20.5 ms, 10.5 as
            // `(W xᵀ)ᵀ`; at batch 64 34.7 and 17.5; but with a short inner dimension the
            // transposed copy costs more than it saves ([256, 32] by [4096, 32]ᵀ: 0.35 against
            // 0.96 ms).
            let r = p.batch.rank() as isize;
            return other.matmul_t(self, ta, tb)?.transpose(r, r + 1);
        }
        let mut dims = p.batch.dims().to_vec();
        dims.extend([m, n]);
        let shape = Shape::new(&dims);
        // Every product writes its whole block (the kernels do not read C).
        let mut out = buffer_pool::try_for_overwrite("matmul", shape.check_size("matmul")?)?;
        if m * n == 0 || p.k == 0 {
            // An empty inner dimension sums nothing: zeros.
            out.fill(0.0);
            return Ok(Tensor::from_parts(out, shape));
        }
        // The thread count picks the split, not the result: each element of C is one dot
        // product, summed in the same order however the batch or C is split (see `gemm_split`).
        let threads = rayon::current_num_threads();
        if (nb * m * n).saturating_mul(p.k) < PAR_MACS || threads == 1 {
            out.chunks_mut(m * n)
                .enumerate()
                .for_each(|(i, c)| p.product(i, c, 1, false));
        } else if nb >= threads {
            out.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|(i, c)| p.product(i, c, 1, false));
        } else {
            out.chunks_mut(m * n)
                .enumerate()
                .for_each(|(i, c)| p.product(i, c, threads, false));
        }
        Ok(Tensor::from_parts(out, shape))
    }

    /// `matmul_t` summed over its batch: the `[m, n]` matrix `sum_i op(a_i) @ op(b_i)`, each
    /// share of the batch accumulated in place, so the batch of products is never stored. This
    /// is the weight gradient of a convolution (a sum over the images of the batch) and equals
    /// `matmul_t` followed by a sum over the batch axes, up to rounding. The shares and the order
    /// of every sum depend on the shapes only, never on the number of threads, so the result has
    /// the same bits on any of them.
    pub fn matmul_t_sum_batch(
        &self,
        other: &Tensor,
        ta: Transpose,
        tb: Transpose,
    ) -> Result<Tensor> {
        let p = Plan::new(self, other, ta, tb)?;
        let (m, n, nb) = (p.m, p.n, p.batch.numel());
        let shape = Shape::new(&[m, n]);
        let size = shape.check_size("matmul")?;
        if size == 0 || nb == 0 || p.k == 0 {
            return Ok(Tensor::from_parts(
                buffer_pool::try_zeroed("matmul", size)?,
                shape,
            ));
        }
        let threads = rayon::current_num_threads();
        let packed = nb > 1 && p.k < PACK_K && m * n >= PACK_MN;
        if !packed && m < n {
            // Summed as Cᵀ = sum op(b_i)ᵀ op(a_i)ᵀ, then transposed: the `gemm` crate runs
            // faster with C taller than wide. A ResNet-18 weight gradient (G_i [64, 3136] by
            // unfolded [576, 3136]ᵀ, batch 8, 2 threads): 120 GFLOP/s as [64, 576], 273-277
            // as [576, 64]; its first layer's ([64, 147]): 168-172 against 238-243.
            let flip = |t| match t {
                Transpose::No => Transpose::Yes,
                Transpose::Yes => Transpose::No,
            };
            let ct = other.matmul_t_sum_batch(self, flip(tb), flip(ta))?;
            return ct.transpose(0, 1);
        }
        if packed {
            // A short inner dimension and a large C: accumulating would stream C through memory
            // once per item for little arithmetic each time. Laying the items side by side
            // along k instead makes one product with a long inner dimension.
            let (a, rsa, csa) = p.pack(Operand::A)?;
            let (b, rsb, csb) = p.pack(Operand::B)?;
            let mut c = buffer_pool::try_for_overwrite("matmul", m * n)?;
            gemm_split(m, nb * p.k, n, &a, rsa, csa, &b, rsb, csb, &mut c, threads);
            return Ok(Tensor::from_parts(c, shape));
        }
        let macs = nb.saturating_mul(m * n).saturating_mul(p.k);
        let parts = if macs < PAR_MACS {
            1
        } else {
            (macs / SHARE_MACS)
                .clamp(2, MAX_SHARES)
                .min(nb)
                .min((SHARES_FLOATS / (m * n)).max(2))
        };
        // `parts` contiguous shares of the batch, their sizes differing by one at most (a batch
        // of 10 in 8 shares is 5 items per half, not 6 and 4), each accumulated in batch order
        // into its own C; then the shares' sums added in share order. Rayon may run the shares
        // on any threads.
        let accumulate = |s: usize| {
            // In u128: `s * nb` may exceed usize for a huge batch of empty matrices.
            let share = |s: usize| (s as u128 * nb as u128 / parts as u128) as usize;
            let (first, end) = (share(s), share(s + 1));
            // Recycled storage, which the first product overwrites: eight fresh accumulators of
            // 590 KB (a ResNet-18 layer2 weight gradient) made the sum 30% slower than one, on
            // one thread; recycled, they cost the same.
            let mut c = buffer_pool::try_for_overwrite("matmul", m * n)?;
            for i in first..end {
                p.product(i, &mut c, 1, i > first);
            }
            Ok(c)
        };
        let sums: Vec<Vec<f32>> = if parts == 1 {
            vec![accumulate(0)?]
        } else {
            (0..parts)
                .into_par_iter()
                .map(accumulate)
                .collect::<Result<_>>()?
        };
        let mut rest = sums.into_iter();
        let mut total = rest.next().expect("one share at least");
        for s in rest {
            total.iter_mut().zip(&s).for_each(|(t, &v)| *t += v);
            // Back to the pool for the next step's shares.
            drop(buffer_pool::Storage::new(s));
        }
        Ok(Tensor::from_parts(total, shape))
    }
}

/// `matmul_t_sum_batch` packs the batch into one product when the inner dimension is below this
/// and C has at least `PACK_MN` elements (a C beyond the L2 cache, and per-thread accumulators
/// of that size). Measured on ResNet-18 training steps (batch 8, 2 threads, three runs each):
/// 12.5-13.4 img/s packing below k = 256, 11.8-12.0 without packing, and peak memory 1.23 vs
/// 1.53 GB; packing only below k = 128 measured the same as 256 (12.1-12.7 img/s). Products
/// timed alone disagree in part (GFLOP/s, accumulating vs packed): k = 49, C 512 x 4608, 163-174
/// vs 171-175, but k = 196, C 256 x 2304, 192-196 vs 142-150.
const PACK_K: usize = 256;
const PACK_MN: usize = 1 << 16;

/// `matmul_t_sum_batch` sums a large batch in at most this many shares: enough to keep eight
/// threads busy, and a number set by the shapes alone (never the thread count), so that the
/// sum has the same bits on any number of threads.
const MAX_SHARES: usize = 8;
/// ... one share per this many multiply-adds, at least two: a LeNet-5 weight gradient (8-15M)
/// in two shares, not eight, whose accumulators and sums made its training steps 5% slower
/// on two threads (9,213 vs 9,666 img/s, medians of four interleaved runs).
const SHARE_MACS: usize = 32 << 20;
/// ... and in as many as fit this many accumulator elements (16 MiB), but at least two: the C
/// of a VGG-16 layer (512 x 4608) is summed in two shares, not eight copies of it.
const SHARES_FLOATS: usize = 1 << 22;

#[derive(Clone, Copy, PartialEq)]
enum Operand {
    A,
    B,
}

/// A checked batched product: sizes, batch shape, and where each operand's matrices start.
struct Plan<'a> {
    m: usize,
    k: usize,
    n: usize,
    batch: Shape,
    a: &'a [f32],
    b: &'a [f32],
    /// Broadcast strides (in matrices) of each operand's batch axes.
    sa: smallvec::SmallVec<[usize; 6]>,
    sb: smallvec::SmallVec<[usize; 6]>,
    /// Elements of one matrix of each operand.
    mat_a: usize,
    mat_b: usize,
    /// Row and column strides of op(a) and op(b).
    rsa: usize,
    csa: usize,
    rsb: usize,
    csb: usize,
}

impl<'a> Plan<'a> {
    fn new(a: &'a Tensor, b: &'a Tensor, ta: Transpose, tb: Transpose) -> Result<Plan<'a>> {
        let err = |what: &str| {
            Error::shape(
                "matmul",
                &[a.shape(), b.shape()],
                format!("{what} (transposed: {ta:?}, {tb:?})"),
            )
        };
        if a.rank() < 2 || b.rank() < 2 {
            return Err(err("operands of rank 2 or more"));
        }
        let (ra, rb) = (a.rank(), b.rank());
        let (ar, ac) = (a.dims()[ra - 2], a.dims()[ra - 1]);
        let (br, bc) = (b.dims()[rb - 2], b.dims()[rb - 1]);
        let (m, k) = if ta == Transpose::Yes {
            (ac, ar)
        } else {
            (ar, ac)
        };
        let (k2, n) = if tb == Transpose::Yes {
            (bc, br)
        } else {
            (br, bc)
        };
        if k != k2 {
            return Err(err(&format!("the inner dimensions to agree ({k} vs {k2})")));
        }
        let batch_a = Shape::new(&a.dims()[..ra - 2]);
        let batch_b = Shape::new(&b.dims()[..rb - 2]);
        let batch = Shape::broadcast("matmul", &batch_a, &batch_b)
            .map_err(|_| err("batch dimensions that broadcast"))?;
        let (rsa, csa) = if ta == Transpose::Yes {
            (1, ac)
        } else {
            (ac, 1)
        };
        let (rsb, csb) = if tb == Transpose::Yes {
            (1, bc)
        } else {
            (bc, 1)
        };
        Ok(Plan {
            m,
            k,
            n,
            sa: batch_a.broadcast_strides(&batch),
            sb: batch_b.broadcast_strides(&batch),
            batch,
            a: a.data(),
            b: b.data(),
            mat_a: ar * ac,
            mat_b: br * bc,
            rsa,
            csa,
            rsb,
            csb,
        })
    }

    /// Offset (in matrices) of batch item `i` for an operand with broadcast strides `strides`.
    fn offset(&self, strides: &[usize], i: usize) -> usize {
        let (mut rem, mut off) = (i, 0);
        for ax in (0..self.batch.rank()).rev() {
            off += (rem % self.batch.dims()[ax]) * strides[ax];
            rem /= self.batch.dims()[ax];
        }
        off
    }

    /// The batch of op(a_i) (`[m, k]` each) side by side as one `[m, nb k]` matrix, or of op(b_i)
    /// (`[k, n]` each) stacked as one `[nb k, n]` matrix; returned with its row and column
    /// strides. The copy runs along whichever axis is contiguous in the source.
    fn pack(&self, which: Operand) -> Result<(buffer_pool::Storage, usize, usize)> {
        let (nb, k) = (self.batch.numel(), self.k);
        let (data, strides, mat, rs, cs, other) = match which {
            Operand::A => (self.a, &self.sa, self.mat_a, self.rsa, self.csa, self.m),
            Operand::B => (self.b, &self.sb, self.mat_b, self.csb, self.rsb, self.n),
        };
        // For both operands, element (k index p, other index q) of item i sits at
        // `p * cs + q * rs` in its matrix (for A, q is the row; for B, the column).
        let size = Shape::new(&[nb, k, other]).check_size("matmul")?;
        let mut out = buffer_pool::try_for_overwrite("matmul", size)?;
        let wide = nb * k;
        let item = |i: usize| &data[self.offset(strides, i) * mat..][..mat];
        if cs == 1 {
            // Runs along k: `other` rows of `nb k`, item i's run at column i k.
            out.par_chunks_mut(wide).enumerate().for_each(|(q, row)| {
                for (i, run) in row.chunks_mut(k).enumerate() {
                    run.copy_from_slice(&item(i)[q * rs..][..k]);
                }
            });
        } else {
            // Runs along the other axis (rs == 1): `nb k` rows of `other`.
            out.par_chunks_mut(other).enumerate().for_each(|(r, row)| {
                let (i, p) = (r / k, r % k);
                row.copy_from_slice(&item(i)[p * cs..][..other]);
            });
        }
        // As a matrix of (k index, other index), the packed layout has strides
        // (1, nb k) for runs along k and (other, 1) otherwise.
        let (sk, so) = if cs == 1 { (1, wide) } else { (other, 1) };
        // Storage, so that the buffer goes back to the pool for the next step's product: freed,
        // it was faulted in again every step (with the copies on one thread, a ResNet-18
        // layer3 weight gradient ran at 118 GFLOP/s; pooled and parallel, 225).
        let out = buffer_pool::Storage::new(out);
        Ok(match which {
            // A is m x (nb k): row stride is the stride of its other index.
            Operand::A => (out, so, sk),
            // B is (nb k) x n: row stride is the stride of its k index.
            Operand::B => (out, sk, so),
        })
    }

    /// `c = op(a_i) @ op(b_i)`, or `c += ...` with `accumulate`, on `threads` threads.
    fn product(&self, i: usize, c: &mut [f32], threads: usize, accumulate: bool) {
        let pa = &self.a[self.offset(&self.sa, i) * self.mat_a..][..self.mat_a];
        let pb = &self.b[self.offset(&self.sb, i) * self.mat_b..][..self.mat_b];
        let (m, k, n) = (self.m, self.k, self.n);
        let (rsa, csa, rsb, csb) = (self.rsa, self.csa, self.rsb, self.csb);
        if accumulate {
            kernel(m, k, n, pa, rsa, csa, pb, rsb, csb, c, n, true);
        } else {
            gemm_split(m, k, n, pa, rsa, csa, pb, rsb, csb, c, threads);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::rng;
    use crate::tensor::sgemm;

    /// The textbook triple loop, the reference for every fast path.
    fn naive(a: &Tensor, b: &Tensor) -> Tensor {
        let (m, k, n) = (a.dims()[0], a.dims()[1], b.dims()[1]);
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a.data()[i * k + p] * b.data()[p * n + j];
                }
            }
        }
        Tensor::from_vec(c, [m, n]).unwrap()
    }

    #[test]
    fn fast_paths_match_the_naive_kernel() {
        let mut g = rng(1);
        // Small, row-split and column-split shapes; short and long inner dimensions (the two
        // kernels), an empty one.
        for &(m, k, n) in &[
            (3, 4, 5),
            (300, 70, 20),
            (20, 70, 300),
            (1, 9, 1),
            (6, 25, 784),
            (6, 1500, 25),
            (70, 1100, 90),
            (3, 0, 4),
        ] {
            let a = Tensor::randn([m, k], &mut g);
            let b = Tensor::randn([k, n], &mut g);
            let want = naive(&a, &b);
            assert!(a.matmul(&b).unwrap().allclose(&want, 1e-4, 1e-4));
            let at = a.transpose(0, 1).unwrap();
            let bt = b.transpose(0, 1).unwrap();
            let got = at.matmul_t(&bt, Transpose::Yes, Transpose::Yes).unwrap();
            assert!(got.allclose(&want, 1e-4, 1e-4));
        }
    }

    /// The reference for `matmul_t_sum_batch` on `[nb, m, k]` and `[nb, n, k]` operands: a sum
    /// over the batch of textbook products, in f64.
    fn naive_sum_batch(a: &Tensor, b: &Tensor) -> Vec<f64> {
        let (nb, m, k, n) = (a.dims()[0], a.dims()[1], a.dims()[2], b.dims()[1]);
        let mut c = vec![0.0; m * n];
        for i in 0..nb {
            for r in 0..m {
                for j in 0..n {
                    for p in 0..k {
                        let x = a.data()[(i * m + r) * k + p] as f64;
                        c[r * n + j] += x * b.data()[(i * n + j) * k + p] as f64;
                    }
                }
            }
        }
        c
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Batches summed in one share or several (from 65,536 multiply-accumulates), as the
        /// weight gradient of a convolution reads them (`[O, L] x [K, L]^T` per image).
        #[test]
        fn batch_sums_match_the_reference(
            (nb, m, k, n) in (1usize..12, 1usize..20, 1usize..400, 1usize..40),
            seed in 0u64..1000,
        ) {
            let mut g = rng(seed);
            let a = Tensor::randn([nb, m, k], &mut g);
            let b = Tensor::randn([nb, n, k], &mut g);
            let got = a.matmul_t_sum_batch(&b, Transpose::No, Transpose::Yes).unwrap();
            let want = naive_sum_batch(&a, &b);
            let tol = 1e-5 * (nb * k) as f64;
            for (&x, &y) in got.data().iter().zip(&want) {
                proptest::prop_assert!((x as f64 - y).abs() <= tol, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn sgemm_overwrites_or_accumulates_through_any_strides() {
        let mut g = rng(3);
        let (m, k, n) = (7, 1100, 5);
        let a = Tensor::randn([m, k], &mut g);
        let b = Tensor::randn([k, n], &mut g);
        let want = naive(&a, &b);
        let start = Tensor::randn([m, n], &mut g);
        // A read transposed through its strides; beta 0 ignores C, beta 1 adds to it.
        let at = a.transpose(0, 1).unwrap();
        for beta in [0.0, 1.0] {
            let mut c = start.to_vec();
            sgemm(
                m,
                k,
                n,
                1.0,
                at.data(),
                1,
                m,
                b.data(),
                n,
                1,
                beta,
                &mut c,
                n,
                1,
            )
            .unwrap();
            let expected = want.add(&start.mul_scalar(beta)).unwrap();
            let got = Tensor::from_vec(c, [m, n]).unwrap();
            assert!(got.allclose(&expected, 1e-3, 1e-3));
        }
    }

    #[test]
    fn batch_dims_broadcast_and_vectors_promote() {
        let mut g = rng(2);
        let a = Tensor::randn([2, 1, 3, 4], &mut g);
        let b = Tensor::randn([5, 4, 2], &mut g);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.dims(), &[2, 5, 3, 2]);
        let a1 = a.narrow(0, 1, 1).unwrap().reshape([3, 4]).unwrap();
        let b3 = b.narrow(0, 3, 1).unwrap().reshape([4, 2]).unwrap();
        let want = naive(&a1, &b3);
        let got = c.narrow(0, 1, 1).unwrap().narrow(1, 3, 1).unwrap();
        assert!(got.reshape([3, 2]).unwrap().allclose(&want, 1e-5, 1e-5));
        let v = Tensor::randn([4], &mut g);
        assert_eq!(v.matmul(&v).unwrap().dims(), &[] as &[usize]);
        assert_eq!(a.matmul(&v).unwrap().dims(), &[2, 1, 3]);
        assert!(a.matmul(&Tensor::zeros([3, 3])).is_err());
    }
}
