//! Without activations, depth buys nothing: a stack of linear layers is one linear layer.
//! With y_l = W_l y_(l-1) + b_l,
//! y_L = (W_L ... W_1) x + (W_L ... W_2 b_1 + ... + W_L b_(L-1) + b_L),
//! one matrix (the product) and one bias.

use tapegrad_autograd::{rng, Result, Tape, Tensor};
use tapegrad_nn::layers::Linear;
use tapegrad_nn::Module;

/// A stack of linear layers against the single layer it collapses to.
#[derive(Clone, Debug)]
pub struct Collapse {
    pub depth: usize,
    pub width: usize,
    /// Parameters of the stack and of the single layer.
    pub stack_params: usize,
    pub single_params: usize,
    /// The product W_L ... W_1, `[width, width]`.
    pub product: Tensor,
    /// The collapsed bias, `[width]`.
    pub bias: Tensor,
    /// Largest |stack(x) - single(x)| over a random batch.
    pub max_abs_diff: f32,
    /// The same with a ReLU between the layers: no single matrix reproduces that.
    pub max_abs_diff_with_relu: f32,
    /// Largest |stack(x)| over the batch, for scale.
    pub max_abs_output: f32,
}

/// Builds `depth` random `width x width` layers (PyTorch's default init) and compares the
/// stack with its product on `batch` random inputs.
pub fn linear_collapse(depth: usize, width: usize, batch: usize, seed: u64) -> Result<Collapse> {
    let mut g = rng(seed);
    let mut layers: Vec<Linear> = (0..depth)
        .map(|_| Linear::new(width, width, &mut g))
        .collect::<Result<_>>()?;

    // Folds the layers one by one: W <- W_l W, b <- W_l b + b_l.
    let mut product = Tensor::from_vec(
        (0..width * width)
            .map(|i| if i / width == i % width { 1.0 } else { 0.0 })
            .collect(),
        [width, width],
    )?;
    let mut bias = Tensor::zeros([width, 1]);
    for l in &layers {
        let w = l.weight.value();
        product = w.matmul(&product)?;
        let b = l
            .bias
            .as_ref()
            .map(|b| b.value().reshape([width, 1]))
            .transpose()?;
        bias = w.matmul(&bias)?;
        if let Some(b) = b {
            bias = bias.add(&b)?;
        }
    }
    let bias = bias.reshape([width])?;
    let mut single = Linear::from_tensors(product.clone(), Some(bias.clone()))?;

    let x = Tensor::randn([batch, width], &mut g);
    let tape = Tape::inference();
    let (mut plain, mut with_relu) = (tape.input(x.clone()), tape.input(x.clone()));
    for (i, l) in layers.iter_mut().enumerate() {
        plain = l.forward(plain)?;
        with_relu = l.forward(with_relu)?;
        if i + 1 < depth {
            with_relu = with_relu.relu();
        }
    }
    let one = single.forward(tape.input(x))?.value();
    let max_diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
        Ok(a.sub(b)?.data().iter().fold(0f32, |m, v| m.max(v.abs())))
    };
    let stack = plain.value();
    Ok(Collapse {
        depth,
        width,
        stack_params: layers.iter_mut().map(|l| l.num_parameters()).sum(),
        single_params: single.num_parameters(),
        max_abs_diff: max_diff(&stack, &one)?,
        max_abs_diff_with_relu: max_diff(&with_relu.value(), &one)?,
        max_abs_output: stack.data().iter().fold(0f32, |m, v| m.max(v.abs())),
        product,
        bias,
    })
}
