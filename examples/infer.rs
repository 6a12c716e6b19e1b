//! Runs a zoo model on a batch stored in a safetensors file and writes its logits to another.
//!
//! ```text
//! cargo run --release --example infer -- --model resnet18 --weights W.safetensors \
//!     --input X.safetensors --output Y.safetensors [--classes N] [--train-mode]
//! ```
//!
//! - `W` holds the model's state dict under PyTorch's names, as
//!   `safetensors.torch.save_file(model.state_dict(), W)` or `checkpoint::save` write it. It is
//!   loaded strictly: missing, unexpected and mis-shaped keys are named in the error.
//! - `X` holds the batch under the key `input`: F32, `[N, C, H, W]`. Other keys are ignored.
//! - `Y` gets the key `logits`: F32, `[N, classes]`.
//! - `--classes` defaults to the number of rows of the head's weight in `W` (the model's last
//!   2-D weight: `fc.weight`, `classifier.6.weight`...); given, it must agree with `W`. The
//!   input channels likewise come from the first convolution's weight in `W` (`conv1.weight`
//!   `[out, in, kh, kw]`) for the models whose channel count varies (LeNet, ResNet).
//!   Both are checked against the zoo's shapes for the model (the head's columns, the stem's
//!   other dims), and a model that would hold more than twice the values `W` does is refused,
//!   before anything is built: a crafted `W` cannot make the program allocate petabytes.
//! - The model runs in eval mode. `--train-mode` is PyTorch's `model.train()` instead: batch
//!   norm normalises with the batch's own statistics (so N * H * W must exceed 1 at every batch
//!   norm), and dropout, where the model has it, drops with its fixed seed.
//!
//! Any error (a bad argument, a file that cannot be read, a key or a shape that does not fit)
//! is printed with the key and shapes at fault, and the exit status is 1 (2 for bad usage).

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use tapegrad::models::{by_name, check_file, default_input, footprint, NAMES};
use tapegrad::nn::checkpoint::{check_safetensors_offsets, Checkpoint};
use tapegrad::prelude::*;

const USAGE: &str = "usage: infer --model NAME --weights W.safetensors --input X.safetensors \
                     --output Y.safetensors [--classes N] [--train-mode]";

/// The command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub model: String,
    pub weights: PathBuf,
    pub input: PathBuf,
    pub output: PathBuf,
    pub classes: Option<usize>,
    pub train_mode: bool,
}

fn usage(msg: impl std::fmt::Display) -> Error {
    Error::invalid("infer", format!("{msg}\n{USAGE}"))
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Options> {
        let (mut model, mut weights, mut input, mut output) = (None, None, None, None);
        let (mut classes, mut train_mode) = (None, false);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--train-mode" {
                train_mode = true;
                continue;
            }
            let slot = match flag.as_str() {
                "--model" => &mut model,
                "--weights" => &mut weights,
                "--input" => &mut input,
                "--output" => &mut output,
                "--classes" => &mut classes,
                other => return Err(usage(format!("unknown argument {other}"))),
            };
            let value = it
                .next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))?;
            *slot = Some(value.clone());
        }
        let need =
            |v: Option<String>, flag: &str| v.ok_or_else(|| usage(format!("{flag} is required")));
        let classes = match classes {
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(usage(format!("--classes {s}: expected a positive integer"))),
            },
            None => None,
        };
        Ok(Options {
            model: need(model, "--model")?,
            weights: need(weights, "--weights")?.into(),
            input: need(input, "--input")?.into(),
            output: need(output, "--output")?.into(),
            classes,
            train_mode,
        })
    }
}

fn format_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        what: path.display().to_string(),
        msg: msg.into(),
    }
}

/// The tensor under `input`: F32 and rank 4, or an error naming what is there instead.
pub fn read_input(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read the input", e))?;
    // Offsets near 2^64 would overflow inside the safetensors crate.
    check_safetensors_offsets(&bytes, &path.display().to_string())?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| format_err(path, format!("not a readable safetensors file: {e}")))?;
    let view = file.tensor("input").map_err(|_| {
        let mut names = file.names();
        names.sort();
        // A whole state dict passed by mistake would bury the message: name a few.
        let more = names.len().saturating_sub(8);
        names.truncate(8);
        let mut held = names.join(", ");
        if more > 0 {
            held.push_str(&format!(" and {more} more"));
        }
        format_err(
            path,
            format!("no tensor named `input` (the file holds: {held})"),
        )
    })?;
    if view.dtype() != Dtype::F32 {
        let msg = format!("tensor `input` is {}, expected F32", view.dtype());
        return Err(format_err(path, msg));
    }
    let dims = view.shape().to_vec();
    if dims.len() != 4 || dims.contains(&0) {
        let msg = format!(
            "tensor `input` has shape {dims:?} (rank {}), expected a non-empty [N, C, H, W]",
            dims.len()
        );
        return Err(format_err(path, msg));
    }
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(data, dims)
}

/// A parameter's name and dims.
type Named = (String, Vec<usize>);

/// The names and shapes of the model's first 4-D weight (its stem convolution) and last 2-D
/// weight (its classifier), in registration order.
fn stem_and_head(model: &dyn Module) -> (Option<Named>, Option<Named>) {
    let (mut stem, mut head) = (None, None);
    model.visit("", &mut |name, e| {
        if let EntryRef::Param(p) = e {
            let dims = p.value().dims().to_vec();
            match dims.len() {
                4 if stem.is_none() => stem = Some((name.to_string(), dims)),
                2 => head = Some((name.to_string(), dims)),
                _ => {}
            }
        }
    });
    (stem, head)
}

/// The class and input-channel counts of `name` that the weights in `ckpt` (read from `path`)
/// were saved with: the rows of the head's weight, and the input channels of the stem's (first
/// convolution's) weight, each checked against the zoo's shape before it is used. A key the
/// file lacks keeps `classes` (else 10) or the zoo's default channels, for the strict load to
/// name.
fn sizes_from_file(
    name: &str,
    classes: Option<usize>,
    ckpt: &Checkpoint,
    path: &Path,
) -> Result<(usize, usize)> {
    let [_, channels, h, w] = default_input(name);
    // The zoo's shapes for one class and one channel, from the name alone: nothing is built.
    let probe = footprint(name, 1, [1, h, w])?;
    let in_file = |key: &str| {
        ckpt.model
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, t)| t.dims().to_vec())
    };
    let given = classes;
    let mut classes = given.unwrap_or(10);
    let (key, want) = &probe.head;
    if let (None, Some(d)) = (given, in_file(key)) {
        match d[..] {
            [rows, features] if rows > 0 && features == want[1] => classes = rows,
            _ => {
                let msg = format!(
                    "{key} has shape {d:?}; {name} expects [classes > 0, {}]",
                    want[1]
                );
                return Err(format_err(path, msg));
            }
        }
    }
    let mut channels = channels;
    if let Some((key, want)) = &probe.stem {
        if let Some(d) = in_file(key) {
            match d[..] {
                [o, c, kh, kw] if c > 0 && [o, kh, kw] == [want[0], want[2], want[3]] => {
                    channels = c
                }
                _ => {
                    let msg = format!(
                        "{key} has shape {d:?}; {name} expects [{}, channels > 0, {}, {}]",
                        want[0], want[2], want[3]
                    );
                    return Err(format_err(path, msg));
                }
            }
        }
    }
    Ok((classes, channels))
}

/// Builds `opts.model`, loads the weights strictly, runs it on the input, writes the logits to
/// `opts.output` and returns them.
pub fn run(opts: &Options) -> Result<Tensor> {
    let name = opts.model.as_str();
    let ckpt = Checkpoint::load(&opts.weights)?;
    let (classes, channels) = sizes_from_file(name, opts.classes, &ckpt, &opts.weights)?;
    // Sizes the file cannot back (a zero-size head claiming trillions of rows, a model name with
    // absurd widths) are refused here, before anything is allocated for them.
    let [_, _, h, w] = default_input(name);
    let what = opts.weights.display().to_string();
    check_file(name, classes, [channels, h, w], &ckpt.model, &what)?;
    let mut model = by_name(name, classes, channels, 0)?;
    ckpt.restore_model(model.as_mut(), true)
        .map_err(|e| match e {
            Error::Format { msg, .. } => format_err(&opts.weights, format!("{name}: {msg}")),
            other => other,
        })?;

    let x = read_input(&opts.input)?;
    let (stem, _) = stem_and_head(model.as_mut());
    if let Some((key, d)) = stem {
        if x.dims()[1] != d[1] {
            let msg = format!(
                "tensor `input` has {} channels ({}), but {name} takes {} ({key} is {d:?})",
                x.dims()[1],
                x.shape(),
                d[1]
            );
            return Err(format_err(&opts.input, msg));
        }
    }

    model.set_training(opts.train_mode);
    let tape = Tape::inference();
    let shape = x.shape().clone();
    let logits = model
        .forward(tape.input(x))
        .map_err(|e| Error::invalid("infer", format!("{name} on input {shape}: {e}")))?
        .value();
    write_logits(&opts.output, &logits)?;
    Ok(logits)
}

/// Writes `logits` under the key `logits`, F32 (the crate writes a temporary file and renames
/// it, so a failure leaves no partial output).
pub fn write_logits(path: &Path, logits: &Tensor) -> Result<()> {
    let bytes: Vec<u8> = logits.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    let io = |e: safetensors::SafeTensorError| {
        Error::io_msg(path, format!("cannot write the logits: {e}"))
    };
    let view = TensorView::new(Dtype::F32, logits.dims().to_vec(), &bytes).map_err(io)?;
    safetensors::serialize_to_file([("logits", view)], None, path).map_err(io)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}\nmodels: {}", NAMES.join(", "));
        return;
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(logits) => println!(
            "{}: logits {} written to {}",
            opts.model,
            logits.shape(),
            opts.output.display()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
