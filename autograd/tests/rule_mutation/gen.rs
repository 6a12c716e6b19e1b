//! Random shapes and values for the mutation cases, kept where each op is smooth (as the
//! proptest strategies of the gradient suites keep them).

use rand::seq::SliceRandom;
use rand::Rng as _;
use tapegrad_autograd::{Rng, Tensor};

/// Dimensions of rank `min..=max`, each of size 1 to 4.
pub fn dims(g: &mut Rng, min: usize, max: usize) -> Vec<usize> {
    let r = g.gen_range(min..=max);
    (0..r).map(|_| g.gen_range(1..=4)).collect()
}

/// Values uniform in `[lo, hi)`.
pub fn uniform(g: &mut Rng, d: &[usize], lo: f32, hi: f32) -> Tensor {
    Tensor::rand(d.to_vec(), lo, hi, g)
}

/// Values `±[lo, hi)`: away from the kink at 0 of abs and relu.
pub fn away(g: &mut Rng, d: &[usize], lo: f32, hi: f32) -> Tensor {
    let n: usize = d.iter().product();
    let v = (0..n)
        .map(|_| {
            let m = g.gen_range(lo..hi);
            if g.gen_bool(0.5) {
                -m
            } else {
                m
            }
        })
        .collect();
    Tensor::from_vec(v, d.to_vec()).unwrap()
}

/// Values `i + phase + u`, integer `i` in `-2..2`, `|u| <= 0.1`: two grids with phases half
/// a unit apart stay 0.3 apart, so maximum and minimum have no tie within a step.
pub fn grid(g: &mut Rng, d: &[usize], phase: f32) -> Tensor {
    let n: usize = d.iter().product();
    let v = (0..n)
        .map(|_| g.gen_range(-2i32..2) as f32 + phase + g.gen_range(-0.1f32..=0.1))
        .collect();
    Tensor::from_vec(v, d.to_vec()).unwrap()
}

/// Pairwise `step` apart in a random order (a shuffled ramp): a max has one winner.
pub fn distinct(g: &mut Rng, d: &[usize], step: f32) -> Tensor {
    let n: usize = d.iter().product();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(g);
    let v = order
        .into_iter()
        .map(|i| (i as f32 - n as f32 / 2.0) * step)
        .collect();
    Tensor::from_vec(v, d.to_vec()).unwrap()
}

/// `n` shapes that broadcast together: a common shape of rank `0..=3`, from which each drops
/// some leading dimensions (a third of the time) and sets some others to 1.
pub fn broadcast(g: &mut Rng, n: usize) -> Vec<Vec<usize>> {
    let out = dims(g, 0, 3);
    (0..n)
        .map(|_| {
            let drop = if g.gen_bool(1.0 / 3.0) {
                g.gen_range(0..=out.len())
            } else {
                0
            };
            out[drop..]
                .iter()
                .map(|&d| if g.gen_bool(0.3) { 1 } else { d })
                .collect()
        })
        .collect()
}

/// A set of distinct axes of a rank-`r` tensor (possibly empty: every axis), some negative.
pub fn axes(g: &mut Rng, r: usize) -> Vec<isize> {
    let mut picked = Vec::new();
    for i in 0..r {
        if g.gen_bool(0.5) {
            let negative = g.gen_bool(0.5);
            picked.push(if negative {
                i as isize - r as isize
            } else {
                i as isize
            });
        }
    }
    picked
}
