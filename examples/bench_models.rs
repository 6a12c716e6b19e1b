//! Whole-model speed: images/s of inference and of a training step (forward, cross-entropy,
//! backward, SGD) for ResNet-18 at 224x224 batch 8 and LeNet-5 at 28x28 batch 64, and the
//! process's peak resident memory.
//!
//! `cargo run --release --example bench_models [-- --steps N] [--only lenet|resnet] [--profile]`
//!
//! `--profile` adds, after the timed steps, the same number of training steps on profiling tapes
//! and prints each op's forward and backward time per step.

use std::time::Instant;
use tapegrad::autograd::Profile;
use tapegrad::models::{by_name, LeNet5, LeNetConfig};
use tapegrad::nn::optim::{GradMap, Optimizer, Sgd, SgdConfig};
use tapegrad::nn::Module;
use tapegrad::prelude::*;

/// Peak resident set size of this process, from /proc (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(
    name: &str,
    model: &mut dyn Module,
    input: [usize; 4],
    steps: usize,
    profile: bool,
) -> Result<()> {
    let mut g = rng(0);
    let x = Tensor::randn(input, &mut g);
    let labels: Vec<usize> = (0..input[0]).map(|i| i % 10).collect();
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        ..Default::default()
    })?;
    let n = input[0] as f64;
    model.eval();
    let infer = (0..steps + 1)
        .map(|_| {
            let t = Instant::now();
            let tape = Tape::inference();
            let y = model.forward(tape.input(x.clone()))?;
            std::hint::black_box(y.value());
            Ok(n / t.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<f64>>>()?;
    model.train();
    let mut profiled = Profile::default();
    let mut step = |model: &mut dyn Module, profile: bool| -> Result<()> {
        // Gradients are collected by name and the tape dropped before the update, so the
        // optimiser writes the parameters in place.
        let grads = {
            let tape = Tape::new();
            tape.set_profiling(profile);
            let loss = model
                .forward(tape.input(x.clone()))?
                .cross_entropy(&labels)?;
            let grads = GradMap::from_grads(model, &loss.backward()?);
            if let Some(p) = tape.profile() {
                profiled.merge(&p);
            }
            grads
        };
        opt.step_with(model, &grads)
    };
    let train = (0..steps + 1)
        .map(|_| {
            let t = Instant::now();
            step(model, false)?;
            Ok(n / t.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<f64>>>()?;
    if profile {
        for _ in 0..steps {
            step(model, true)?;
        }
    }
    // The first pass of each warms caches and the allocator; it is left out.
    println!(
        "{name:<34} inference {:>9.1} img/s   training step {:>9.1} img/s   peak RSS {:>7.0} MiB",
        median(infer[1..].to_vec()),
        median(train[1..].to_vec()),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    if profile {
        println!("per training step, mean of {steps} profiled steps:");
        println!("{}", profiled.per_step(steps));
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let steps = value("--steps").and_then(|s| s.parse().ok()).unwrap_or(5);
    let only = value("--only").cloned().unwrap_or_default();
    let profile = args.iter().any(|a| a == "--profile");
    println!(
        "threads: {}, median of {steps} steps after one warm-up",
        rayon::current_num_threads()
    );
    if only.is_empty() || only == "lenet" {
        let mut lenet = LeNet5::new(LeNetConfig::modern(28, 10), &mut rng(1))?;
        bench(
            "LeNet-5 (ReLU, max pool) 28x28 b64",
            &mut lenet,
            [64, 1, 28, 28],
            steps * 4,
            profile,
        )?;
    }
    if only.is_empty() || only == "resnet" {
        let mut resnet = by_name("resnet18", 1000, 3, 1)?;
        bench(
            "ResNet-18 224x224 b8",
            resnet.as_mut(),
            [8, 3, 224, 224],
            steps,
            profile,
        )?;
    }
    Ok(())
}
