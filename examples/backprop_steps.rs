//! Backprop step by step: the chain rule on z = f(x, y) = x^2 y + y with its backward trace,
//! then the lecture's 3x3 input / 2x2 filter convolution: h, dW and dX written out as sums,
//! their values from the tape, and the two convolutions that give the same gradients.
//!
//! `cargo run --release --example backprop_steps`

#[path = "common/mod.rs"]
mod common;

use tapegrad::autograd::{Result, Tensor};
use tapegrad_lecture::backprop::{chain_rule, conv_example, conv_formulas};

/// A 2-d tensor as rows of numbers.
fn rows(t: &Tensor) -> String {
    let cols = t.dims()[1];
    t.data()
        .chunks(cols)
        .map(|r| {
            let v: Vec<String> = r.iter().map(|x| format!("{x:>5}")).collect();
            format!("    [{}]", v.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() -> Result<()> {
    common::Args::parse("backprop_steps", &[]);

    // 1. The chain rule: a node receives dL/dz and sends dL/dz * dz/d(input) to each input.
    let c = chain_rule(3.0, 2.0, 0.5)?;
    println!("== The chain rule on z = f(x, y) = x^2 y + y ==");
    println!("x = {}, y = {}: z = {}", c.x, c.y, c.z);
    println!(
        "dz/dx = 2xy     = {}   (tape: {})",
        2.0 * c.x * c.y,
        c.dz_dx
    );
    println!(
        "dz/dy = x^2 + 1 = {}   (tape: {})",
        c.x * c.x + 1.0,
        c.dz_dy
    );
    println!(
        "with dL/dz = {} arriving from above: dL/dx = dL/dz * dz/dx = {}, dL/dy = dL/dz * dz/dy = {}",
        c.upstream, c.dl_dx, c.dl_dy
    );
    println!("\nThe backward pass, node by node (y is used twice: its gradient sums two paths):");
    print!("{}", c.trace);

    // 2. The convolution: forward, then backward with the gradient dh arriving at h.
    let e = conv_example()?;
    let f = conv_formulas(&e);
    println!("\n== Convolution: 3x3 input X, 2x2 filter W, 2x2 output h ==");
    println!("X =\n{}\nW =\n{}", rows(&e.x), rows(&e.w));
    println!("\nForward, h = X (*) W (each output is the filter's dot product with a window):");
    for line in &f.h {
        println!("  {line}");
    }
    println!("h =\n{}", rows(&e.h));

    println!("\nBackward, with dL/dh =\n{}", rows(&e.dh));
    println!("dW: each weight met four inputs, one per output (X correlated with dh):");
    for line in &f.dw {
        println!("  {line}");
    }
    println!(
        "dW (tape) =\n{}\nX correlated with dh =\n{}",
        rows(&e.dw),
        rows(&e.dw_as_correlation)
    );
    println!("\ndX: each input fed the outputs whose window covered it:");
    for line in &f.dx {
        println!("  {line}");
    }
    println!(
        "dX (tape) =\n{}\nfull convolution: dh padded by 1, correlated with the flipped filter {:?} =\n{}",
        rows(&e.dx),
        e.w_flipped.to_vec(),
        rows(&e.dx_as_full_convolution)
    );
    let same = e.dx == e.dx_as_full_convolution && e.dw == e.dw_as_correlation;
    println!(
        "\nThe backward of a convolution is a convolution: {}",
        if same {
            "both gradients agree exactly"
        } else {
            "MISMATCH"
        }
    );
    Ok(())
}
