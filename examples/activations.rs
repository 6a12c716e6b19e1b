//! The lecture's activations and their derivatives: step, linear, sigmoid, tanh, ReLU, leaky
//! ReLU and swish on [-5, 5], each derivative computed by the tape (the backward pass of
//! sum(f(x))), plotted to `activations.png`. Then softmax against plain normalisation and
//! argmax on the scores [2, 4, 2, 1].
//!
//! `cargo run --release --example activations [-- --out DIR]`

#[path = "common/mod.rs"]
mod common;

use common::plot::{save_grid, Panel, Series};
use tapegrad_lecture::activations::{curves, grid, normalisations};

fn fmt(v: &[f32]) -> String {
    let s: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("[{}]", s.join(", "))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse("activations", &[]);
    let out = args.out_dir();

    // 401 points: a step of 0.025, fine enough to show the kinks at 0.
    let x = grid(-5.0, 5.0, 401)?;
    let all = curves(&x)?;
    println!("f(x) and f'(x) (f' from the tape) at x = -2, 0, 2:");
    for c in &all {
        let at = |v: f32| {
            c.x.iter()
                .position(|&p| (p - v).abs() < 1e-4)
                .expect("on the grid")
        };
        let (f, df) = c.activation.formula();
        let pts: Vec<String> = [-2.0, 0.0, 2.0]
            .iter()
            .map(|&v| format!("{:>7.4} / {:<7.4}", c.y[at(v)], c.dy[at(v)]))
            .collect();
        println!(
            "  {:<11} {}   {f}; {df}",
            c.activation.name(),
            pts.join("  ")
        );
    }
    let peak = |name: &str| {
        all.iter()
            .find(|c| c.activation.name() == name)
            .map(|c| c.dy.iter().cloned().fold(f32::MIN, f32::max))
            .unwrap_or(f32::NAN)
    };
    println!(
        "largest derivative: sigmoid {:.4} (1/4), tanh {:.4} (1)",
        peak("sigmoid"),
        peak("tanh")
    );

    let panels: Vec<Panel> = all
        .iter()
        .map(|c| {
            let pts = |ys: &[f32]| -> Vec<(f64, f64)> {
                c.x.iter()
                    .zip(ys)
                    .map(|(&a, &b)| (a as f64, b as f64))
                    .collect()
            };
            Panel {
                title: c.activation.name().to_string(),
                x_label: "x".into(),
                y_label: String::new(),
                series: vec![
                    Series::new("f(x)", pts(&c.y)),
                    Series::new("f'(x)", pts(&c.dy)),
                ],
                log_y: false,
            }
        })
        .collect();
    let path = out.join("activations.png");
    save_grid(&path, &panels, 4, (420, 320))?;
    println!("plots: {}", path.display());

    let n = normalisations(&[2.0, 4.0, 2.0, 1.0])?;
    println!("\nscores {}", fmt(&n.scores));
    println!("  softmax e^s / sum e^s  {}", fmt(&n.softmax));
    println!("  plain   s / sum s      {}", fmt(&n.plain));
    println!("  argmax  (one-hot)      {}", fmt(&n.argmax));
    println!(
        "softmax gives the top score {:.4} where plain normalisation gives {:.4}: a soft argmax \
         that stays differentiable",
        n.softmax[1], n.plain[1]
    );
    Ok(())
}
