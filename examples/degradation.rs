//! The degradation problem: a deeper plain network trains worse than a shallower one, while
//! with shortcuts (y = F(x) + x) the deeper network trains better. Plain and residual networks
//! of two depths (the zoo's ResNet with the small-image stem, thin layers to fit a CPU) are
//! trained the same way on Fashion-MNIST (or the built-in synthetic shapes if it is not
//! installed); their training curves go to `degradation.png`.
//!
//! The lecture's table (ImageNet top-1 error): plain-18 27.94, plain-34 28.54;
//! ResNet-18 27.88, ResNet-34 25.03.
//!
//! ```text
//! cargo run --release --example degradation                 # tens of minutes
//! cargo run --release --example degradation -- --epochs 1 --limit-train 256 --limit-test 128 --width 4
//! ```

#[path = "common/mod.rs"]
mod common;

use common::plot::{save_grid, Panel, Series};
use tapegrad::autograd::rng;
use tapegrad::models::{ResNet, ResNetConfig};
use tapegrad::nn::Module;
use tapegrad_lecture::degradation::{self, Curve, DegradationOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(
        "degradation",
        &[
            ("epochs", "training epochs (default 4)"),
            ("limit-train", "training images used (default all: 0)"),
            ("limit-test", "test images used (default all: 0)"),
            (
                "depths",
                "ResNet depths to compare, 18, 34, 50... (default 18,34)",
            ),
            (
                "width",
                "channels of the first stage (default 8; the paper's 64)",
            ),
            ("batch", "batch size (default 64)"),
            ("lr", "SGD learning rate (default 0.05, momentum 0.9)"),
            (
                "networks",
                "which kinds to train, in order: resnet,plain (default both)",
            ),
            (
                "zero-init",
                "start each residual block as the identity, true (default) or false",
            ),
            (
                "schedule",
                "cosine (anneal to 0 over the run, per batch; default) or constant",
            ),
            (
                "seed",
                "seed of the initial weights and the data order (default 0)",
            ),
        ],
    );
    let d = DegradationOptions::default();
    let limit = |name, default: Option<usize>| match args.get(name, default.unwrap_or(0)) {
        0 => None,
        n => Some(n),
    };
    let opts = DegradationOptions {
        depths: args.list("depths", d.depths.clone()),
        epochs: args.get("epochs", d.epochs),
        limit_train: limit("limit-train", d.limit_train),
        limit_test: limit("limit-test", d.limit_test),
        batch_size: args.get("batch", d.batch_size),
        lr: args.get("lr", d.lr),
        seed: args.get("seed", d.seed),
        kinds: args
            .list("networks", vec!["resnet".to_string(), "plain".to_string()])
            .iter()
            .map(|k| match k.as_str() {
                "resnet" => Ok(true),
                "plain" => Ok(false),
                other => Err(format!("--networks {other}: expected resnet or plain")),
            })
            .collect::<Result<_, _>>()?,
        cosine: match args.get("schedule", "cosine".to_string()).as_str() {
            "cosine" => true,
            "constant" => false,
            other => return Err(format!("--schedule {other}: expected cosine or constant").into()),
        },
        ..d
    };
    let width: usize = args.get("width", 8);
    let zero_init: bool = args.get("zero-init", true);
    let out = args.out_dir();

    let (train, test, source) = degradation::load_data(&opts)?;
    println!(
        "{source}: {} training and {} test images; {} epochs, batch {}, SGD lr {} ({}) momentum {}",
        train.len(),
        test.len(),
        opts.epochs,
        opts.batch_size,
        opts.lr,
        if opts.cosine {
            "cosine to 0"
        } else {
            "constant"
        },
        opts.momentum
    );

    // The same seed for every network: plain and residual start from the same draw order.
    let (channels, classes) = (train.sample_shape()[0], train.num_classes());
    let build = |depth: usize, residual: bool| -> tapegrad::autograd::Result<Box<dyn Module>> {
        let config = ResNetConfig {
            in_channels: channels,
            width,
            small_stem: true,
            plain: !residual,
            zero_init_residual: zero_init,
            ..ResNetConfig::new(depth, classes)
        };
        Ok(Box::new(ResNet::new(config, &mut rng(opts.seed))?))
    };
    let mut last_epochs = 0;
    let curves = degradation::run(&build, train, &test, &opts, &mut |c: &Curve| {
        // Report once per epoch, when its test error arrives.
        if c.test_error.len() != last_epochs {
            last_epochs = c.test_error.len();
            println!(
                "{:<10} epoch {}: train loss {:.4}, train error {:.2}%, test error {:.2}% ({:.0} s)",
                c.name(),
                last_epochs,
                c.final_train_loss(),
                100.0 * c.final_train_error(),
                100.0 * c.test_error[last_epochs - 1],
                c.seconds
            );
        }
        if c.test_error.len() == opts.epochs {
            last_epochs = 0;
        }
    })?;

    println!("\nfinal        params   train error (last epoch)   test error");
    for c in &curves {
        println!(
            "{:<10} {:>9}   {:>22.2}%   {:>9.2}%",
            c.name(),
            c.params,
            100.0 * c.final_train_error(),
            100.0 * c.final_test_error()
        );
    }
    // The lecture's claim, for the first and last depth given: the degradation problem is about
    // training error (the deeper plain network fits its own training set worse).
    let find = |depth, residual| {
        curves
            .iter()
            .find(|c| c.depth == depth && c.residual == residual)
    };
    if let (Some(&lo), Some(&hi)) = (opts.depths.first(), opts.depths.last()) {
        if lo != hi {
            for residual in [false, true] {
                if let (Some(a), Some(b)) = (find(lo, residual), find(hi, residual)) {
                    let kind = if residual { "residual" } else { "plain" };
                    let (ta, tb) = (a.final_train_error(), b.final_train_error());
                    let verdict = if tb < ta { "better" } else { "worse" };
                    println!(
                        "{kind}: depth {hi} trains {verdict} than depth {lo} ({:.2}% vs {:.2}% \
                         training error; test error {:.2}% vs {:.2}%)",
                        100.0 * tb,
                        100.0 * ta,
                        100.0 * b.final_test_error(),
                        100.0 * a.final_test_error()
                    );
                }
            }
        }
    }

    let series = |f: &dyn Fn(&Curve) -> Vec<(f64, f64)>| -> Vec<Series> {
        curves.iter().map(|c| Series::new(c.name(), f(c))).collect()
    };
    let panels = [
        Panel {
            title: format!("training error ({source})"),
            x_label: "epoch".into(),
            y_label: "top-1 error".into(),
            series: series(&|c| {
                c.points
                    .iter()
                    .map(|p| (p.epoch as f64, p.train_error as f64))
                    .collect()
            }),
            log_y: false,
        },
        Panel {
            title: "training loss".into(),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            series: series(&|c| {
                c.points
                    .iter()
                    .map(|p| (p.epoch as f64, p.train_loss as f64))
                    .collect()
            }),
            log_y: false,
        },
        Panel {
            title: "test error".into(),
            x_label: "epoch".into(),
            y_label: "top-1 error".into(),
            series: series(&|c| {
                c.test_error
                    .iter()
                    .enumerate()
                    .map(|(e, &t)| (e as f64 + 1.0, t as f64))
                    .collect()
            }),
            log_y: false,
        },
    ];
    let path = out.join("degradation.png");
    save_grid(&path, &panels, 3, (600, 450))?;
    println!("curves: {}", path.display());
    Ok(())
}
