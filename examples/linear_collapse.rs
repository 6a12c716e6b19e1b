//! Without activations a deep network is one matrix: ten linear layers y = W_l y + b_l compose
//! to y = (W_10 ... W_1) x + b. The program builds the stack, folds it into one layer, and
//! checks both give the same outputs (max abs difference); with a ReLU between the layers no
//! single matrix does.
//!
//! `cargo run --release --example linear_collapse [-- --depth 10 --width 32]`

#[path = "common/mod.rs"]
mod common;

use tapegrad::autograd::Result;
use tapegrad_lecture::linear_collapse::linear_collapse;

fn main() -> Result<()> {
    let args = common::Args::parse(
        "linear_collapse",
        &[
            ("depth", "number of linear layers (default 10)"),
            ("width", "features in and out of every layer (default 32)"),
            ("seed", "seed of the weights and inputs (default 0)"),
        ],
    );
    let depth = args.get("depth", 10);
    let width = args.get("width", 32);
    let c = linear_collapse(depth, width, 64, args.get("seed", 0))?;

    println!(
        "{depth} linear layers of {width} x {width} ({} parameters) vs one layer W = W_{depth} ... W_1 ({} parameters)",
        c.stack_params, c.single_params
    );
    let corner: Vec<String> = c
        .product
        .data()
        .iter()
        .take(4)
        .map(|v| format!("{v:.3e}"))
        .collect();
    println!(
        "W[0, 0..4] = [{}], collapsed bias b[0..4] = {:?}",
        corner.join(", "),
        &c.bias.data()[..4.min(width)]
    );
    println!(
        "max |stack(x) - W x - b| over 64 inputs: {:.3e} (outputs up to {:.3e}): the same function",
        c.max_abs_diff, c.max_abs_output
    );
    println!(
        "with a ReLU between the layers:          {:.3e}: no longer one matrix",
        c.max_abs_diff_with_relu
    );
    Ok(())
}
