//! The layouts the kernels choose for speed give the textbook results: a transposition copied
//! in tiles, a shared matrix laid out row-major once for a batch of products, a batch summed in
//! the transposed orientation or packed side by side. Each is compared with an element-by-element
//! reference in f64 on shapes that cross the tile size and the thresholds of each path.

use proptest::prelude::*;
use tapegrad_autograd::{rng, Tensor, Transpose};

/// `op(x)` element `(r, c)` of a matrix stored `[rows, cols]` row-major.
fn at(x: &[f32], cols: usize, t: Transpose, r: usize, c: usize) -> f64 {
    match t {
        Transpose::No => x[r * cols + c] as f64,
        Transpose::Yes => x[c * cols + r] as f64,
    }
}

/// `sum_i op(a_i) @ op(b_i)` (with `a` broadcast when it has one matrix), `[m, n]` per item or
/// summed, in f64, for `a` stored `[nb_a, ra, ca]` and `b` stored `[nb, rb, cb]`.
fn reference(a: &Tensor, b: &Tensor, ta: Transpose, tb: Transpose, sum: bool) -> Vec<f64> {
    let (ad, bd) = (a.dims(), b.dims());
    let (ra, ca) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (rb, cb) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    let nb = b.numel() / (rb * cb);
    let shared = a.numel() == ra * ca;
    let (m, k) = if ta == Transpose::No {
        (ra, ca)
    } else {
        (ca, ra)
    };
    let n = if tb == Transpose::No { cb } else { rb };
    let items = if sum { 1 } else { nb };
    let mut c = vec![0.0; items * m * n];
    let (av, bv) = (a.to_vec(), b.to_vec());
    for i in 0..nb {
        let ai = if shared {
            &av[..]
        } else {
            &av[i * ra * ca..][..ra * ca]
        };
        let bi = &bv[i * rb * cb..][..rb * cb];
        let out = if sum { 0 } else { i * m * n };
        for r in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += at(ai, ca, ta, r, p) * at(bi, cb, tb, p, j);
                }
                c[out + r * n + j] += s;
            }
        }
    }
    c
}

fn close(got: &Tensor, want: &[f64], k: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.numel(), want.len());
    let tol = 1e-5 * k as f64 + 1e-5;
    for (i, (&x, &y)) in got.to_vec().iter().zip(want).enumerate() {
        prop_assert!(
            (x as f64 - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
    Ok(())
}

fn transpose_flag(yes: bool) -> Transpose {
    if yes {
        Transpose::Yes
    } else {
        Transpose::No
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Every permutation of a rank-2 to rank-4 tensor moves each element where the indices say,
    /// whether it is copied row by row or, for a swap of the two innermost axes, in tiles.
    #[test]
    fn permutations_move_every_element(
        dims in prop::collection::vec(1usize..40, 2..=4),
        pick in any::<prop::sample::Index>(),
        seed in 0u64..1000,
    ) {
        let x = Tensor::randn(dims.clone(), &mut rng(seed));
        let rank = dims.len();
        // Every permutation: the tuples of axes that use each axis once.
        let perms: Vec<Vec<usize>> = (0..rank.pow(rank as u32))
            .map(|code| (0..rank).map(|i| code / rank.pow(i as u32) % rank).collect::<Vec<_>>())
            .filter(|p| (0..rank).all(|a| p.contains(&a)))
            .collect();
        let perm = pick.get(&perms);
        let y = x.permute(perm).unwrap();
        let (xs, ys) = (x.shape().strides(), y.shape().strides());
        let (xv, yv) = (x.to_vec(), y.to_vec());
        for (flat, &v) in yv.iter().enumerate() {
            // The output index, axis by axis, and where it came from.
            let mut from = 0;
            for (ax, &p) in perm.iter().enumerate() {
                from += (flat / ys[ax]) % y.dims()[ax] * xs[p];
            }
            prop_assert_eq!(v.to_bits(), xv[from].to_bits());
        }
    }

    /// A matrix shared by a batch of products and read transposed (as a convolution's input
    /// gradient reads its weights) gives each item's product.
    #[test]
    fn a_shared_transposed_matrix_multiplies_each_item(
        (nb, m, k, n) in (2usize..6, 1usize..40, 1usize..40, 1usize..30),
        tb in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let mut g = rng(seed);
        let a = Tensor::randn([k, m], &mut g);
        let tb = transpose_flag(tb);
        let b = if tb == Transpose::No {
            Tensor::randn([nb, k, n], &mut g)
        } else {
            Tensor::randn([nb, n, k], &mut g)
        };
        let got = a.matmul_t(&b, Transpose::Yes, tb).unwrap();
        prop_assert_eq!(got.dims(), &[nb, m, n]);
        let want = reference(&a, &b, Transpose::Yes, tb, false);
        close(&got, &want, k)?;
    }

    /// Products in every pair of transpositions, one matrix or a batch on the left: with a
    /// long inner dimension and C wider than tall, `a bᵀ` is computed as `(b aᵀ)ᵀ`.
    #[test]
    fn products_in_every_layout(
        (nb, m, k, n) in prop_oneof![
            (1usize..4, 1usize..30, 1usize..40, 1usize..30),
            (1usize..4, 1usize..20, 60usize..130, 20usize..60),
        ],
        (ta, tb, batched_a) in (any::<bool>(), any::<bool>(), any::<bool>()),
        seed in 0u64..1000,
    ) {
        let mut g = rng(seed);
        let (ta, tb) = (transpose_flag(ta), transpose_flag(tb));
        let na = if batched_a { nb } else { 1 };
        let a = match ta {
            Transpose::No => Tensor::randn([na, m, k], &mut g),
            Transpose::Yes => Tensor::randn([na, k, m], &mut g),
        };
        let b = match tb {
            Transpose::No => Tensor::randn([nb, k, n], &mut g),
            Transpose::Yes => Tensor::randn([nb, n, k], &mut g),
        };
        let got = a.matmul_t(&b, ta, tb).unwrap();
        prop_assert_eq!(got.dims(), &[nb, m, n]);
        let want = reference(&a, &b, ta, tb, false);
        close(&got, &want, k)?;
    }

    /// A batch of products summed, for every pair of transpositions: C taller or wider than it
    /// is long (computed in either orientation), and C of 65,536 elements or more with a short
    /// inner dimension (the items packed side by side into one product).
    #[test]
    fn batch_sums_in_every_layout(
        (nb, m, k, n) in prop_oneof![
            (1usize..6, 1usize..30, 1usize..50, 1usize..30),
            (2usize..4, 260usize..300, 1usize..40, 260usize..300),
        ],
        (ta, tb) in (any::<bool>(), any::<bool>()),
        seed in 0u64..1000,
    ) {
        let mut g = rng(seed);
        let (ta, tb) = (transpose_flag(ta), transpose_flag(tb));
        let a = match ta {
            Transpose::No => Tensor::randn([nb, m, k], &mut g),
            Transpose::Yes => Tensor::randn([nb, k, m], &mut g),
        };
        let b = match tb {
            Transpose::No => Tensor::randn([nb, k, n], &mut g),
            Transpose::Yes => Tensor::randn([nb, n, k], &mut g),
        };
        let got = a.matmul_t_sum_batch(&b, ta, tb).unwrap();
        prop_assert_eq!(got.dims(), &[m, n]);
        let want = reference(&a, &b, ta, tb, true);
        close(&got, &want, nb * k)?;
    }
}
