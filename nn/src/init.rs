//! Initialisers: fresh tensors drawn from a seeded generator, with PyTorch's formulas.
//!
//! Fans follow PyTorch's `_calculate_fan_in_and_fan_out`: for a weight `[out, in, k...]`,
//! `fan_in = in * prod(k)` and `fan_out = out * prod(k)` (a Linear weight `[out, in]` has no
//! kernel dims). The same seed always gives the same tensor; the numbers differ from PyTorch's
//! (another generator), the distributions do not.
//!
//! ```
//! use tapegrad_autograd::rng;
//! use tapegrad_nn::init::{self, FanMode, Nonlinearity};
//! let mut g = rng(0);
//! // He initialisation of a conv weight, as torchvision's VGG and ResNet do.
//! let w = init::kaiming_normal(&[64, 3, 3, 3], FanMode::FanOut, Nonlinearity::Relu, &mut g).unwrap();
//! assert_eq!(w.dims(), &[64, 3, 3, 3]);
//! ```

use crate::module::{Entry, Module};
use tapegrad_autograd::{Error, Result, Rng, Tensor};

/// Which fan a Kaiming initialiser preserves: `FanIn` keeps the variance of the forward
/// activations, `FanOut` that of the backward gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FanMode {
    #[default]
    FanIn,
    FanOut,
}

/// The non-linearity that follows a layer, for [`gain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity (also convolutions): gain 1.
    Linear,
    /// Gain 1.
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain sqrt(2).
    Relu,
    /// Gain `sqrt(2 / (1 + slope^2))`.
    LeakyRelu(f32),
}

/// PyTorch's `calculate_gain`: the factor that keeps activations at unit variance through the
/// non-linearity.
pub fn gain(nl: Nonlinearity) -> f32 {
    match nl {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f32.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
    }
}

/// `(fan_in, fan_out)` of a weight of shape `[out, in, k...]`; fails below rank 2.
pub fn fan_in_fan_out(dims: &[usize]) -> Result<(usize, usize)> {
    if dims.len() < 2 {
        return Err(Error::invalid(
            "fan_in_fan_out",
            format!("fans need a weight of rank >= 2 ([out, in, k...]), got shape {dims:?}"),
        ));
    }
    let receptive: usize = dims[2..].iter().product();
    Ok((dims[1] * receptive, dims[0] * receptive))
}

fn check_finite(op: &'static str, what: &str, v: f32) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("{what} must be finite, got {v}"),
        ))
    }
}

fn fan(op: &'static str, dims: &[usize], mode: FanMode) -> Result<f32> {
    let (fan_in, fan_out) = fan_in_fan_out(dims)?;
    let f = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    if f == 0 {
        return Err(Error::invalid(
            op,
            format!("the {mode:?} of shape {dims:?} is zero"),
        ));
    }
    Ok(f as f32)
}

/// Samples of `U[low, high)`.
pub fn uniform(dims: &[usize], low: f32, high: f32, rng: &mut Rng) -> Result<Tensor> {
    check_finite("uniform", "low", low)?;
    check_finite("uniform", "high", high)?;
    if low > high {
        return Err(Error::invalid(
            "uniform",
            format!("low {low} must not exceed high {high}"),
        ));
    }
    Tensor::try_rand(dims, low, high, rng)
}

/// Samples of `N(mean, std^2)`; AlexNet's weights are `normal(dims, 0.0, 0.01)`.
pub fn normal(dims: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Result<Tensor> {
    check_finite("normal", "mean", mean)?;
    check_finite("normal", "std", std)?;
    if std < 0.0 {
        return Err(Error::invalid("normal", format!("std {std} must be >= 0")));
    }
    // Scaled in place: a second copy of a large layer (VGG's fc6, 411 MB) would add to the
    // peak memory of building the model.
    let mut t = Tensor::randn(dims, rng);
    t.data_mut().iter_mut().for_each(|z| *z = mean + std * *z);
    Ok(t)
}

/// Every element equal to `v` (AlexNet sets some biases to 1).
pub fn constant(dims: &[usize], v: f32) -> Tensor {
    Tensor::full(dims, v)
}

pub fn zeros(dims: &[usize]) -> Tensor {
    Tensor::zeros(dims)
}

pub fn ones(dims: &[usize]) -> Tensor {
    Tensor::ones(dims)
}

/// He (Kaiming) uniform: `U(-b, b)` with `b = gain * sqrt(3 / fan)`.
pub fn kaiming_uniform(
    dims: &[usize],
    mode: FanMode,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Result<Tensor> {
    let b = gain(nl) * (3.0 / fan("kaiming_uniform", dims, mode)?).sqrt();
    uniform(dims, -b, b, rng)
}

/// He (Kaiming) normal: `N(0, std^2)` with `std = gain / sqrt(fan)`.
pub fn kaiming_normal(
    dims: &[usize],
    mode: FanMode,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Result<Tensor> {
    let std = gain(nl) / fan("kaiming_normal", dims, mode)?.sqrt();
    normal(dims, 0.0, std, rng)
}

fn fan_sum(op: &'static str, dims: &[usize]) -> Result<f32> {
    let (fan_in, fan_out) = fan_in_fan_out(dims)?;
    if fan_in + fan_out == 0 {
        return Err(Error::invalid(op, format!("shape {dims:?} has zero fans")));
    }
    Ok((fan_in + fan_out) as f32)
}

/// Glorot (Xavier) uniform: `U(-a, a)` with `a = gain * sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(dims: &[usize], gain: f32, rng: &mut Rng) -> Result<Tensor> {
    let a = gain * (6.0 / fan_sum("xavier_uniform", dims)?).sqrt();
    uniform(dims, -a, a, rng)
}

/// Glorot (Xavier) normal: `N(0, std^2)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(dims: &[usize], gain: f32, rng: &mut Rng) -> Result<Tensor> {
    let std = gain * (2.0 / fan_sum("xavier_normal", dims)?).sqrt();
    normal(dims, 0.0, std, rng)
}

/// `1 / sqrt(fan_in)`, or 0 for an empty fan (PyTorch leaves such tensors unchanged).
fn default_bound(fan_in: usize) -> f32 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f32).sqrt()
    }
}

/// PyTorch's default Linear/Conv weight: `kaiming_uniform(a = sqrt(5))`, i.e. gain
/// `sqrt(2 / (1 + 5)) = 1/sqrt(3)` and bound `sqrt(1/3) * sqrt(3 / fan_in) = 1 / sqrt(fan_in)`.
pub fn default_weight(dims: &[usize], rng: &mut Rng) -> Result<Tensor> {
    let (fan_in, _) = fan_in_fan_out(dims)?;
    let b = default_bound(fan_in);
    uniform(dims, -b, b, rng)
}

/// PyTorch's default Linear/Conv bias of `out` elements: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
/// with the fan_in of the layer's weight.
pub fn default_bias(fan_in: usize, out: usize, rng: &mut Rng) -> Tensor {
    let b = default_bound(fan_in);
    Tensor::rand([out], -b, b, rng)
}

/// An initialiser as a value, so a model can say once how each parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default weight ([`default_weight`]).
    Default,
    KaimingUniform(FanMode, Nonlinearity),
    KaimingNormal(FanMode, Nonlinearity),
    /// Xavier uniform with a gain.
    XavierUniform(f32),
    /// Xavier normal with a gain.
    XavierNormal(f32),
    Normal {
        mean: f32,
        std: f32,
    },
    Uniform {
        low: f32,
        high: f32,
    },
    Constant(f32),
}

impl Init {
    /// A fresh tensor of shape `dims`.
    pub fn tensor(&self, dims: &[usize], rng: &mut Rng) -> Result<Tensor> {
        match *self {
            Init::Default => default_weight(dims, rng),
            Init::KaimingUniform(m, nl) => kaiming_uniform(dims, m, nl, rng),
            Init::KaimingNormal(m, nl) => kaiming_normal(dims, m, nl, rng),
            Init::XavierUniform(g) => xavier_uniform(dims, g, rng),
            Init::XavierNormal(g) => xavier_normal(dims, g, rng),
            Init::Normal { mean, std } => normal(dims, mean, std, rng),
            Init::Uniform { low, high } => uniform(dims, low, high, rng),
            Init::Constant(v) => {
                check_finite("constant", "the value", v)?;
                Ok(constant(dims, v))
            }
        }
    }
}

/// Re-initialises the parameters of `model` in visiting order: `choose(name, dims)` returns the
/// initialiser for a parameter, or `None` to keep it. Buffers are left alone. Stops at the
/// first error (the parameters visited before it keep their new values).
///
/// ```
/// use tapegrad_autograd::rng;
/// use tapegrad_nn::init::{self, Init};
/// use tapegrad_nn::{layers::Linear, Module};
/// let mut fc = Linear::new(4, 3, &mut rng(0)).unwrap();
/// // AlexNet: weights N(0, 0.01), biases 1.
/// init::apply(&mut fc, &mut rng(1), |name, _| {
///     Some(if name.ends_with("bias") { Init::Constant(1.0) } else { Init::Normal { mean: 0.0, std: 0.01 } })
/// }).unwrap();
/// assert_eq!(fc.bias.as_ref().unwrap().value().to_vec(), vec![1.0; 3]);
/// ```
pub fn apply(
    model: &mut dyn Module,
    rng: &mut Rng,
    mut choose: impl FnMut(&str, &[usize]) -> Option<Init>,
) -> Result<()> {
    let mut result = Ok(());
    model.visit_mut("", &mut |name, e| {
        let Entry::Param(p) = e else { return };
        if result.is_err() {
            return;
        }
        let dims = p.value().dims().to_vec();
        if let Some(init) = choose(name, &dims) {
            result = init.tensor(&dims, rng).and_then(|t| p.set(t));
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_pytorch() {
        // [out 96, in 3, 11, 11]: fan_in = 3 * 121 = 363, fan_out = 96 * 121 = 11616.
        assert_eq!(fan_in_fan_out(&[96, 3, 11, 11]).unwrap(), (363, 11616));
        assert_eq!(fan_in_fan_out(&[10, 20]).unwrap(), (20, 10));
        assert!(fan_in_fan_out(&[5]).is_err());
    }

    #[test]
    fn gains() {
        assert_eq!(gain(Nonlinearity::Relu), 2f32.sqrt());
        // leaky_relu(a = sqrt(5)): sqrt(2 / 6).
        let g = gain(Nonlinearity::LeakyRelu(5f32.sqrt()));
        assert!((g - (1.0f32 / 3.0).sqrt()).abs() < 1e-7);
        assert_eq!(gain(Nonlinearity::Tanh), 5.0 / 3.0);
    }
}
