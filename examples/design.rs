//! Design budgets: parameters and multiply-accumulates (MACs) of AlexNet, VGG-16, GoogLeNet and
//! ResNet-50 side by side, split between convolutions and fully connected layers (from
//! `summary`); then why stacks of 3x3 filters replaced large ones: two 3x3 layers see what one
//! 5x5 layer sees (receptive field 5) with 18C^2 weights instead of 25C^2, and a nonlinearity
//! between them.
//!
//! `cargo run --release --example design [-- --detail alexnet]`

#[path = "common/mod.rs"]
mod common;

use tapegrad::autograd::Result;
use tapegrad::models::{by_name, default_input};
use tapegrad_lecture::design::{budget, conv_stack};

/// 61100840 -> "61.10M".
fn millions(n: u64) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

fn main() -> Result<()> {
    let args = common::Args::parse(
        "design",
        &[
            (
                "models",
                "zoo names (default alexnet,vgg16,googlenet,resnet50)",
            ),
            (
                "detail",
                "also print the layer-by-layer summary of this model",
            ),
            ("channels", "C of the 3x3 vs 5x5 comparison (default 64)"),
        ],
    );
    let names: Vec<String> = args.list(
        "models",
        ["alexnet", "vgg16", "googlenet", "resnet50"]
            .map(String::from)
            .to_vec(),
    );
    let detail: String = args.get("detail", String::new());

    println!(
        "{:<10} {:>15} {:>10} {:>10} | {:>11} {:>10} | {:>11} {:>10} {:>8}",
        "model",
        "input",
        "params",
        "MACs",
        "conv params",
        "conv MACs",
        "FC params",
        "FC MACs",
        "FC share"
    );
    for name in &names {
        let mut model = by_name(name, 1000, 3, 0)?;
        let input = default_input(name);
        let (b, s) = budget(name, &mut model, &input)?;
        println!(
            "{:<10} {:>15} {:>10} {:>10} | {:>11} {:>10} | {:>11} {:>10} {:>7.1}%",
            b.name,
            format!("{:?}", b.input),
            millions(b.params as u64),
            millions(b.macs),
            millions(b.conv_params as u64),
            millions(b.conv_macs),
            millions(b.fc_params as u64),
            millions(b.fc_macs),
            100.0 * b.fc_params as f64 / b.params as f64
        );
        if *name == detail {
            println!("{s}");
        }
    }
    println!(
        "AlexNet's three fully connected layers hold almost all its parameters but little of its \
         computation; later designs drop the big FC layers (GoogLeNet, ResNet: global average \
         pooling, one FC)."
    );

    let c: usize = args.get("channels", 64);
    println!(
        "\nSame receptive field, fewer weights ({c} channels in and out, 56x56 input, no bias):"
    );
    println!(
        "{:<16} {:>4} {:>12} {:>14} {:>14}",
        "layers", "RF", "params", "params / C^2", "nonlinearities"
    );
    for kernels in [vec![5], vec![3, 3], vec![7], vec![3, 3, 3]] {
        let s = conv_stack(&kernels, c, 56)?;
        let name: Vec<String> = kernels.iter().map(|k| format!("{k}x{k}")).collect();
        println!(
            "{:<16} {:>4} {:>12} {:>14} {:>14}",
            name.join(" + "),
            s.receptive_field,
            s.params,
            s.params / (c * c),
            s.nonlinearities
        );
    }
    Ok(())
}
