//! Memory stays flat over a long training loop: 10,000 steps of a small MLP (a fresh tape per
//! step, Adam), printing the resident and peak resident memory at steps 1,000 and 10,000.
//!
//! `cargo run --release --example memory [-- --steps N]`

use tapegrad::nn::layers::{Linear, ReLU};
use tapegrad::nn::optim::{Adam, AdamConfig, GradMap, Optimizer};
use tapegrad::nn::Sequential;
use tapegrad::prelude::*;

/// (current, peak) resident set size in KiB, from /proc (Linux).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut g = rng(0);
    let mut model = Sequential::new()
        .add(Linear::new(64, 128, &mut g)?)
        .add(ReLU)
        .add(Linear::new(128, 128, &mut g)?)
        .add(ReLU)
        .add(Linear::new(128, 10, &mut g)?);
    let mut opt = Adam::new(AdamConfig {
        lr: 1e-3,
        ..Default::default()
    })?;
    let x = Tensor::randn([32, 64], &mut g);
    let labels: Vec<usize> = (0..32).map(|i| i % 10).collect();
    let mut at = Vec::new();
    for step in 1..=steps {
        let (loss, grads) = {
            let tape = Tape::new();
            let loss = model
                .forward(tape.input(x.clone()))?
                .cross_entropy(&labels)?;
            (loss.item()?, GradMap::from_grads(&model, &loss.backward()?))
        };
        opt.step_with(&mut model, &grads)?;
        if step == 1_000.min(steps) || step == steps {
            let (rss, peak) = rss_kib();
            println!("step {step:>6}: loss {loss:.4}, RSS {rss} KiB, peak RSS {peak} KiB");
            at.push(peak);
        }
    }
    if let [first, last] = at[..] {
        println!(
            "peak RSS grew by {} KiB between the two checkpoints",
            last as i64 - first as i64
        );
    }
    Ok(())
}
