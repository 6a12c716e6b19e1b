//! Vanishing gradients: the gradient norm of every layer's weights after one backward pass
//! through a 20-layer network of sigmoid layers, of ReLU layers, and of residual layers
//! (h + relu(W h + b)); same widths, same PyTorch default initial weights, same batch. Plotted
//! on a log scale to `vanishing_gradients.png`.
//!
//! `cargo run --release --example vanishing_gradients [-- --depth 20 --width 64]`

#[path = "common/mod.rs"]
mod common;

use common::plot::{save, Panel, Series};
use tapegrad_lecture::vanishing::{gradient_norms, Kind, VanishingOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(
        "vanishing_gradients",
        &[
            (
                "depth",
                "linear layers in all, the last one the classifier (default 20)",
            ),
            ("width", "features of the hidden layers (default 64)"),
            ("seed", "seed of the weights and the batch (default 0)"),
        ],
    );
    let d = VanishingOptions::default();
    let o = VanishingOptions {
        depth: args.get("depth", d.depth),
        width: args.get("width", d.width),
        seed: args.get("seed", d.seed),
        ..d
    };
    let out = args.out_dir();

    let all: Vec<_> = Kind::ALL
        .iter()
        .map(|&k| gradient_norms(k, o))
        .collect::<Result<_, _>>()?;
    println!(
        "|dL/dW| per layer, {} layers of width {}, batch {} (layer 1 is next to the input):",
        o.depth, o.width, o.batch
    );
    print!("layer");
    for g in &all {
        print!("  {:>12}", g.kind.name());
    }
    println!();
    for l in 0..o.depth {
        print!("{:>5}", l + 1);
        for g in &all {
            print!("  {:>12.3e}", g.norms[l]);
        }
        println!();
    }
    for g in &all {
        println!("{:<9} last / first layer: {:.3e}", g.kind.name(), g.ratio());
    }

    let panel = Panel {
        title: format!("gradient norm per layer ({} layers)", o.depth),
        x_label: "layer (1 = next to the input)".into(),
        y_label: "|dL/dW| (log scale)".into(),
        series: all
            .iter()
            .map(|g| {
                let pts = g
                    .norms
                    .iter()
                    .enumerate()
                    .map(|(l, &n)| ((l + 1) as f64, n as f64))
                    .collect();
                Series::new(g.kind.name(), pts)
            })
            .collect(),
        log_y: true,
    };
    let path = out.join("vanishing_gradients.png");
    save(&path, &panel, (800, 560))?;
    println!("plot: {}", path.display());
    Ok(())
}
