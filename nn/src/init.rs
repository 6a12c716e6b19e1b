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
use rand::Rng as _;
use rand_distr::StandardNormal;
use tapegrad_autograd::{Error, Result, Rng, Shape, Tensor};

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
    Draw::uniform(low, high)?.tensor(dims, rng)
}

/// Samples of `N(mean, std^2)`; AlexNet's weights are `normal(dims, 0.0, 0.01)`.
pub fn normal(dims: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Result<Tensor> {
    Draw::normal(mean, std)?.tensor(dims, rng)
}

/// What an initialiser draws each element from, its bounds or moments worked out from the
/// shape; one definition of the sampling for fresh tensors and for parameters written in place.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Draw {
    Uniform { low: f32, high: f32 },
    Normal { mean: f32, std: f32 },
    Constant(f32),
}

impl Draw {
    fn uniform(low: f32, high: f32) -> Result<Draw> {
        check_finite("uniform", "low", low)?;
        check_finite("uniform", "high", high)?;
        if low > high {
            return Err(Error::invalid(
                "uniform",
                format!("low {low} must not exceed high {high}"),
            ));
        }
        Ok(Draw::Uniform { low, high })
    }

    fn normal(mean: f32, std: f32) -> Result<Draw> {
        check_finite("normal", "mean", mean)?;
        check_finite("normal", "std", std)?;
        if std < 0.0 {
            return Err(Error::invalid("normal", format!("std {std} must be >= 0")));
        }
        Ok(Draw::Normal { mean, std })
    }

    /// Overwrites `out` with draws, in order.
    fn fill(self, out: &mut [f32], rng: &mut Rng) {
        match self {
            Draw::Uniform { low, high } => out
                .iter_mut()
                .for_each(|v| *v = low + (high - low) * rng.gen::<f32>()),
            Draw::Normal { mean, std } => out
                .iter_mut()
                .for_each(|v| *v = mean + std * rng.sample::<f32, _>(StandardNormal)),
            Draw::Constant(c) => out.fill(c),
        }
    }

    fn tensor(self, dims: &[usize], rng: &mut Rng) -> Result<Tensor> {
        // A size too large is the sampling op's error, as `Tensor::try_rand`'s would be.
        let op = match self {
            Draw::Uniform { .. } => "rand",
            Draw::Normal { .. } => "randn",
            Draw::Constant(_) => "full",
        };
        Shape::new(dims).check_size(op)?;
        let mut t = Tensor::try_zeros(dims)?;
        self.fill(t.data_mut(), rng);
        Ok(t)
    }
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
    Init::KaimingUniform(mode, nl).tensor(dims, rng)
}

/// He (Kaiming) normal: `N(0, std^2)` with `std = gain / sqrt(fan)`.
pub fn kaiming_normal(
    dims: &[usize],
    mode: FanMode,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Result<Tensor> {
    Init::KaimingNormal(mode, nl).tensor(dims, rng)
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
    Init::XavierUniform(gain).tensor(dims, rng)
}

/// Glorot (Xavier) normal: `N(0, std^2)` with `std = gain * sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(dims: &[usize], gain: f32, rng: &mut Rng) -> Result<Tensor> {
    Init::XavierNormal(gain).tensor(dims, rng)
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
    Init::Default.tensor(dims, rng)
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
    /// What each element of a tensor of shape `dims` is drawn from.
    fn draw(&self, dims: &[usize]) -> Result<Draw> {
        match *self {
            Init::Default => {
                let b = default_bound(fan_in_fan_out(dims)?.0);
                Draw::uniform(-b, b)
            }
            Init::KaimingUniform(m, nl) => {
                let b = gain(nl) * (3.0 / fan("kaiming_uniform", dims, m)?).sqrt();
                Draw::uniform(-b, b)
            }
            Init::KaimingNormal(m, nl) => {
                Draw::normal(0.0, gain(nl) / fan("kaiming_normal", dims, m)?.sqrt())
            }
            Init::XavierUniform(g) => {
                let a = g * (6.0 / fan_sum("xavier_uniform", dims)?).sqrt();
                Draw::uniform(-a, a)
            }
            Init::XavierNormal(g) => {
                Draw::normal(0.0, g * (2.0 / fan_sum("xavier_normal", dims)?).sqrt())
            }
            Init::Normal { mean, std } => Draw::normal(mean, std),
            Init::Uniform { low, high } => Draw::uniform(low, high),
            Init::Constant(v) => {
                check_finite("constant", "the value", v)?;
                Ok(Draw::Constant(v))
            }
        }
    }

    /// A fresh tensor of shape `dims`.
    pub fn tensor(&self, dims: &[usize], rng: &mut Rng) -> Result<Tensor> {
        self.draw(dims)?.tensor(dims, rng)
    }

    /// Overwrites `out`, the data of a tensor of shape `dims`, with what [`Init::tensor`] would
    /// draw: re-initialising a parameter in place holds no second copy of it.
    pub fn fill(&self, dims: &[usize], out: &mut [f32], rng: &mut Rng) -> Result<()> {
        let n: usize = dims.iter().product();
        if out.len() != n {
            return Err(Error::invalid(
                "Init::fill",
                format!("{} values for a tensor of shape {dims:?}", out.len()),
            ));
        }
        self.draw(dims)?.fill(out, rng);
        Ok(())
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
            // In place: VGG's first linear layer is 411 MB, and a fresh tensor for it would
            // double that in the peak memory of building the model.
            result = init.fill(&dims, p.data_mut(), rng);
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

    #[test]
    fn filling_in_place_draws_what_a_fresh_tensor_would() {
        use tapegrad_autograd::rng;
        let dims = [6, 4, 3, 3];
        let inits = [
            Init::Default,
            Init::KaimingUniform(FanMode::FanIn, Nonlinearity::Relu),
            Init::KaimingNormal(FanMode::FanOut, Nonlinearity::Relu),
            Init::XavierUniform(1.5),
            Init::XavierNormal(0.5),
            Init::Normal {
                mean: 1.0,
                std: 0.01,
            },
            Init::Uniform {
                low: -2.0,
                high: 3.0,
            },
            Init::Constant(0.25),
        ];
        for init in inits {
            let fresh = init.tensor(&dims, &mut rng(7)).unwrap();
            let mut out = vec![f32::NAN; 216];
            init.fill(&dims, &mut out, &mut rng(7)).unwrap();
            assert_eq!(out, fresh.to_vec(), "{init:?}");
        }
        // The named functions draw the same too.
        let k = kaiming_normal(&dims, FanMode::FanOut, Nonlinearity::Relu, &mut rng(7)).unwrap();
        let i = Init::KaimingNormal(FanMode::FanOut, Nonlinearity::Relu);
        assert_eq!(k.to_vec(), i.tensor(&dims, &mut rng(7)).unwrap().to_vec());
        let e = Init::Default
            .fill(&dims, &mut [0.0; 5], &mut rng(0))
            .unwrap_err();
        assert!(e.to_string().contains("5 values") && e.to_string().contains("[6, 4, 3, 3]"));
        let e = Init::Normal {
            mean: 0.0,
            std: -1.0,
        }
        .fill(&[2], &mut [0.0; 2], &mut rng(0));
        assert!(e.unwrap_err().to_string().contains("std -1"));
    }

    #[test]
    fn apply_writes_each_parameter_in_its_own_storage() {
        use crate::layers::Linear;
        use tapegrad_autograd::rng;
        let mut fc = Linear::new(30, 20, &mut rng(0)).unwrap();
        let before = fc.weight.value().data().as_ptr();
        apply(&mut fc, &mut rng(1), |_, _| Some(Init::Constant(0.5))).unwrap();
        // No second tensor was made for the new values (VGG's 411 MB layer would be two).
        assert_eq!(fc.weight.value().data().as_ptr(), before);
        assert_eq!(fc.weight.value().to_vec(), vec![0.5; 600]);
    }
}
