//! One family of random cases per composition of the gradient suites (tests/gradients.rs,
//! tests/losses_nd.rs, tests/higher_order.rs, autograd/tests/conv.rs, nn's loss tests), plus a
//! residual block: their gradients come from the tape, through the rules of their parts.

use super::gen::*;
use super::{Case, Family};
use rand::Rng as _;
use tapegrad_autograd::{
    rng, BackwardOptions, Conv2dOptions, DropoutMode, Error, Pool2dOptions, RunningStats, Tensor,
    Var,
};
use tapegrad_nn::loss::{Reduction, VarLosses};

fn reduction(g: &mut Rng) -> Reduction {
    [Reduction::Mean, Reduction::Sum, Reduction::None][g.gen_range(0..3)]
}

use tapegrad_autograd::Rng;

/// `[n, c, h, w]` images with small random sizes.
fn images(g: &mut Rng, min_hw: usize) -> Vec<usize> {
    vec![
        g.gen_range(1..=2),
        g.gen_range(1..=3),
        g.gen_range(min_hw..=5),
        g.gen_range(min_hw..=5),
    ]
}

/// Scores `[n, c]` in `[-3, 3)` and a label per row.
fn scored(g: &mut Rng) -> (Tensor, Vec<usize>) {
    let (n, c) = (g.gen_range(1..=4), g.gen_range(2..=5));
    let labels = (0..n).map(|_| g.gen_range(0..c)).collect();
    (uniform(g, &[n, c], -3.0, 3.0), labels)
}

/// Stride 1 or 2, padding 0 or 1 (inputs of 3 or more fit every kernel up to 3).
fn conv_options(g: &mut Rng) -> Conv2dOptions {
    Conv2dOptions::default()
        .stride(g.gen_range(1..=2))
        .padding(g.gen_range(0..=1))
}

pub fn families() -> Vec<Family> {
    vec![
        // The flake's case: a mean over axis sets, of values of both signs.
        Family::new("mean", |g| {
            let d = dims(g, 0, 4);
            let (ax, keep) = (axes(g, d.len()), g.gen_bool(0.5));
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].mean(&ax, keep)
            })
        }),
        Family::new("linear", |g| {
            let (i, o) = (g.gen_range(1..=4), g.gen_range(1..=4));
            let mut xd = dims(g, 0, 2);
            xd.push(i);
            let ins = vec![
                uniform(g, &xd, -2.0, 2.0),
                uniform(g, &[o, i], -2.0, 2.0),
                uniform(g, &[o], -2.0, 2.0),
            ];
            Case::new(ins, |_, v| v[0].linear(v[1], Some(v[2])))
        }),
        Family::new("softmax", |g| {
            let d = dims(g, 1, 3);
            let axis = g.gen_range(0..d.len()) as isize;
            Case::new(vec![uniform(g, &d, -3.0, 3.0)], move |_, v| {
                v[0].softmax(axis)
            })
        }),
        Family::new("log_softmax", |g| {
            let d = dims(g, 1, 3);
            let axis = g.gen_range(0..d.len()) as isize;
            Case::new(vec![uniform(g, &d, -3.0, 3.0)], move |_, v| {
                v[0].log_softmax(axis)
            })
        }),
        Family::new("swish", |g| {
            let d = dims(g, 0, 3);
            Case::new(vec![uniform(g, &d, -4.0, 4.0)], |_, v| Ok(v[0].swish()))
        }),
        Family::new("leaky_relu and elu", |g| {
            let d = dims(g, 0, 3);
            let (slope, alpha) = (g.gen_range(0.01f32..0.3), g.gen_range(0.5f32..2.0));
            Case::new(vec![away(g, &d, 0.1, 2.0)], move |_, v| {
                v[0].leaky_relu(slope).add(v[0].elu(alpha))
            })
        }),
        Family::new("clamp", |g| {
            // Bounds 0.5 and -0.5 (on the grid's half units, never within 0.3 of a value);
            // some values inside, where the gradient is not 0.
            let d = dims(g, 1, 3);
            let mut x = grid(g, &d, 0.0).to_vec();
            x[0] = 0.05;
            let x = Tensor::from_vec(x, d).unwrap();
            Case::new(vec![x], |_, v| v[0].clamp(-0.5, 0.5))
        }),
        Family::new("mse", |g| {
            let d = dims(g, 0, 3);
            let r = reduction(g);
            let ins = vec![uniform(g, &d, -2.0, 2.0), uniform(g, &d, -2.0, 2.0)];
            Case::new(ins, move |_, v| v[0].mse_with(v[1], r))
        }),
        Family::new("nll", |g| {
            let ((x, labels), r) = (scored(g), reduction(g));
            Case::new(vec![x], move |_, v| v[0].nll_loss(&labels, r))
        }),
        Family::new("cross_entropy", |g| {
            let ((x, labels), r) = (scored(g), reduction(g));
            let eps = if g.gen_bool(0.5) {
                0.0
            } else {
                g.gen_range(0.05f32..0.5)
            };
            Case::new(vec![x], move |_, v| {
                v[0].cross_entropy_with(&labels, eps, r)
            })
        }),
        Family::new("cross_entropy over pixels", |g| {
            // Scores [n, c, h, w], a label per pixel (losses_nd.rs).
            let (n, c, h) = (g.gen_range(1..=2), g.gen_range(2..=4), g.gen_range(1..=3));
            let labels = (0..n * h * 2)
                .map(|_| g.gen_range(0..c))
                .collect::<Vec<_>>();
            let eps = g.gen_range(0.0f32..0.3);
            let x = uniform(g, &[n, c, h, 2], -3.0, 3.0);
            Case::new(vec![x], move |_, v| {
                v[0].cross_entropy_with(&labels, eps, Reduction::Mean)
            })
        }),
        Family::new("bce_with_logits", |g| {
            let d = dims(g, 0, 3);
            let r = reduction(g);
            let ins = vec![away(g, &d, 0.1, 4.0), uniform(g, &d, 0.0, 1.0)];
            Case::new(ins, move |_, v| v[0].bce_with_logits(v[1], r))
        }),
        Family::new("conv2d", |g| {
            let d = images(g, 3);
            let groups = if d[1].is_multiple_of(2) && g.gen_bool(0.5) {
                2
            } else {
                1
            };
            let (o, k) = (groups * g.gen_range(1..=2), g.gen_range(1..=3));
            let opts = conv_options(g).groups(groups);
            let ins = vec![
                uniform(g, &d, -2.0, 2.0),
                uniform(g, &[o, d[1] / groups, k, k], -1.0, 1.0),
                uniform(g, &[o], -1.0, 1.0),
            ];
            Case::new(ins, move |_, v| v[0].conv2d(v[1], Some(v[2]), opts))
        }),
        Family::new("conv_transpose2d", |g| {
            let d = images(g, 2);
            let (o, k) = (g.gen_range(1..=2), g.gen_range(1..=3));
            // Padding at most (k - 1) / 2, so that every input size has an output.
            let opts = Conv2dOptions::default()
                .stride(g.gen_range(1..=2))
                .padding(g.gen_range(0..=(k - 1) / 2));
            let ins = vec![
                uniform(g, &d, -2.0, 2.0),
                uniform(g, &[d[1], o, k, k], -1.0, 1.0),
            ];
            Case::new(ins, move |_, v| {
                v[0].conv_transpose2d(v[1], None, opts, (0, 0))
            })
        }),
        Family::new("max_pool2d", |g| {
            let d = images(g, 3);
            let o = pool_options(g);
            Case::new(vec![distinct(g, &d, 0.1)], move |_, v| v[0].max_pool2d(o))
        }),
        Family::new("avg_pool2d", |g| {
            let d = images(g, 3);
            let (o, include) = (pool_options(g), g.gen_bool(0.5));
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].avg_pool2d(o, include)
            })
        }),
        Family::new("adaptive_avg_pool2d", |g| {
            let d = images(g, 1);
            let out = (g.gen_range(1..=4), g.gen_range(1..=4));
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].adaptive_avg_pool2d(out)
            })
        }),
        Family::new("batch_norm (evaluation)", |g| {
            let d = images(g, 1);
            let c = d[1];
            let (rm, rv) = (uniform(g, &[c], -1.0, 1.0), uniform(g, &[c], 0.5, 2.0));
            let ins = vec![
                uniform(g, &d, -2.0, 2.0),
                uniform(g, &[c], 0.5, 1.5),
                uniform(g, &[c], -1.0, 1.0),
            ];
            Case::new(ins, move |_, v| {
                let (mut m, mut s) = (rm.clone(), rv.clone());
                let stats = RunningStats {
                    mean: &mut m,
                    var: &mut s,
                    momentum: 0.1,
                };
                v[0].batch_norm(Some(stats), Some(v[1]), Some(v[2]), false, 1e-5)
            })
        }),
        Family::new("local_response_norm", |g| {
            let d = images(g, 1);
            let size = g.gen_range(1..=5);
            Case::new(vec![uniform(g, &d, -3.0, 3.0)], move |_, v| {
                v[0].local_response_norm(size, 0.5, 0.75, 1.0)
            })
        }),
        Family::new("dropout", |g| {
            // The same mask on every evaluation: a generator seeded alike each time.
            let d = dims(g, 1, 3);
            let seed = g.gen::<u64>();
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].dropout(0.3, true, DropoutMode::Inverted, &mut rng(seed))
            })
        }),
        Family::new("stack, unsqueeze, flatten, transpose", |g| {
            let d = dims(g, 1, 3);
            let r = d.len() as isize;
            let axis = g.gen_range(-(r + 1)..=r);
            let ins = vec![uniform(g, &d, -2.0, 2.0), uniform(g, &d, -2.0, 2.0)];
            Case::new(ins, move |_, v| {
                let s = Var::stack(v, axis)?.transpose(0, -1)?;
                s.flatten(1)?.unsqueeze(0)
            })
        }),
        Family::new("residual block", |g| {
            let c = g.gen_range(1..=2);
            let d = [g.gen_range(2..=3), c, 3, 3];
            let ins = vec![
                distinct(g, &d, 0.25),
                uniform(g, &[c, c, 3, 3], -1.0, 1.0),
                uniform(g, &[c, c, 3, 3], -1.0, 1.0),
            ];
            Case::new(ins, |_, v| residual_block(v))
        }),
        Family::new("gradient penalty", |g| {
            // |d/dx sum(tanh(x W^T))|^2 through a backward pass that records itself.
            let ins = vec![
                uniform(g, &[3, 4], -1.5, 1.5),
                uniform(g, &[2, 4], -1.0, 1.0),
            ];
            Case::new(ins, |_, v| {
                let inner = v[0].linear(v[1], None)?.tanh().sum(&[], false)?;
                let create = BackwardOptions {
                    create_graph: true,
                    ..Default::default()
                };
                let grads = inner.backward_with_options(Tensor::scalar(1.0), create)?;
                let dx = grads
                    .var(v[0])
                    .ok_or_else(|| Error::invalid("gradient_penalty", "x got no gradient"))?;
                dx.square().sum(&[], false)
            })
        }),
    ]
}

fn pool_options(g: &mut Rng) -> Pool2dOptions {
    let k = g.gen_range(1..=3);
    Pool2dOptions::new(k)
        .stride(g.gen_range(1..=2))
        .padding(g.gen_range(0..=k / 2))
        .ceil_mode(g.gen_bool(0.5))
}

/// `swish(x + bn(conv(swish(bn(conv(x, w1))), w2)))`, batch norm in training mode, 3x3 "same"
/// convolutions.
fn residual_block<'t>(v: &[Var<'t>]) -> tapegrad_autograd::Result<Var<'t>> {
    let same = Conv2dOptions::default().padding(1);
    let h = v[0].conv2d(v[1], None, same)?;
    let h = h.batch_norm(None, None, None, true, 1e-5)?.swish();
    let h = h.conv2d(v[2], None, same)?;
    Ok(v[0]
        .add(h.batch_norm(None, None, None, true, 1e-5)?)?
        .swish())
}
