//! Prints a model's layer-by-layer summary: output shape, parameters, multiply-accumulates,
//! receptive field and effective stride, with totals.
//!
//! `cargo run --release --example summary -- alexnet [--input 1,3,224,224] [--classes 1000]`
//! (`--list` names every model).

use tapegrad::models::{by_name, default_input, summary, NAMES};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--list" || a == "--help") {
        println!(
            "usage: summary MODEL [--input N,C,H,W] [--classes K]\nmodels: {}",
            NAMES.join(", ")
        );
        return;
    }
    let name = &args[0];
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let input: Vec<usize> = match value("--input") {
        Some(s) => match s.split(',').map(str::parse).collect() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("--input {s}: {e}");
                std::process::exit(2);
            }
        },
        None => default_input(name).to_vec(),
    };
    let classes = value("--classes")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let channels = input.get(1).copied().unwrap_or(3);
    let result = by_name(name, classes, channels, 0).and_then(|mut m| summary(m.as_mut(), &input));
    match result {
        Ok(s) => println!("{name}\n{s}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
