//! The tape of LeNet-5 as a graph: one training step (forward, cross-entropy, traced backward)
//! exported as Graphviz DOT, every edge labelled with the norm of the gradient that flowed
//! back along it, written to `lenet5_tape.dot` and rendered to `lenet5_tape.svg` when
//! Graphviz's `dot` is installed (`apt-get install graphviz`).
//!
//! `cargo run --release --example graph [-- --out DIR --batch 2]`

#[path = "common/mod.rs"]
mod common;

use tapegrad::autograd::{rng, Result, Tensor};
use tapegrad::models::{LeNet5, LeNetConfig};
use tapegrad_lecture::graph::{check_dot, model_dot, render_svg};

fn main() -> Result<()> {
    let args = common::Args::parse(
        "graph",
        &[
            ("batch", "images in the batch (default 2)"),
            ("seed", "seed of the weights and the images (default 0)"),
        ],
    );
    let batch: usize = args.get("batch", 2);
    let seed: u64 = args.get("seed", 0);
    let out = args.out_dir();

    // The 1990 network: filters -> tanh -> average pooling -> ... on 28x28 grey images.
    let mut model = LeNet5::new(LeNetConfig::classic(28, 10), &mut rng(seed))?;
    let images = Tensor::rand([batch, 1, 28, 28], 0.0, 1.0, &mut rng(seed + 1));
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let g = model_dot(&mut model, images, &labels)?;
    let check = check_dot(&g.dot)?;
    println!(
        "LeNet-5, batch {batch}: loss {:.4}; the tape holds {} nodes, backward visited {}",
        g.loss, g.nodes, g.traced_steps
    );
    println!(
        "DOT: {} nodes, {} edges, {} of them labelled with the gradient norm |g|",
        check.nodes, check.edges, check.labelled_edges
    );

    let dot_path = out.join("lenet5_tape.dot");
    std::fs::write(&dot_path, &g.dot)
        .map_err(|e| tapegrad::autograd::Error::io(&dot_path, "cannot write the graph", e))?;
    println!("wrote {}", dot_path.display());
    let svg_path = out.join("lenet5_tape.svg");
    if render_svg(&dot_path, &svg_path)? {
        println!("rendered {}", svg_path.display());
    } else {
        println!(
            "Graphviz's dot is not installed (apt-get install graphviz); render later with \
             `dot -Tsvg {} -o {}`",
            dot_path.display(),
            svg_path.display()
        );
    }
    Ok(())
}
