//! The tape's contract: backward, fan-out, detach, no-grad, retained graphs, higher order.

use tapegrad_autograd::{BackwardOptions, Error, Param, Tape, Tensor};

fn t(v: &[f32]) -> Tensor {
    Tensor::from_slice(v)
}

#[test]
fn chain_rule_on_a_scalar_example() {
    // z = f(x, y) = x*y + sin-free: z = x*y + x^2; dz/dx = y + 2x, dz/dy = x.
    let tape = Tape::new();
    let x = tape.var(Tensor::scalar(3.0));
    let y = tape.var(Tensor::scalar(-2.0));
    let z = x * y + x.square();
    let g = z.backward().unwrap();
    assert_eq!(g.get(x).unwrap().item().unwrap(), -2.0 + 6.0);
    assert_eq!(g.get(y).unwrap().item().unwrap(), 3.0);
}

#[test]
fn fan_out_sums_both_paths() {
    // y = x + relu(x) (a residual join); for x > 0 dy/dx = 2, for x < 0 it is 1.
    let tape = Tape::new();
    let x = tape.var(t(&[2.0, -1.0]));
    let y = (x + x.relu()).sum(&[], false).unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.get(x).unwrap().to_vec(), vec![2.0, 1.0]);
}

#[test]
fn detach_and_no_grad_stop_gradients() {
    let tape = Tape::new();
    let x = tape.var(t(&[1.0, 2.0]));
    let y = (x * x.detach()).sum(&[], false).unwrap();
    // d/dx (x * c) = c with c = x's value.
    assert_eq!(
        y.backward().unwrap().get(x).unwrap().to_vec(),
        vec![1.0, 2.0]
    );
    let before = tape.len();
    let z = tape.no_grad(|| x.exp());
    assert!(!z.requires_grad());
    assert_eq!(tape.len(), before + 1);
    let inf = Tape::inference();
    let a = inf.var(t(&[1.0]));
    assert!(!a.exp().requires_grad());
}

#[test]
fn backward_rejects_bad_calls() {
    let tape = Tape::new();
    let x = tape.var(t(&[1.0, 2.0]));
    let y = x.exp();
    assert!(matches!(y.backward(), Err(Error::NotScalar(_))));
    assert!(y.backward_with(Tensor::ones([3])).is_err());
    let s = y.sum(&[], false).unwrap();
    s.backward().unwrap();
    // The closures were released by the first pass.
    assert!(matches!(s.backward(), Err(Error::GraphReleased { .. })));
    // Nothing to differentiate: a constant output is an error, as in PyTorch.
    let c = tape.input(t(&[1.0])).exp().sum(&[], false).unwrap();
    assert!(c
        .backward()
        .unwrap_err()
        .to_string()
        .contains("requires a gradient"));
    let inf = Tape::inference();
    assert!(inf
        .var(t(&[1.0]))
        .exp()
        .sum(&[], false)
        .unwrap()
        .backward()
        .is_err());
    let other = Tape::new();
    let w = other.var(t(&[1.0, 2.0]));
    assert!(matches!(x.add(w), Err(Error::ForeignTape { .. })));
}

#[test]
fn retain_graph_allows_a_second_pass() {
    let tape = Tape::new();
    let x = tape.var(t(&[1.0, 2.0]));
    let s = x.exp().sum(&[], false).unwrap();
    let opts = BackwardOptions {
        retain_graph: true,
        ..Default::default()
    };
    let g1 = s
        .backward_with_options(Tensor::scalar(1.0), opts)
        .unwrap()
        .get(x)
        .unwrap();
    let g2 = s.backward().unwrap().get(x).unwrap();
    assert_eq!(g1, g2);
}

#[test]
fn params_are_recorded_without_copy_and_found_in_grads() {
    let p = Param::new(t(&[1.0, -2.0]));
    let tape = Tape::new();
    let w = tape.param(&p);
    assert!(w.value().shares_storage(p.value()));
    // The same parameter recorded twice is one node: shared weights sum their gradients.
    let w2 = tape.param(&p);
    assert_eq!(w.id(), w2.id());
    let y = (w * w2).sum(&[], false).unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.param(&p).unwrap().to_vec(), vec![2.0, -4.0]);
}

#[test]
fn backward_drops_its_temporaries() {
    let tape = Tape::new();
    let x = tape.var(Tensor::ones([4, 4]));
    let y = x.tanh().sigmoid().exp().sum(&[], false).unwrap();
    let before = tape.len();
    y.backward().unwrap();
    assert_eq!(tape.len(), before);
}

#[test]
fn second_derivative_of_tanh_matches_closed_form() {
    // d/dx tanh = 1 - tanh^2; d2/dx2 tanh = -2 tanh (1 - tanh^2).
    let xs = [-2.0f32, -0.5, 0.0, 0.7, 1.5];
    let tape = Tape::new();
    let x = tape.var(t(&xs));
    let y = x.tanh().sum(&[], false).unwrap();
    let opts = BackwardOptions {
        create_graph: true,
        ..Default::default()
    };
    let g = y.backward_with_options(Tensor::scalar(1.0), opts).unwrap();
    let dx = g.var(x).unwrap();
    let g2 = dx
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap()
        .get(x)
        .unwrap();
    for (i, &v) in xs.iter().enumerate() {
        let th = v.tanh();
        assert!((dx.value().data()[i] - (1.0 - th * th)).abs() < 1e-6);
        let want = -2.0 * th * (1.0 - th * th);
        assert!(
            (g2.data()[i] - want).abs() < 1e-5,
            "{} vs {want}",
            g2.data()[i]
        );
    }
}

#[test]
fn profiling_counts_each_op_forward_and_backward() {
    let tape = Tape::new();
    assert!(tape.profile().is_none(), "profiling is off by default");
    tape.set_profiling(true);
    let x = tape.var(Tensor::randn([64, 64], &mut tapegrad_autograd::rng(0)));
    let w = tape.var(Tensor::randn([64, 64], &mut tapegrad_autograd::rng(1)));
    let h = x.matmul(w).unwrap().relu();
    let y = h.matmul(w).unwrap().sum(&[], false).unwrap();
    let before = tape.profile().unwrap();
    assert_eq!(before.op("matmul").unwrap().calls, 2);
    assert_eq!(before.op("matmul").unwrap().backward_calls, 0);
    assert_eq!(before.op("variable").unwrap().calls, 2);
    y.backward().unwrap();
    let p = tape.profile().unwrap();
    let mm = p.op("matmul").unwrap();
    // The chain rules' own products are not counted as forward calls.
    assert_eq!((mm.calls, mm.backward_calls), (2, 2));
    assert_eq!(p.op("relu").unwrap().backward_calls, 1);
    assert_eq!(p.op("sum").unwrap().calls, 1);
    assert!(mm.backward > std::time::Duration::ZERO);
    // Leaves have no chain rule.
    assert_eq!(p.op("variable").unwrap().backward_calls, 0);
    // Slowest first, and the table names every op.
    assert!(p.ops.windows(2).all(|w| w[0].total() >= w[1].total()));
    let table = p.to_string();
    for op in ["matmul", "relu", "sum", "variable", "all"] {
        assert!(table.contains(op), "{table}");
    }
    // Two steps merged, then averaged back to one.
    let mut two = p.clone();
    two.merge(&p);
    assert_eq!(two.op("matmul").unwrap().calls, 4);
    assert_eq!(two.per_step(2).op("matmul").unwrap().calls, 2);
    assert_eq!(two.total(), p.total() * 2);
    tape.set_profiling(false);
    assert!(tape.profile().is_none());
}

#[test]
fn the_param_grad_hook_sees_each_final_gradient_last_layer_first() {
    // h = a * x, y = b * h + b (b used twice: its gradient sums both uses before the hook sees
    // it). With x = 2, a = 3, b = 4: h = 6, dy/db = h + 1 = 7, dy/da = b * x = 8.
    use std::cell::RefCell;
    use std::rc::Rc;
    let a = Param::new(Tensor::scalar(3.0));
    let b = Param::new(Tensor::scalar(4.0));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let tape = Tape::new();
    let log = seen.clone();
    tape.on_param_grad(move |id, g| {
        log.borrow_mut().push((id, g.item()?));
        Ok(())
    });
    let x = tape.input(Tensor::scalar(2.0));
    let (pa, pb) = (tape.param(&a), tape.param(&b));
    let h = pa * x;
    let y = pb * h + pb;
    let g = y.backward().unwrap();
    assert_eq!(*seen.borrow(), vec![(b.id(), 7.0), (a.id(), 8.0)]);
    assert_eq!(g.param(&a).unwrap().item().unwrap(), 8.0);

    // An error from the hook ends backward with it.
    let tape = Tape::new();
    tape.on_param_grad(|_, _| Err(Error::invalid("hook", "refused")));
    let y = tape.param(&a) * tape.input(Tensor::scalar(2.0));
    let e = y.backward().unwrap_err().to_string();
    assert!(e.contains("refused"), "{e}");
}
