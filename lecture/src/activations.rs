//! The lecture's activation functions and their derivatives, the derivatives computed by the
//! tape (not by hand), and softmax against plain normalisation and argmax.

use tapegrad_autograd::{Result, Tape, Tensor, Var};

/// An activation of the lecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// 0 below 0, 1 from 0 on: its derivative is 0 almost everywhere, nothing to learn from.
    Step,
    /// The identity: a stack of linear layers is one linear layer.
    Linear,
    /// 1 / (1 + e^-x); derivative s(1 - s), at most 1/4.
    Sigmoid,
    /// 2 sigmoid(2x) - 1; derivative 1 - tanh^2, at most 1.
    Tanh,
    /// max(x, 0); derivative 0 or 1.
    Relu,
    /// x, or 0.01x for x < 0; derivative 1 or 0.01.
    LeakyRelu,
    /// x sigmoid(x); derivative f(x) + sigmoid(x)(1 - f(x)).
    Swish,
}

impl Activation {
    pub const ALL: [Activation; 7] = [
        Activation::Step,
        Activation::Linear,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Swish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Step => "step",
            Activation::Linear => "linear",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "ReLU",
            Activation::LeakyRelu => "leaky ReLU",
            Activation::Swish => "swish",
        }
    }

    /// The function and its derivative, as formulas.
    pub fn formula(self) -> (&'static str, &'static str) {
        match self {
            Activation::Step => ("f(x) = [x >= 0]", "f'(x) = 0 (x != 0)"),
            Activation::Linear => ("f(x) = x", "f'(x) = 1"),
            Activation::Sigmoid => ("f(x) = 1 / (1 + e^-x)", "f'(x) = f(x)(1 - f(x))"),
            Activation::Tanh => ("f(x) = 2 sigmoid(2x) - 1", "f'(x) = 1 - f(x)^2"),
            Activation::Relu => ("f(x) = max(x, 0)", "f'(x) = [x > 0]"),
            Activation::LeakyRelu => ("f(x) = x or 0.01x", "f'(x) = 1 or 0.01"),
            Activation::Swish => ("f(x) = x sigmoid(x)", "f'(x) = f(x) + sigmoid(x)(1 - f(x))"),
        }
    }

    /// Records the activation of `x`.
    pub fn apply<'t>(self, x: Var<'t>) -> Var<'t> {
        match self {
            Activation::Step => x.step(),
            Activation::Linear => x.mul_scalar(1.0),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu => x.leaky_relu(0.01),
            Activation::Swish => x.swish(),
        }
    }
}

/// An activation sampled on a grid, with its derivative from the tape.
#[derive(Clone, Debug)]
pub struct Curve {
    pub activation: Activation,
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    /// df/dx at each x: the gradient of sum(f(x)) with respect to x.
    pub dy: Vec<f32>,
}

/// `f(x)` and `f'(x)` for every activation at the points `x` (any shape).
pub fn curves(x: &Tensor) -> Result<Vec<Curve>> {
    Activation::ALL
        .iter()
        .map(|&a| {
            let tape = Tape::new();
            let xv = tape.var(x.clone());
            let y = a.apply(xv);
            // Each y_i depends on x_i alone, so d(sum y)/dx_i = f'(x_i).
            let total = y.sum(&[], false)?;
            // The step function is a constant on the tape: there is nothing to differentiate,
            // and its derivative is 0 everywhere the tape sees it.
            let dy = if total.requires_grad() {
                total.backward()?.get_or_zeros(xv)
            } else {
                Tensor::zeros(x.shape().clone())
            };
            Ok(Curve {
                activation: a,
                x: x.to_vec(),
                y: y.value().to_vec(),
                dy: dy.to_vec(),
            })
        })
        .collect()
}

/// The lecture's grid for plots: `n` points evenly from `lo` to `hi`.
pub fn grid(lo: f32, hi: f32, n: usize) -> Result<Tensor> {
    let step = (hi - lo) / (n.max(2) - 1) as f32;
    Tensor::from_vec((0..n).map(|i| lo + step * i as f32).collect(), [n])
}

/// Three ways to turn scores into a distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalisations {
    pub scores: Vec<f32>,
    /// e^s_i / sum_j e^s_j.
    pub softmax: Vec<f32>,
    /// s_i / sum_j s_j (for positive scores).
    pub plain: Vec<f32>,
    /// 1 at the largest score (the first on ties), 0 elsewhere: a "hard" max, no gradient.
    pub argmax: Vec<f32>,
}

/// Softmax, plain normalisation and one-hot argmax of `scores`.
pub fn normalisations(scores: &[f32]) -> Result<Normalisations> {
    let tape = Tape::inference();
    let s = tape.input(Tensor::from_slice(scores));
    let softmax = s.softmax(0)?.value().to_vec();
    let plain = s.div(s.sum(&[], false)?)?.value().to_vec();
    let top = s.value().argmax(0, false)?.item()? as usize;
    let argmax = (0..scores.len())
        .map(|i| if i == top { 1.0 } else { 0.0 })
        .collect();
    Ok(Normalisations {
        scores: scores.to_vec(),
        softmax,
        plain,
        argmax,
    })
}
