//! Dropout's two scalings. A unit with activation a is kept with probability 1 - p:
//! - classic (the lecture's, AlexNet's): training outputs a * m with m ~ Bernoulli(1 - p), so
//!   E = (1 - p) a and Var = a^2 p (1 - p); at test every unit is kept and multiplied by 1 - p,
//!   which is that expectation;
//! - inverted (PyTorch's): training outputs a * m / (1 - p), so E = a and
//!   Var = a^2 p / (1 - p); at test the identity, a, again the expectation.
//!
//! Either way the next layer sees at test the mean of what it saw in training.

use tapegrad_autograd::{rng, DropoutMode, Error, Result, Tape, Tensor};

/// Empirical and theoretical moments of dropout on one activation value.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutStats {
    pub mode: DropoutMode,
    pub p: f32,
    /// The activation fed in.
    pub a: f32,
    pub samples: usize,
    /// Mean and variance of the training outputs over `samples` draws.
    pub train_mean: f64,
    pub train_var: f64,
    /// What the formulas above say they should be.
    pub expected_mean: f64,
    pub expected_var: f64,
    /// The output at test time.
    pub test_value: f32,
    /// Fraction of outputs that were zero (dropped).
    pub dropped: f64,
}

/// Samples dropout of the value `a`, `samples` times, in training and once at test.
pub fn dropout_stats(
    mode: DropoutMode,
    p: f32,
    a: f32,
    samples: usize,
    seed: u64,
) -> Result<DropoutStats> {
    if samples == 0 || !(0.0..1.0).contains(&p) {
        return Err(Error::invalid(
            "dropout_stats",
            format!("needs samples > 0 and p in [0, 1), got {samples} and {p}"),
        ));
    }
    let mut g = rng(seed);
    let tape = Tape::inference();
    let x = tape.input(Tensor::full([samples], a));
    let train = x.dropout(p, true, mode, &mut g)?.value();
    let test_value = tape
        .input(Tensor::scalar(a))
        .dropout(p, false, mode, &mut g)?
        .item()?;

    let n = samples as f64;
    let mean = train.data().iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = train
        .data()
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let dropped = train.data().iter().filter(|&&v| v == 0.0).count() as f64 / n;
    let (pa, a64) = (p as f64, a as f64);
    let (expected_mean, expected_var) = match mode {
        DropoutMode::Classic => ((1.0 - pa) * a64, a64 * a64 * pa * (1.0 - pa)),
        DropoutMode::Inverted => (a64, a64 * a64 * pa / (1.0 - pa)),
    };
    Ok(DropoutStats {
        mode,
        p,
        a,
        samples,
        train_mean: mean,
        train_var: var,
        expected_mean,
        expected_var,
        test_value,
        dropped,
    })
}
