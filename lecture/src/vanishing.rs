//! Vanishing gradients: how the gradient of each layer's weights shrinks on its way back
//! through a deep network, for sigmoid, ReLU and residual (x + relu(W x + b)) layers.
//!
//! Backward through one sigmoid layer multiplies the gradient by W^T and by sigmoid'(z), which
//! is at most 1/4; with PyTorch's default init (weights uniform in +-1/sqrt(fan_in), so
//! |W^T g| is about |g| / sqrt(3)) each layer shrinks it several times, and the first layers of a
//! 20-layer sigmoid network hardly learn. A residual layer passes the gradient on unchanged
//! along its shortcut, and adds the layer's own path to it.

use rand::Rng as _;
use tapegrad_autograd::{rng, Result, Tape, Tensor, Var};
use tapegrad_nn::layers::Linear;
use tapegrad_nn::loss::VarLosses;
use tapegrad_nn::Module;

/// The hidden layers of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// h = sigmoid(W h + b).
    Sigmoid,
    /// h = relu(W h + b).
    Relu,
    /// h = h + relu(W h + b).
    Residual,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Sigmoid, Kind::Relu, Kind::Residual];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sigmoid => "sigmoid",
            Kind::Relu => "ReLU",
            Kind::Residual => "residual",
        }
    }
}

/// Per-layer gradient norms of one network.
#[derive(Clone, Debug)]
pub struct GradientNorms {
    pub kind: Kind,
    /// |dL/dW_l| (Frobenius), from the first layer (index 0, next to the input) to the last.
    pub norms: Vec<f32>,
}

impl GradientNorms {
    /// |dL/dW| of the last layer over that of the first: how much the gradient shrank.
    pub fn ratio(&self) -> f32 {
        match (self.norms.first(), self.norms.last()) {
            (Some(&first), Some(&last)) => last / first,
            _ => f32::NAN,
        }
    }
}

/// Options of the experiment: `depth` linear layers in all (the last one maps `width` to
/// `classes` scores), a batch of N(0, 1) inputs of size `width` with random labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VanishingOptions {
    pub depth: usize,
    pub width: usize,
    pub classes: usize,
    pub batch: usize,
    pub seed: u64,
}

impl Default for VanishingOptions {
    fn default() -> Self {
        VanishingOptions {
            depth: 20,
            width: 64,
            classes: 10,
            batch: 128,
            seed: 0,
        }
    }
}

/// One backward pass of a cross-entropy loss through the network of `kind`. Every kind gets
/// the same weights (the same seed), the same inputs and labels.
pub fn gradient_norms(kind: Kind, o: VanishingOptions) -> Result<GradientNorms> {
    let mut g = rng(o.seed);
    let mut layers: Vec<Linear> = (0..o.depth)
        .map(|l| {
            let out = if l + 1 == o.depth { o.classes } else { o.width };
            Linear::new(o.width, out, &mut g)
        })
        .collect::<Result<_>>()?;
    let x = Tensor::randn([o.batch, o.width], &mut g);
    let labels: Vec<usize> = (0..o.batch).map(|_| g.gen_range(0..o.classes)).collect();

    let tape = Tape::new();
    let mut h: Var<'_> = tape.input(x);
    let last = layers.len().saturating_sub(1);
    for (l, layer) in layers.iter_mut().enumerate() {
        let z = layer.forward(h)?;
        h = if l == last {
            z
        } else {
            match kind {
                Kind::Sigmoid => z.sigmoid(),
                Kind::Relu => z.relu(),
                Kind::Residual => h.add(z.relu())?,
            }
        };
    }
    let grads = h.cross_entropy(&labels)?.backward()?;
    let norms = layers
        .iter()
        .map(|l| {
            let gw = grads
                .param(&l.weight)
                .unwrap_or_else(|| Tensor::zeros(l.weight.value().shape().clone()));
            let sq: f64 = gw.data().iter().map(|&v| (v as f64) * (v as f64)).sum();
            sq.sqrt() as f32
        })
        .collect();
    Ok(GradientNorms { kind, norms })
}
