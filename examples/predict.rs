//! Classifies image files with a trained checkpoint, printing the five most probable classes.
//!
//! ```text
//! cargo run --release --example predict -- --checkpoint runs/NAME/best.safetensors shirt.png
//! cargo run --release --example predict -- --checkpoint CKPT --model lenet5-wide a.jpg b.png
//! ```
//!
//! A checkpoint written by the `train` example records the network, the input shape, the class
//! names and the normalisation; each image is converted to that input (grey or RGB, shorter
//! side resized, centre-cropped), normalised, and run through the network in evaluation mode.
//! Fashion-MNIST's images are light garments on black: a photo on a light background is
//! inverted first (`--invert auto`, the default, looks at the border).

use clap::{Parser, ValueEnum};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};
use tapegrad::autograd::{Error, Result, Tape, Tensor};
use tapegrad::data::{read_image, MAX_IMAGE_PIXELS};
use tapegrad::nn::checkpoint::Checkpoint;
use tapegrad::nn::Module;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Invert {
    /// Invert when the image's border is mostly light.
    Auto,
    Yes,
    No,
}

/// Classify images with a trained tapegrad checkpoint.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A checkpoint written by the train example.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The network (default: the one recorded in the checkpoint).
    #[arg(long)]
    model: Option<String>,
    /// Invert grey images (light background to dark).
    #[arg(long, value_enum, default_value_t = Invert::Auto)]
    invert: Invert,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// PNG or JPEG files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn format_err(what: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        what: what.display().to_string(),
        msg: msg.into(),
    }
}

/// A metadata entry of the checkpoint, parsed from JSON.
fn meta<T: serde::de::DeserializeOwned>(ckpt: &Checkpoint, path: &Path, key: &str) -> Result<T> {
    let text = ckpt.metadata.get(key).ok_or_else(|| {
        format_err(
            path,
            format!("{key} is missing: not a checkpoint of the train example"),
        )
    })?;
    serde_json::from_str(text).map_err(|e| format_err(path, format!("{key}: {e}")))
}

/// The image at `path` as a normalised `[1, c, h, w]` tensor.
fn load_image(
    path: &Path,
    [c, h, w]: [usize; 3],
    invert: Invert,
    mean: &[f32],
    std: &[f32],
) -> Result<Tensor> {
    let img = read_image(path, MAX_IMAGE_PIXELS)?;
    // Resize the shorter side to the input size, then take the centre.
    let (iw, ih) = (img.width().max(1) as f32, img.height().max(1) as f32);
    let scale = (w as f32 / iw).max(h as f32 / ih);
    let (rw, rh) = (
        ((iw * scale).round() as u32).max(w as u32),
        ((ih * scale).round() as u32).max(h as u32),
    );
    let img = img.resize_exact(rw, rh, FilterType::Triangle).crop_imm(
        (rw - w as u32) / 2,
        (rh - h as u32) / 2,
        w as u32,
        h as u32,
    );
    let mut planes = vec![0f32; c * h * w];
    match c {
        1 => {
            let grey = img.to_luma8();
            let px: Vec<f32> = grey.pixels().map(|p| p.0[0] as f32 / 255.0).collect();
            let border: Vec<f32> = (0..h * w)
                .filter(|i| i / w == 0 || i / w == h - 1 || i % w == 0 || i % w == w - 1)
                .map(|i| px[i])
                .collect();
            let light = border.iter().sum::<f32>() / border.len().max(1) as f32 > 0.5;
            let flip = invert == Invert::Yes || (invert == Invert::Auto && light);
            for (o, v) in planes.iter_mut().zip(px) {
                *o = if flip { 1.0 - v } else { v };
            }
        }
        3 => {
            for (i, p) in img.to_rgb8().pixels().enumerate() {
                for ch in 0..3 {
                    planes[ch * h * w + i] = p.0[ch] as f32 / 255.0;
                }
            }
        }
        _ => {
            return Err(Error::invalid(
                "predict",
                format!("inputs of {c} channels are not images"),
            ))
        }
    }
    for (ch, plane) in planes.chunks_mut(h * w).enumerate() {
        plane
            .iter_mut()
            .for_each(|v| *v = (*v - mean[ch]) / std[ch]);
    }
    Tensor::from_vec(planes, [1, c, h, w])
}

/// A network restored from a checkpoint of the train example, and what its inputs need.
pub struct Loaded {
    pub model: Box<dyn Module>,
    pub name: String,
    /// `[c, h, w]` of one input.
    pub shape: [usize; 3],
    pub classes: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub data: String,
}

/// Reads the checkpoint at `path` and restores its network (`model`, else the one it names),
/// in evaluation mode. The input shape and the class count come from the file's metadata and
/// the network's sizes from its name; all are checked (the input against the image pixel limit,
/// the network against the zoo and the file's tensors) before anything is built.
pub fn load_model(path: &Path, model: Option<&str>) -> Result<Loaded> {
    let ckpt = Checkpoint::load(path)?;
    let name = match model {
        Some(m) => m.to_string(),
        None => ckpt.metadata.get("model.name").cloned().ok_or_else(|| {
            format_err(
                path,
                "the checkpoint does not name its network: pass --model",
            )
        })?,
    };
    let shape: [usize; 3] = meta(&ckpt, path, "model.input")?;
    let classes: Vec<String> = meta(&ckpt, path, "data.classes")?;
    let mean: Vec<f32> = meta(&ckpt, path, "data.mean")?;
    let std: Vec<f32> = meta(&ckpt, path, "data.std")?;
    let [c, h, w] = shape;
    let pixels = (h as u64).checked_mul(w as u64);
    if ![1, 3].contains(&c) || h == 0 || w == 0 || pixels.is_none_or(|p| p > MAX_IMAGE_PIXELS) {
        return Err(format_err(
            path,
            format!(
                "model.input {shape:?} is not an image shape: 1 or 3 channels, and at most \
                 {MAX_IMAGE_PIXELS} pixels"
            ),
        ));
    }
    if classes.is_empty() {
        return Err(format_err(path, "data.classes is empty"));
    }
    if mean.len() != c || std.len() != c {
        return Err(format_err(
            path,
            "data.mean and data.std must have one entry per channel",
        ));
    }
    let what = path.display().to_string();
    tapegrad::models::check_file(&name, classes.len(), shape, &ckpt.model, &what)?;
    let mut model = tapegrad::models::build(&name, classes.len(), shape, 0)?;
    ckpt.restore_model(model.as_mut(), true)?;
    model.eval();
    Ok(Loaded {
        model,
        name,
        shape,
        classes,
        mean,
        std,
        data: data_name(&ckpt),
    })
}

fn run(args: &Args) -> Result<()> {
    let Loaded {
        mut model,
        name,
        shape,
        classes,
        mean,
        std,
        data,
    } = load_model(&args.checkpoint, args.model.as_deref())?;
    println!(
        "{name} trained on {data}; input {shape:?}, {} classes",
        classes.len()
    );
    for img_path in &args.images {
        let x = load_image(img_path, shape, args.invert, &mean, &std)?;
        let tape = Tape::inference();
        let logits = model.forward(tape.input(x))?;
        let probs = logits.softmax(1)?.value();
        let k = args.top.clamp(1, classes.len());
        let (values, indices) = probs.topk(k, 1)?;
        println!("{}", img_path.display());
        for (p, i) in values.data().iter().zip(indices.data()) {
            let i = *i as usize;
            println!("  {:6.2}%  {:>2} {}", 100.0 * p, i, classes[i]);
        }
    }
    Ok(())
}

fn data_name(ckpt: &Checkpoint) -> String {
    ckpt.metadata
        .get("data.name")
        .cloned()
        .unwrap_or_else(|| "unknown data".into())
}
