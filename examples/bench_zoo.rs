//! Whole-model speed and memory: images/s and peak resident memory of inference and of a
//! training step (forward, cross-entropy, backward, SGD without momentum, as the PyTorch side
//! in `bench/train_torch.py` does) for the zoo's networks. Each (model, mode, batch) runs in its
//! own child process (this program run again), so each peak belongs to one configuration.
//!
//! ```text
//! cargo run --release --example bench_zoo -- [--models resnet18,resnet50,vgg16,googlenet,alexnet,lenet5]
//!     [--modes train,infer] [--batch 8,16,32] [--budget SECONDS] [--threads N] [--profile]
//!     [--pool-limit MIB]
//! ```
//!
//! Inputs are 3x224x224 with 1000 classes (LeNet-5: 1x28x28, 10 classes, ReLU and max pooling,
//! batch 64 unless `--batch` is given; so are the main job's other networks, named as `train`'s
//! `--model` names them: `lenet5-modern-16-32-128-84`, `small-vgg-32-64-fc128`). Each child
//! runs one warm-up step, then steps until `--budget` seconds (default 6) have passed, at least
//! 3; it prints the median images/s, its resident memory before building the model, its peak
//! once the model and input are built, and its peak at the end (`VmHWM`). `--profile` adds,
//! after the timed steps, the time per op of one step (training mode). `--pool-limit` sets how
//! much idle tensor storage is kept for reuse (`set_buffer_pool_limit`; default 1 GiB).

// `--features mimalloc` runs the same program on mimalloc, to compare allocators: the
// library leaves the allocator to the application.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;
use std::time::Instant;
use tapegrad::models::{build, by_name, LeNet5, LeNetConfig};
use tapegrad::nn::optim::{GradMap, Optimizer, Sgd, SgdConfig};
use tapegrad::nn::Module;
use tapegrad::prelude::*;

const ALL: &str = "resnet18,resnet50,vgg16,googlenet,alexnet,lenet5";

/// A field of /proc/self/status in MiB (Linux).
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One configuration, in this (child) process; prints one result line.
fn child(name: &str, mode: &str, batch: usize, budget: f64, profile: bool) -> Result<()> {
    let start_rss = status_mib("VmRSS:");
    let (mut model, input, classes): (Box<dyn Module>, [usize; 4], usize) = if name == "lenet5" {
        let m = LeNet5::new(LeNetConfig::modern(28, 10), &mut rng(1))?;
        (Box::new(m), [batch, 1, 28, 28], 10)
    } else if name.starts_with("small-vgg") || name.starts_with("lenet5-") {
        // The main job's networks, on Fashion-MNIST's 28x28 grey images.
        (build(name, 10, [1, 28, 28], 1)?, [batch, 1, 28, 28], 10)
    } else {
        (by_name(name, 1000, 3, 1)?, [batch, 3, 224, 224], 1000)
    };
    let x = Tensor::randn(input, &mut rng(0));
    let built = status_mib("VmHWM:");
    let labels: Vec<usize> = (0..batch).map(|i| i % classes).collect();
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.01,
        ..Default::default()
    })?;
    let train = mode == "train";
    model.set_training(train);
    let mut step = |model: &mut Box<dyn Module>, profile: bool| -> Result<()> {
        if !train {
            let tape = Tape::inference();
            let y = model.forward(tape.input(x.clone()))?;
            std::hint::black_box(y.value());
            return Ok(());
        }
        // Gradients are collected by name and the tape dropped before the update, so the
        // optimiser writes the parameters in place.
        let grads = {
            let tape = Tape::new();
            tape.set_profiling(profile);
            let loss = model
                .forward(tape.input(x.clone()))?
                .cross_entropy(&labels)?;
            let grads = GradMap::from_grads(model.as_mut(), &loss.backward()?);
            if let Some(p) = tape.profile() {
                println!("{}", p.per_step(1));
            }
            grads
        };
        opt.step_with(model.as_mut(), &grads)
    };
    // The first step warms caches and the allocator; it is left out.
    step(&mut model, false)?;
    let mut rates = Vec::new();
    let began = Instant::now();
    while rates.len() < 3 || (began.elapsed().as_secs_f64() < budget && rates.len() < 1000) {
        let t = Instant::now();
        step(&mut model, false)?;
        rates.push(batch as f64 / t.elapsed().as_secs_f64());
    }
    let peak = status_mib("VmHWM:");
    println!(
        "{name:<10} {mode:<6} {batch:>5} {:>9.1} {:>6} {:>9.0} {:>9.0} {:>9.0}",
        median(rates.clone()),
        rates.len(),
        start_rss,
        built,
        peak
    );
    if profile {
        step(&mut model, true)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let profile = args.iter().any(|a| a == "--profile");
    let budget: f64 = value("--budget")
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let field = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        let batch = field(3).parse().unwrap_or(8);
        if let Some(mib) = value("--pool-limit").and_then(|s| s.parse::<usize>().ok()) {
            tapegrad::autograd::set_buffer_pool_limit(mib << 20);
        }
        return child(&field(1), &field(2), batch, budget, profile);
    }
    let models = value("--models").unwrap_or_else(|| ALL.to_string());
    let modes = value("--modes").unwrap_or_else(|| "train,infer".to_string());
    let batches = value("--batch");
    let threads = value("--threads");
    let exe = std::env::current_exe()
        .map_err(|e| Error::invalid("bench_zoo", format!("cannot find this program: {e}")))?;
    let shown_threads = threads
        .clone()
        .unwrap_or_else(|| rayon::current_num_threads().to_string());
    println!("threads: {shown_threads}, budget {budget} s per configuration, median after one warm-up step");
    println!(
        "{:<10} {:<6} {:>5} {:>9} {:>6} {:>9} {:>9} {:>9}",
        "model", "mode", "batch", "img/s", "steps", "start MiB", "built MiB", "peak MiB"
    );
    for name in models.split(',') {
        let small = name.starts_with("lenet5") || name.starts_with("small-vgg");
        let default_batch = if small { "64" } else { "8" };
        for batch in batches.as_deref().unwrap_or(default_batch).split(',') {
            for mode in modes.split(',') {
                let mut cmd = Command::new(&exe);
                cmd.args(["--child", name, mode, batch, "--budget"])
                    .arg(budget.to_string());
                if profile {
                    cmd.arg("--profile");
                }
                if let Some(mib) = value("--pool-limit") {
                    cmd.args(["--pool-limit", &mib]);
                }
                if let Some(t) = &threads {
                    cmd.env("RAYON_NUM_THREADS", t);
                }
                let out = cmd.output().map_err(|e| {
                    Error::invalid("bench_zoo", format!("cannot run a child process: {e}"))
                })?;
                print!("{}", String::from_utf8_lossy(&out.stdout));
                if !out.status.success() {
                    println!(
                        "{name} {mode} {batch}: failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
    }
    Ok(())
}
