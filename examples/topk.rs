//! Top-1 and top-5 error with the metrics API, on the lecture's strawberry picture: the network
//! ranks the true class 3rd, a top-1 error but not a top-5 error. Two more pictures make a
//! batch, whose errors are fractions of the pictures.
//!
//! `cargo run --release --example topk`

#[path = "common/mod.rs"]
mod common;

use tapegrad::autograd::Result;
use tapegrad_lecture::topk::{evaluate, pictures};

fn main() -> Result<()> {
    common::Args::parse("topk", &[]);
    let (ranked, top1, top5) = evaluate(&pictures())?;
    for r in &ranked {
        let guesses: Vec<String> = r
            .top5
            .iter()
            .map(|(name, p)| {
                let mark = if *name == r.truth { "*" } else { "" };
                format!("{mark}{name}{mark} {p:.2}")
            })
            .collect();
        println!(
            "{:<10} true class ranked {}: top-1 error {}, top-5 error {}",
            r.name, r.rank, r.top1_error, r.top5_error
        );
        println!("           top 5: {}", guesses.join(", "));
    }
    println!(
        "batch of {}: top-1 error {:.4}, top-5 error {:.4}",
        ranked.len(),
        top1,
        top5
    );
    Ok(())
}
