//! Hostile shapes for `Var`: every op on a tape, with dimensions drawn from {0, 1, 2, 7, 2^31,
//! 2^62, usize::MAX}, random axes and options, followed by a backward pass where the op
//! succeeded; and vars of two tapes, which every op refuses. Every call returns `Ok` or `Err`
//! (an infallible op may panic with a message); none may crash the process.

mod hostile;

use hostile::{axis, config, option, related, returns, returns_or_explains, shape, tensor, Capped};
use proptest::prelude::*;
use tapegrad_autograd::{rng, DropoutMode, RunningStats, Shape, Tape, Tensor, Transpose, Var};
use tapegrad_nn::loss::{Reduction, VarLosses};

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// `f`, then backward from the sum of its result when it succeeded: both must return.
fn with_backward<'t>(
    what: &str,
    f: impl FnOnce() -> tapegrad_autograd::Result<Var<'t>>,
) -> hostile::Checked {
    returns(what, || {
        let y = f()?;
        y.sum(&[], false)?.backward()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn movement((d, target) in related(), seed in 0u64..100, a in axis(), b in axis(),
                start in option(), len in option(),
                pads in proptest::collection::vec((option(), option()), 0..5),
                perm in proptest::collection::vec(0usize..5, 0..5),
                infer in proptest::collection::vec(prop_oneof![Just(-1isize), 0isize..8,
                    Just(isize::MAX)], 0..5)) {
        let tape = Tape::new();
        let x = tape.var(tensor(&d, seed));
        let y = tape.var(tensor(&target, seed + 1));
        with_backward("reshape", || x.reshape(target.clone()))?;
        with_backward("reshape_infer", || x.reshape_infer(&infer))?;
        with_backward("flatten", || x.flatten(start))?;
        with_backward("permute", || x.permute(&perm))?;
        with_backward("transpose", || x.transpose(a, b))?;
        with_backward("broadcast_to", || x.broadcast_to(target.clone()))?;
        with_backward("narrow", || x.narrow(a, start, len))?;
        with_backward("pad", || x.pad(&pads, 1.0))?;
        with_backward("concat", || Var::concat(&[x, y, x], a))?;
        with_backward("stack", || Var::stack(&[x, x], a))?;
        with_backward("unsqueeze", || x.unsqueeze(a))?;
        with_backward("sum_to", || x.sum_to(&Shape::new(&target)))?;
    }

    #[test]
    fn elementwise((d, e) in related(), seed in 0u64..100, s in -3.0f32..3.0) {
        let tape = Tape::new();
        let x = tape.var(tensor(&d, seed));
        let y = tape.var(tensor(&e, seed + 1));
        with_backward("add", || x.add(y))?;
        with_backward("sub", || x.sub(y))?;
        with_backward("mul", || x.mul(y))?;
        with_backward("div", || x.div(y))?;
        with_backward("maximum", || x.maximum(y))?;
        with_backward("minimum", || x.minimum(y))?;
        with_backward("where_cond", || Var::where_cond(x.gt(y)?, x, y))?;
        returns("masks", || Ok((x.gt(y)?, x.ge(y)?, x.lt(y)?, x.le(y)?, x.eq_mask(y)?)))?;
        with_backward("clamp", || x.clamp(-s.abs(), s.abs()))?;
        with_backward("unary", || {
            Ok(x.neg().exp().log().sqrt().abs().powf(s).square().sigmoid().tanh().relu()
                .leaky_relu(0.1).swish().elu(1.0).step().add_scalar(s).mul_scalar(s)
                .sub_scalar(s).div_scalar(s))
        })?;
        returns_or_explains("operators", || (x + y, x - y, x * y, x / y, -x, x + s, s * x))?;
    }

    #[test]
    fn reductions_and_losses(d in shape(), seed in 0u64..100, keep in any::<bool>(),
                             axes in proptest::collection::vec(axis(), 0..4), a in axis(),
                             labels in proptest::collection::vec(option(), 0..8)) {
        let tape = Tape::new();
        let x = tape.var(tensor(&d, seed));
        let t = tape.var(tensor(&d, seed + 1));
        with_backward("sum", || x.sum(&axes, keep))?;
        with_backward("mean", || x.mean(&axes, keep))?;
        with_backward("max", || x.max(&axes, keep))?;
        with_backward("softmax", || x.softmax(a))?;
        with_backward("log_softmax", || x.log_softmax(a))?;
        with_backward("mse", || x.mse(t))?;
        with_backward("mse_with", || x.mse_with(t, Reduction::Sum))?;
        with_backward("bce_with_logits", || x.bce_with_logits(t, Reduction::Mean))?;
        with_backward("nll_loss", || x.nll_loss(&labels, Reduction::Mean))?;
        with_backward("cross_entropy", || x.cross_entropy(&labels))?;
        with_backward("cross_entropy_with", || x.cross_entropy_with(&labels, 0.1, Reduction::None))?;
        returns("dropout", || x.dropout(0.5, true, DropoutMode::Inverted, &mut rng(seed)))?;
        returns("backward_with", || x.backward_with(tensor(&d, seed + 2)))?;
        returns("item", || x.item())?;
    }

    #[test]
    fn matmul_linear_and_norm((d, e) in related(), seed in 0u64..100,
                              training in any::<bool>()) {
        let tape = Tape::new();
        let x = tape.var(tensor(&d, seed));
        let w = tape.var(tensor(&e, seed + 1));
        with_backward("matmul", || x.matmul(w))?;
        with_backward("matmul_t", || x.matmul_t(w, Transpose::Yes, Transpose::No))?;
        with_backward("linear", || x.linear(w, None))?;
        let c = d.get(1).copied().unwrap_or(1).min(9);
        let wc = tape.var(tensor(&[c], seed + 2));
        let (mut mean, mut var) = (tensor(&[c], seed), Tensor::ones([c]));
        let r = RunningStats { mean: &mut mean, var: &mut var, momentum: 0.1 };
        with_backward("batch_norm", || x.batch_norm(Some(r), Some(wc), Some(wc), training, 1e-5))?;
        with_backward("batch_norm plain", || x.batch_norm(None, None, None, training, 1e-5))?;
    }

    /// Two tapes: every op on vars of both is an error (never a gradient sent to the node
    /// with the same id on the other tape).
    #[test]
    fn two_tapes(d in proptest::collection::vec(1usize..4, 1..5), seed in 0u64..100) {
        let (t1, t2) = (Tape::new(), Tape::new());
        let x = t1.var(tensor(&d, seed));
        let y = t2.var(tensor(&d, seed));
        let refused = |what: &str, r: tapegrad_autograd::Result<Var<'_>>| -> hostile::Checked {
            prop_assert!(r.is_err(), "{} accepted vars of two tapes", what);
            Ok(())
        };
        refused("add", x.add(y))?;
        refused("sub", y.sub(x))?;
        refused("mul", x.mul(y))?;
        refused("div", x.div(y))?;
        refused("maximum", x.maximum(y))?;
        refused("where", Var::where_cond(x, x, y))?;
        refused("gt", x.gt(y))?;
        refused("concat", Var::concat(&[x, y], 0))?;
        refused("stack", Var::stack(&[x, y], 0))?;
        refused("mse", x.mse(y))?;
        refused("matmul", x.matmul(y.transpose(0, -1).unwrap_or(y)))?;
        let c = d.get(1).copied().unwrap_or(1);
        let wc = t2.var(Tensor::ones([c]));
        refused("batch_norm", x.batch_norm(None, Some(wc), None, true, 1e-5))?;
        refused("batch_norm eval", x.batch_norm(None, None, Some(wc), false, 1e-5))?;
    }
}
