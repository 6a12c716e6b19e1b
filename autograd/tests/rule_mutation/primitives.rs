//! One family of random cases per primitive: the op alone, on inputs where it is smooth.

use super::gen::*;
use super::{Case, Family};
use rand::Rng as _;
use tapegrad_autograd::{Rng, Tensor, Var, Window2d};

fn unary(g: &mut Rng, lo: f32, hi: f32, f: fn(Var) -> Var) -> Case {
    let d = dims(g, 0, 3);
    Case::new(vec![uniform(g, &d, lo, hi)], move |_, v| Ok(f(v[0])))
}

fn unary_away(g: &mut Rng, f: fn(Var) -> Var) -> Case {
    let d = dims(g, 0, 3);
    Case::new(vec![away(g, &d, 0.1, 2.0)], move |_, v| Ok(f(v[0])))
}

/// Two operands that broadcast together, values in `[-2, 2)` (the second `±[0.5, 2)` for div).
fn pair(g: &mut Rng, divisor: bool) -> Vec<Tensor> {
    let s = broadcast(g, 2);
    let b = if divisor {
        away(g, &s[1], 0.5, 2.0)
    } else {
        uniform(g, &s[1], -2.0, 2.0)
    };
    vec![uniform(g, &s[0], -2.0, 2.0), b]
}

/// A window of a 2-d convolution over an `[n, c, h, w]` input, and the input.
fn window(g: &mut Rng) -> (Window2d, Vec<usize>) {
    let (n, c) = (g.gen_range(1..=2), g.gen_range(1..=2));
    let (h, w) = (g.gen_range(2..=5), g.gen_range(2..=5));
    let k = (g.gen_range(1..=h.min(3)), g.gen_range(1..=w.min(3)));
    let s = g.gen_range(1..=2);
    let p = g.gen_range(0..=1);
    let win = Window2d::conv("unfold", (h, w), k, (s, s), (p, p), (1, 1)).unwrap();
    (win, vec![n, c, h, w])
}

/// The primitives: every op with a hand-written rule (see `every_op_with_a_rule_has_a_family`).
pub fn families() -> Vec<Family> {
    vec![
        Family::new("neg", |g| unary(g, -2.0, 2.0, |x| x.neg())),
        Family::new("exp", |g| unary(g, -2.0, 2.0, |x| x.exp())),
        // log and sqrt: positive inputs, away from the pole at 0.
        Family::new("log", |g| unary(g, 0.2, 3.0, |x| x.log())),
        Family::new("sqrt", |g| unary(g, 0.2, 3.0, |x| x.sqrt())),
        Family::new("abs", |g| unary_away(g, |x| x.abs())),
        Family::new("powf", |g| {
            // Exponents away from 0 and 1, where the rule would be 0 or constant 1.
            let p = g.gen_range(1.5f32..3.0);
            let d = dims(g, 0, 3);
            Case::new(vec![uniform(g, &d, 0.5, 2.0)], move |_, v| Ok(v[0].powf(p)))
        }),
        Family::new("sigmoid", |g| unary(g, -2.0, 2.0, |x| x.sigmoid())),
        Family::new("tanh", |g| unary(g, -2.0, 2.0, |x| x.tanh())),
        // relu: values away from 0, the first one positive (an all-negative input has the
        // gradient 0, which no scaling can change).
        Family::new("relu", |g| {
            let d = dims(g, 0, 3);
            let mut v = away(g, &d, 0.1, 2.0).to_vec();
            v[0] = v[0].abs();
            Case::new(
                vec![Tensor::from_vec(v, d).unwrap()],
                |_, v| Ok(v[0].relu()),
            )
        }),
        Family::new("log1p", |g| unary(g, -0.5, 2.0, |x| x.log1p())),
        Family::new("softplus", |g| unary(g, -3.0, 3.0, |x| x.softplus())),
        Family::new("add", |g| Case::new(pair(g, false), |_, v| v[0].add(v[1]))),
        Family::new("sub", |g| Case::new(pair(g, false), |_, v| v[0].sub(v[1]))),
        Family::new("mul", |g| Case::new(pair(g, false), |_, v| v[0].mul(v[1]))),
        Family::new("div", |g| Case::new(pair(g, true), |_, v| v[0].div(v[1]))),
        Family::new("maximum", |g| {
            let s = broadcast(g, 2);
            let ins = vec![grid(g, &s[0], 0.0), grid(g, &s[1], 0.5)];
            Case::new(ins, |_, v| v[0].maximum(v[1]))
        }),
        Family::new("minimum", |g| {
            let s = broadcast(g, 2);
            let ins = vec![grid(g, &s[0], 0.0), grid(g, &s[1], 0.5)];
            Case::new(ins, |_, v| v[0].minimum(v[1]))
        }),
        Family::new("where", |g| {
            let s = broadcast(g, 3);
            let mask = uniform(g, &s[0], 0.0, 1.0).map(|u| (u < 0.5) as u8 as f32);
            let ins = vec![uniform(g, &s[1], -2.0, 2.0), uniform(g, &s[2], -2.0, 2.0)];
            Case::new(ins, move |t, v| {
                Var::where_cond(t.input(mask.clone()), v[0], v[1])
            })
        }),
        Family::new("sum", |g| {
            let d = dims(g, 0, 4);
            let (ax, keep) = (axes(g, d.len()), g.gen_bool(0.5));
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].sum(&ax, keep)
            })
        }),
        Family::new("max", |g| {
            let d = dims(g, 0, 4);
            let (ax, keep) = (axes(g, d.len()), g.gen_bool(0.5));
            Case::new(vec![distinct(g, &d, 0.3)], move |_, v| v[0].max(&ax, keep))
        }),
        Family::new("sum_to", |g| {
            let s = broadcast(g, 1).remove(0);
            let big = broadcast_up(g, &s);
            Case::new(vec![uniform(g, &big, -2.0, 2.0)], move |_, v| {
                v[0].sum_to(&s.clone().into())
            })
        }),
        Family::new("broadcast_to", |g| {
            let s = broadcast(g, 1).remove(0);
            let big = broadcast_up(g, &s);
            Case::new(vec![uniform(g, &s, -2.0, 2.0)], move |_, v| {
                v[0].broadcast_to(big.clone())
            })
        }),
        // The movement ops record nothing when they would not move anything: each case moves.
        Family::new("reshape", |g| {
            let d = dims(g, 0, 3);
            let mut target: Vec<usize> = d.iter().rev().copied().collect();
            target.push(1);
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].reshape(target.clone())
            })
        }),
        Family::new("permute", |g| {
            let d = dims(g, 2, 4);
            let mut perm: Vec<usize> = (0..d.len()).collect();
            rand::seq::SliceRandom::shuffle(&mut perm[..], g);
            if perm.windows(2).all(|w| w[0] < w[1]) {
                perm.rotate_left(1);
            }
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].permute(&perm)
            })
        }),
        Family::new("narrow", |g| {
            let mut d = dims(g, 1, 3);
            let axis = g.gen_range(0..d.len());
            d[axis] = d[axis].max(2);
            let start = g.gen_range(0..d[axis]);
            let len = g.gen_range(1..=(d[axis] - start).min(d[axis] - 1));
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].narrow(axis as isize, start, len)
            })
        }),
        Family::new("pad", |g| {
            let d = dims(g, 1, 3);
            let mut pads: Vec<(usize, usize)> = (0..g.gen_range(1..=d.len()))
                .map(|_| (g.gen_range(0..=2), g.gen_range(0..=2)))
                .collect();
            pads[0].0 = pads[0].0.max(1);
            let value = g.gen_range(-1.0f32..1.0);
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].pad(&pads, value)
            })
        }),
        Family::new("concat", |g| {
            let d = dims(g, 1, 3);
            let axis = g.gen_range(0..d.len());
            let parts = (0..g.gen_range(2..=3))
                .map(|_| {
                    let mut e = d.clone();
                    e[axis] = g.gen_range(1..=3);
                    uniform(g, &e, -2.0, 2.0)
                })
                .collect();
            Case::new(parts, move |_, v| Var::concat(v, axis as isize))
        }),
        Family::new("matmul", |g| {
            // Batched, the batch dimension broadcast (absent, 1 or b in each operand).
            let b = g.gen_range(1..=3);
            let batch = |g: &mut Rng| match g.gen_range(0..3) {
                0 => vec![],
                1 => vec![1],
                _ => vec![b],
            };
            let (ba, bb) = (batch(g), batch(g));
            let (m, k, n) = (g.gen_range(1..=4), g.gen_range(1..=4), g.gen_range(1..=4));
            let a = [&ba[..], &[m, k]].concat();
            let b = [&bb[..], &[k, n]].concat();
            let ins = vec![uniform(g, &a, -2.0, 2.0), uniform(g, &b, -2.0, 2.0)];
            Case::new(ins, |_, v| v[0].matmul(v[1]))
        }),
        Family::new("unfold", |g| {
            let (win, d) = window(g);
            Case::new(vec![uniform(g, &d, -2.0, 2.0)], move |_, v| {
                v[0].unfold(&win, 0.0)
            })
        }),
        Family::new("fold", |g| {
            let (win, d) = window(g);
            let cols = [d[0], d[1] * win.kernel.0 * win.kernel.1, win.positions()];
            Case::new(vec![uniform(g, &cols, -2.0, 2.0)], move |_, v| {
                v[0].fold(&win)
            })
        }),
        // Training-mode batch norm is one fused node with its own rule. Spread values: the
        // batch statistics of few values per channel bend the function fast.
        Family::new("batch_norm", |g| {
            let (n, c) = (g.gen_range(2..=3), g.gen_range(1..=3));
            let (h, w) = (g.gen_range(1..=3), g.gen_range(1..=3));
            let ins = vec![
                distinct(g, &[n, c, h, w], 0.5),
                uniform(g, &[c], 0.5, 1.5),
                uniform(g, &[c], -1.0, 1.0),
            ];
            Case::new(ins, |_, v| {
                v[0].batch_norm(None, Some(v[1]), Some(v[2]), true, 1e-5)
            })
        }),
    ]
}

/// A shape other than `s` that `s` broadcasts to: size-1 dimensions grown, leading ones added.
fn broadcast_up(g: &mut Rng, s: &[usize]) -> Vec<usize> {
    let mut big: Vec<usize> = (0..g.gen_range(0..=1))
        .map(|_| g.gen_range(1..=3))
        .collect();
    big.extend(
        s.iter()
            .map(|&d| if d == 1 { g.gen_range(1..=3) } else { d }),
    );
    if big == s {
        // The same shape records nothing: grow it by a leading axis.
        big.insert(0, 2);
    }
    big
}
