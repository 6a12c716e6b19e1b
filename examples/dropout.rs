//! Dropout's two scalings and their expectations. A unit with activation a is dropped with
//! probability p in training; at test every unit is kept. Classic dropout (the lecture's,
//! AlexNet's) leaves training outputs unscaled and multiplies by 1 - p at test; inverted dropout
//! (PyTorch's) divides by 1 - p in training and does nothing at test. Both make the test output
//! the expected training output: checked here on many samples against the formulas.
//!
//! `cargo run --release --example dropout [-- --samples 1000000]`

#[path = "common/mod.rs"]
mod common;

use tapegrad::autograd::{DropoutMode, Result};
use tapegrad_lecture::dropout::dropout_stats;

fn main() -> Result<()> {
    let args = common::Args::parse(
        "dropout",
        &[
            ("samples", "draws per setting (default 1000000)"),
            ("a", "the activation value (default 2)"),
            ("seed", "seed of the masks (default 0)"),
        ],
    );
    let samples = args.get("samples", 1_000_000usize);
    let a: f32 = args.get("a", 2.0);
    let seed = args.get("seed", 0u64);

    println!("activation a = {a}, {samples} draws per row");
    println!(
        "{:<9} {:>4} {:>8} | {:>11} {:>11} | {:>10} {:>10} | {:>6}",
        "mode", "p", "dropped", "train mean", "theory", "train var", "theory", "test"
    );
    for mode in [DropoutMode::Classic, DropoutMode::Inverted] {
        for p in [0.2, 0.5, 0.8] {
            let s = dropout_stats(mode, p, a, samples, seed)?;
            println!(
                "{:<9} {:>4} {:>7.2}% | {:>11.5} {:>11.5} | {:>10.4} {:>10.4} | {:>6.3}",
                format!("{mode:?}").to_lowercase(),
                p,
                100.0 * s.dropped,
                s.train_mean,
                s.expected_mean,
                s.train_var,
                s.expected_var,
                s.test_value
            );
        }
    }
    println!(
        "classic:  E[train] = (1 - p) a, Var = a^2 p (1 - p); test = (1 - p) a (the lecture's \
         \"multiply by 0.5 at test\" for p = 0.5)"
    );
    println!("inverted: E[train] = a, Var = a^2 p / (1 - p); test = a (nothing to do at test)");
    println!("either way the test output is the mean training output the next layer learned from");
    Ok(())
}
