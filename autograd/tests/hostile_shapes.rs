//! Hostile shapes for `Tensor`: every constructor and op, with dimensions drawn from
//! {0, 1, 2, 7, 2^31, 2^62, usize::MAX} and random options, returns `Ok` or `Err` (an
//! infallible constructor may panic with a message); none may crash the process. Windows and
//! convolutions are in `hostile_windows.rs`, vars and tapes in `hostile_vars.rs`.

mod hostile;

use hostile::{
    axis, config, dim, dims, option, related, returns, returns_or_explains, shape, tensor, Capped,
};
use proptest::prelude::*;
use tapegrad_autograd::{rng, Shape, Tensor, Transpose};

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn transpose() -> impl Strategy<Value = Transpose> {
    prop_oneof![Just(Transpose::No), Just(Transpose::Yes)]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn constructors(d in prop_oneof![dims(4), shape()], v in -2.0f32..2.0, seed in 0u64..100) {
        let s = Shape::new(&d);
        let _ = s.checked_numel();
        returns("check_size", || s.check_size("t"))?;
        returns("try_zeros", || Tensor::try_zeros(d.clone()))?;
        returns("try_ones", || Tensor::try_ones(d.clone()))?;
        returns("try_full", || Tensor::try_full(d.clone(), v))?;
        returns("try_randn", || Tensor::try_randn(d.clone(), &mut rng(seed)))?;
        returns("try_rand", || Tensor::try_rand(d.clone(), -1.0, 1.0, &mut rng(seed)))?;
        returns("from_vec", || Tensor::from_vec(vec![v; 4], d.clone()))?;
        returns("from_vec empty", || Tensor::from_vec(vec![], d.clone()))?;
        returns_or_explains("zeros", || Tensor::zeros(d.clone()))?;
        returns_or_explains("ones", || Tensor::ones(d.clone()))?;
        returns_or_explains("full", || Tensor::full(d.clone(), v))?;
        returns_or_explains("randn", || Tensor::randn(d.clone(), &mut rng(seed)))?;
        returns_or_explains("rand", || Tensor::rand(d.clone(), 0.0, 1.0, &mut rng(seed)))?;
        returns_or_explains("numel", || s.numel())?;
        returns_or_explains("strides", || s.strides())?;
    }

    #[test]
    fn arange(start in prop_oneof![Just(0.0f32), Just(-1e30), Just(f32::MAX)],
              end in prop_oneof![Just(1.0f32), Just(1e30), Just(f32::INFINITY), Just(f32::NAN)],
              step in prop_oneof![Just(1.0f32), Just(1e-30), Just(0.0), Just(-1.0)]) {
        returns("arange", || Tensor::arange(start, end, step))?;
    }

    #[test]
    fn movement((d, target) in related(), seed in 0u64..100,
                a in axis(), b in axis(), start in option(), len in option(),
                pads in proptest::collection::vec((option(), option()), 0..5),
                perm in proptest::collection::vec(0usize..5, 0..5),
                infer in proptest::collection::vec(prop_oneof![Just(-1isize), Just(-2), 0isize..8,
                    Just(isize::MAX), Just(1 << 40)], 0..5)) {
        let t = tensor(&d, seed);
        returns("reshape", || t.reshape(target.clone()))?;
        returns("reshape_infer", || t.reshape_infer(&infer))?;
        returns("permute", || t.permute(&perm))?;
        returns("transpose", || t.transpose(a, b))?;
        returns("broadcast_to", || t.broadcast_to(target.clone()))?;
        returns("narrow", || t.narrow(a, start, len))?;
        returns("pad", || t.pad(&pads, 0.5))?;
        returns("concat", || Tensor::concat(&[&t, &tensor(&target, seed)], a))?;
        returns("concat self", || Tensor::concat(&[&t, &t, &t], a))?;
        returns("stack", || Tensor::stack(&[&t, &t], a))?;
        returns("get", || t.get(&target))?;
        returns("item", || t.item())?;
        returns("sum_to", || t.sum_to(&Shape::new(&target)))?;
    }

    #[test]
    fn elementwise((d, e) in related(), seed in 0u64..100, s in -3.0f32..3.0) {
        let (x, y) = (tensor(&d, seed), tensor(&e, seed + 1));
        returns("add", || x.add(&y))?;
        returns("sub", || x.sub(&y))?;
        returns("mul", || x.mul(&y))?;
        returns("div", || x.div(&y))?;
        returns("maximum", || x.maximum(&y))?;
        returns("minimum", || x.minimum(&y))?;
        returns("gt", || x.gt(&y))?;
        returns("ge", || x.ge(&y))?;
        returns("lt", || x.lt(&y))?;
        returns("le", || x.le(&y))?;
        returns("eq_mask", || x.eq_mask(&y))?;
        returns("where_cond", || Tensor::where_cond(&x.gt(&x)?, &x, &y))?;
        returns("zip_with", || x.zip_with(&y, "t", |a, b| a * b + s))?;
        returns_or_explains("unary", || {
            (x.neg(), x.exp(), x.log(), x.sqrt(), x.abs(), x.powf(s), x.sigmoid(), x.tanh(),
             x.relu(), x.add_scalar(s), x.mul_scalar(s), x.map(|v| v + s), x.sum_all())
        })?;
        returns_or_explains("compare", || (x.allclose(&y, 1e-5, 1e-5), x.max_abs_diff(&y),
            x == y, x.to_string()))?;
    }

    #[test]
    fn reductions(d in shape(), seed in 0u64..100, keep in any::<bool>(),
                  axes in proptest::collection::vec(axis(), 0..4), a in axis(), k in option()) {
        let x = tensor(&d, seed);
        returns("sum", || x.sum(&axes, keep))?;
        returns("mean", || x.mean(&axes, keep))?;
        returns("max", || x.max(&axes, keep))?;
        returns("argmax", || x.argmax(a, keep))?;
        returns("topk", || x.topk(k, a))?;
        returns("max_backward", || {
            let m = x.max(&axes, true)?;
            x.max_backward(&m, &m, &axes)
        })?;
        returns("max_backward mismatched", || x.max_backward(&x, &x, &axes))?;
    }

    #[test]
    fn matmul((d, e) in related(), seed in 0u64..100,
              ta in transpose(), tb in transpose(), m in dim(), k in dim(), n in dim()) {
        let (x, y) = (tensor(&d, seed), tensor(&e, seed + 1));
        returns("matmul", || x.matmul(&y))?;
        returns("matmul_t", || x.matmul_t(&y, ta, tb))?;
        returns("matmul_t_sum_batch", || x.matmul_t_sum_batch(&y, ta, tb))?;
        // The shapes of the report: huge inner or outer dimensions, one of them empty.
        let a = tensor(&[m, k], seed);
        let b = tensor(&[k, n], seed);
        returns("matmul [m, k] [k, n]", || a.matmul(&b))?;
        returns("matmul_t_sum_batch [m, k] [k, n]", || {
            a.matmul_t_sum_batch(&b, Transpose::No, Transpose::No)
        })?;
    }

    #[test]
    fn sgemm(m in option(), k in option(), n in option(),
             strides in proptest::collection::vec(option(), 6),
             len in prop_oneof![Just(0usize), Just(1), Just(16), Just(64)]) {
        let a = vec![1.0f32; len];
        let b = vec![1.0f32; len];
        let mut c = vec![0.0f32; len];
        let s = &strides;
        returns("sgemm", || tapegrad_autograd::tensor::sgemm(
            m, k, n, 1.0, &a, s[0], s[1], &b, s[2], s[3], 0.5, &mut c, s[4], s[5]))?;
    }
}
