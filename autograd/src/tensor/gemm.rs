//! The GEMM kernels behind `matmul`: `c = a @ b` for strided single matrices, on one thread or
//! split over rayon's, through the `gemm` crate or matrixmultiply, whichever is faster for the
//! shape on this CPU ([`gemm_suits`]). The two crates only offer pointer interfaces: the safe
//! wrappers here check every slice against its strides first.

use super::gemm_bounds::check_product;
use super::matmul::PAR_MACS;
use crate::error::Result;
use rayon::prelude::*;

/// `c (m x n, row-major) = a @ b` with the longer of M and N split into `parts` blocks run in
/// parallel.
///
/// The result has the same bits for every `parts` (so for every thread count): splitting M or
/// N leaves each element a dot product over K summed in the same order, as long as K is
/// blocked the same way. matrixmultiply blocks K by a constant of its kernel (`kc`), whatever
/// the size of the block of C. The `gemm` crate (0.19) blocks K by a function of the whole
/// product's M, N and K (and the CPU's L1 cache), never of its thread count: it splits only C
/// among its threads, and every tile of C runs the same microkernel, one fused multiply-add
/// chain per element. But its choices do depend on M and N (up to 64 x 64 it blocks K by 512;
/// a C of up to 256 elements, or a single row or column, takes other kernels), so it is always
/// given the whole product, never blocks of it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_split(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    parts: usize,
) {
    if parts <= 1 || (m * n).saturating_mul(k) < PAR_MACS {
        kernel(m, k, n, a, rsa, csa, b, rsb, csb, c, n, false);
        return;
    }
    if gemm_suits(k) {
        // The `gemm` crate splits the product over rayon's threads itself and writes each
        // block of C in place, even a column block of a wide, short matrix.
        gemm_short(m, k, n, a, rsa, csa, b, rsb, csb, c, n, parts, false);
        return;
    }
    if m >= n {
        // Row blocks of C are contiguous: split C and A by rows.
        let rows = m.div_ceil(parts);
        c.par_chunks_mut(rows * n).enumerate().for_each(|(p, cb)| {
            let r0 = p * rows;
            let mr = cb.len() / n;
            kernel(
                mr,
                k,
                n,
                &a[r0 * rsa..],
                rsa,
                csa,
                b,
                rsb,
                csb,
                cb,
                n,
                false,
            );
        });
    } else {
        // Column blocks: each thread computes C[:, j0..j1] into its own buffer, then they are
        // copied into place (C's column blocks are not contiguous slices).
        let cols = n.div_ceil(parts);
        let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(cols))
            .into_par_iter()
            .map(|p| {
                let j0 = p * cols;
                let nc = cols.min(n - j0);
                let mut buf = vec![0.0f32; m * nc];
                kernel(
                    m,
                    k,
                    nc,
                    a,
                    rsa,
                    csa,
                    &b[j0 * csb..],
                    rsb,
                    csb,
                    &mut buf,
                    nc,
                    false,
                );
                (j0, buf)
            })
            .collect();
        for (j0, buf) in blocks {
            let nc = buf.len() / m;
            for (row, src) in c.chunks_mut(n).zip(buf.chunks(nc)) {
                row[j0..j0 + nc].copy_from_slice(src);
            }
        }
    }
}

/// Inner dimensions up to this run through the `gemm` crate on every CPU.
const SHORT_K: usize = 1024;

/// Whether the `gemm` crate is the faster kernel for an inner dimension `k`. Measured on one
/// thread (GFLOP/s, `gemm` vs matrixmultiply): with AVX2 kernels, LeNet conv1 M=6 K=25 N=784 93
/// vs 27, its weight gradient M=6 K=784 N=25 33 vs 15, 512^3 110 vs 81, a ResNet input gradient
/// M=576 K=64 N=3136 94 vs 60, but a ResNet weight gradient M=64 K=3136 N=576 25 vs 86: so
/// long inner dimensions went to matrixmultiply. With AVX-512 kernels `gemm` wins those too:
/// M=64 K=3136 N=576 93 vs 86, 2048^3 109 vs 101, M=128 K=12544 N=1152 100 vs 91.
fn gemm_suits(k: usize) -> bool {
    k <= SHORT_K || avx512()
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    // The feature set of the `gemm` crate's AVX-512 kernels (x86-64-v4).
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512cd")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512() -> bool {
    false
}

/// `c (m x n, row stride rsc) = a @ b` (`+=` with `accumulate`) on one thread, with the faster
/// of the two kernels for the shape ([`gemm_suits`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn kernel(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    if gemm_suits(k) {
        gemm_short(m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, 1, accumulate);
    } else {
        let beta = if accumulate { 1.0 } else { 0.0 };
        if let Err(e) = sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, 1) {
            // The callers build every operand from checked shapes.
            panic!("{e}");
        }
    }
}

/// Safe wrapper over the `gemm` crate's f32 product `c = a @ b` (or `c += a @ b` with
/// `accumulate`), on `threads` of rayon's threads (1: the calling thread only). Panics if the
/// slices and strides fail [`check_product`]: its callers build them from checked shapes.
#[allow(clippy::too_many_arguments)]
fn gemm_short(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    threads: usize,
    accumulate: bool,
) {
    let dims = (m, k, n);
    if let Err(e) = check_product(
        "gemm",
        dims,
        (a, rsa, csa),
        (b, rsb, csb),
        (c.len(), rsc, 1),
    ) {
        panic!("{e}");
    }
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `check_product` bounds every element the product reads in `a` and `b` and writes
    // in `c` by the slices' lengths, with extents computed without overflow, and makes the
    // elements of `c` distinct (the crate writes blocks of `c` from several threads); `c` is
    // borrowed mutably, so it aliases neither input; the strides fit in isize. The crate
    // computes `c = alpha c + beta a b` when `read_dst`; otherwise `c` is only written (alpha
    // is ignored), so its previous contents do not matter. m = 0 or n = 0 returned above, so
    // no pointer is offset for an empty output; k = 0 reads nothing of `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            rsc as isize,
            accumulate,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            match threads {
                0 | 1 => gemm::Parallelism::None,
                t => gemm::Parallelism::Rayon(t),
            },
        );
    }
}

/// Safe wrapper over `matrixmultiply::sgemm`: `c = alpha * a @ b + beta * c` for an `m x k` matrix
/// `a` and a `k x n` matrix `b` read through row and column strides, written into the `m x n`
/// matrix `c` through its strides.
///
/// Fails, naming the operand, if a stride exceeds `isize::MAX`, if a matrix does not fit in its
/// slice (extents are computed without overflow), or if `c`'s strides make two of its elements
/// share a cell; nothing is read or written then.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) -> Result<()> {
    let dims = (m, k, n);
    check_product(
        "sgemm",
        dims,
        (a, rsa, csa),
        (b, rsb, csb),
        (c.len(), rsc, csc),
    )?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    // SAFETY: matrixmultiply only offers a pointer interface. `check_product` bounds every
    // index it reads in `a` and `b` and writes in `c` by the slices' lengths (extents computed
    // without overflow), and makes the elements of `c` distinct; `c` is borrowed mutably, so it
    // aliases neither input; the strides fit in isize. An empty output returned above; k = 0
    // reads nothing of `a` or `b` (c becomes beta c).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{rng, Tensor};

    fn bits(c: &[f32]) -> Vec<u32> {
        c.iter().map(|v| v.to_bits()).collect()
    }

    /// matrixmultiply's blocks of rows or columns of C have the bits of the whole product: the
    /// property that makes `gemm_split`'s result independent of `parts`. Inner dimensions span
    /// several of its K blocks; A is read transposed in one case.
    #[test]
    fn matrixmultiply_blocks_of_c_have_the_bits_of_the_whole_product() {
        let mut g = rng(5);
        for (m, k, n, a_transposed) in [(37, 1500, 29, false), (20, 2100, 90, true)] {
            let a = Tensor::randn([m, k], &mut g);
            let b = Tensor::randn([k, n], &mut g);
            let a = if a_transposed {
                a.transpose(0, 1).unwrap()
            } else {
                a
            };
            let (rsa, csa) = if a_transposed { (1, m) } else { (k, 1) };
            let mut whole = vec![0.0; m * n];
            let (a, b) = (a.data(), b.data());
            sgemm(m, k, n, 1.0, a, rsa, csa, b, n, 1, 0.0, &mut whole, n, 1).unwrap();
            for parts in [2, 3, 7] {
                let rows = m.div_ceil(parts);
                let mut by_rows = vec![0.0; m * n];
                for (p, cb) in by_rows.chunks_mut(rows * n).enumerate() {
                    let mr = cb.len() / n;
                    sgemm(
                        mr,
                        k,
                        n,
                        1.0,
                        &a[p * rows * rsa..],
                        rsa,
                        csa,
                        b,
                        n,
                        1,
                        0.0,
                        cb,
                        n,
                        1,
                    )
                    .unwrap();
                }
                assert_eq!(
                    bits(&by_rows),
                    bits(&whole),
                    "{m}x{k}x{n} in {parts} row blocks"
                );
                let cols = n.div_ceil(parts);
                let mut by_cols = vec![0.0; m * n];
                for j0 in (0..n).step_by(cols) {
                    let nc = cols.min(n - j0);
                    let c = &mut by_cols[j0..];
                    sgemm(m, k, nc, 1.0, a, rsa, csa, &b[j0..], n, 1, 0.0, c, n, 1).unwrap();
                }
                assert_eq!(
                    bits(&by_cols),
                    bits(&whole),
                    "{m}x{k}x{n} in {parts} column blocks"
                );
            }
        }
    }

    /// The edges of `gemm_short`'s checks, which its `unsafe` call relies on: an empty output
    /// touches nothing (whatever the strides), an empty inner dimension writes zeros (or keeps
    /// C when accumulating), and a slice too short for its strides, an extent that overflows or
    /// an output whose rows overlap is refused before the call.
    #[test]
    fn gemm_short_checks_its_edges() {
        let one = [1.0f32; 4];
        let mut c = [7.0f32; 4];
        gemm_short(
            0,
            2,
            2,
            &[],
            usize::MAX / 2,
            1,
            &one,
            2,
            1,
            &mut [],
            0,
            1,
            false,
        );
        gemm_short(2, 0, 2, &[], 0, 0, &[], 0, 0, &mut c, 2, 1, true);
        assert_eq!(c, [7.0; 4]);
        gemm_short(2, 0, 2, &[], 0, 0, &[], 0, 0, &mut c, 2, 1, false);
        assert_eq!(c, [0.0; 4]);
        gemm_short(2, 2, 2, &one, 2, 1, &one, 2, 1, &mut c, 2, 2, false);
        assert_eq!(c, [2.0; 4]);
        let refused =
            |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
        assert!(refused(&|| {
            gemm_short(
                2,
                2,
                2,
                &one[..3],
                2,
                1,
                &one,
                2,
                1,
                &mut [0.0; 4],
                2,
                1,
                false,
            )
        }));
        assert!(refused(&|| {
            gemm_short(
                3,
                1,
                1,
                &one,
                1 << 63,
                1,
                &one,
                1,
                1,
                &mut [0.0; 4],
                1,
                1,
                false,
            )
        }));
        assert!(refused(&|| {
            gemm_short(2, 2, 2, &one, 2, 1, &one, 2, 1, &mut [0.0; 4], 1, 1, false)
        }));
    }

    /// The `gemm` crate gives the same bits on any number of threads, overwriting or
    /// accumulating: it splits C among them, never K. Shapes take its main kernels with K in one
    /// block and in several, and (B read transposed) its kernel for small C.
    #[test]
    fn gemm_crate_has_the_same_bits_on_any_number_of_threads() {
        let mut g = rng(6);
        for (m, k, n, b_transposed) in [
            (300, 70, 200, false),
            (150, 2500, 90, false),
            (10, 3000, 20, true),
        ] {
            let a = Tensor::randn([m, k], &mut g);
            let b = Tensor::randn([k, n], &mut g);
            let c0 = Tensor::randn([m, n], &mut g);
            let (rsb, csb) = if b_transposed { (1, k) } else { (n, 1) };
            let b = if b_transposed {
                b.transpose(0, 1).unwrap()
            } else {
                b
            };
            let (a, b) = (a.data(), b.data());
            let run = |threads: usize, accumulate: bool| {
                let mut c = c0.to_vec();
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    gemm_short(
                        m, k, n, a, k, 1, b, rsb, csb, &mut c, n, threads, accumulate,
                    )
                });
                bits(&c)
            };
            for accumulate in [false, true] {
                let want = run(1, accumulate);
                for threads in [2, 3, 7] {
                    assert_eq!(run(threads, accumulate), want, "{m}x{k}x{n} on {threads}");
                }
            }
        }
    }
}
