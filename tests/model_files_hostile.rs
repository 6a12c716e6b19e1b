//! Crafted model files for the programs that build a network from a file (`infer`, `predict`,
//! `train --resume`): sizes that would ask for petabytes are refused before anything is built,
//! with an error naming the key and the shape; offsets near 2^64 are an error, not an overflow.
//!
//! Run in the debug profile too: `cargo test --test model_files_hostile`.

#[path = "../examples/infer.rs"]
#[allow(dead_code)]
mod infer;

use std::path::{Path, PathBuf};
use tapegrad::models::build;
use tapegrad::nn::checkpoint::{state_dict, Checkpoint};
use tapegrad::prelude::*;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A safetensors file of F64 tensors tiling a data section up to 2^64 - 16 bytes (fifteen of
/// 2^60 bytes, then 2^59 .. 2^4), followed by 16 bytes: its offsets overflow once the header's
/// length is added to them.
fn offsets_near_2_pow_64() -> Vec<u8> {
    let sizes = std::iter::repeat_n(60u32, 15).chain((4..=59).rev());
    let mut entries = Vec::new();
    let mut start: u64 = 0;
    for (i, log2) in sizes.enumerate() {
        let (n, end) = (1u64 << (log2 - 3), start + (1u64 << log2));
        let name = if i == 0 {
            "input".to_string()
        } else {
            format!("t{i}")
        };
        entries.push(format!(
            r#""{name}":{{"dtype":"F64","shape":[{n}],"data_offsets":[{start},{end}]}}"#
        ));
        start = end;
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend([0u8; 16]);
    out
}

#[test]
fn an_input_file_with_offsets_near_2_pow_64_is_an_error() {
    let dir = scratch("input-offsets");
    let path = dir.join("input.safetensors");
    std::fs::write(&path, offsets_near_2_pow_64()).unwrap();
    let msg = infer::read_input(&path).unwrap_err().to_string();
    assert!(msg.contains("input.safetensors"), "{msg}");
    assert!(msg.contains("run past the end"), "{msg}");
}

#[path = "../examples/predict.rs"]
#[allow(dead_code)]
mod predict;

#[path = "../examples/train/main.rs"]
#[allow(dead_code)]
mod train;

/// The tensors of `build(name, classes, input)`.
fn tensors_of(name: &str, classes: usize, input: [usize; 3]) -> Vec<(String, Tensor)> {
    let mut m = build(name, classes, input, 0).unwrap();
    state_dict(m.as_mut())
}

fn save(path: &Path, model: Vec<(String, Tensor)>, metadata: &[(&str, String)]) {
    let ckpt = Checkpoint {
        model,
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    };
    ckpt.save(path).unwrap();
}

fn expect(msg: &str, words: &[&str]) {
    for w in words {
        assert!(msg.contains(w), "expected {w:?} in: {msg}");
    }
}

#[test]
fn infer_refuses_a_head_or_stem_that_asks_for_petabytes() {
    let dir = scratch("infer");
    let weights = dir.join("w.safetensors");
    let opts = infer::Options {
        model: "resnet18".into(),
        weights: weights.clone(),
        input: dir.join("x.safetensors"),
        output: dir.join("y.safetensors"),
        classes: None,
        train_mode: false,
    };
    let good = tensors_of("resnet18-w8", 10, [3, 224, 224]);
    let with = |key: &str, dims: Vec<usize>| {
        let mut m = good.clone();
        m.retain(|(k, _)| k != key);
        m.push((key.into(), Tensor::zeros(dims)));
        m
    };
    // A head of 4e12 classes and no features: empty in the file, 8 PB as resnet18's head.
    let mut o = opts.clone();
    o.model = "resnet18-w8".into();
    save(&weights, with("fc.weight", vec![4_000_000_000_000, 0]), &[]);
    let msg = infer::run(&o).unwrap_err().to_string();
    expect(
        &msg,
        &[
            "w.safetensors",
            "fc.weight has shape [4000000000000, 0]",
            "[classes > 0, 64]",
        ],
    );
    // A stem of 10^12 input channels and no filters.
    save(
        &weights,
        with("conv1.weight", vec![0, 1_000_000_000_000, 7, 7]),
        &[],
    );
    let msg = infer::run(&o).unwrap_err().to_string();
    expect(
        &msg,
        &[
            "conv1.weight has shape [0, 1000000000000, 7, 7]",
            "[8, channels > 0, 7, 7]",
        ],
    );
    // Widths in the model name that the file cannot back: 2^20 channels in the first stage
    // (3e15 weights); at 2^40 the count overflows.
    save(&weights, good.clone(), &[]);
    o.model = "resnet18-w1048576".into();
    let msg = infer::run(&o).unwrap_err().to_string();
    let head = "fc.weight has shape [10, 64]; resnet18-w1048576 expects [classes > 0, 8388608]";
    expect(&msg, &[head]);
    // Given the class count, the stem's shape is what does not fit.
    o.classes = Some(10);
    let msg = infer::run(&o).unwrap_err().to_string();
    expect(
        &msg,
        &[
            "conv1.weight has shape [8, 3, 7, 7]",
            "[1048576, channels > 0, 7, 7]",
        ],
    );
    o.classes = None;
    o.model = "resnet18-w1099511627776".into();
    let msg = infer::run(&o).unwrap_err().to_string();
    expect(&msg, &["resnet18-w1099511627776", "overflows"]);
    // A class count of 10^12 on the command line.
    o.model = "resnet18-w8".into();
    o.classes = Some(1_000_000_000_000);
    let msg = infer::run(&o).unwrap_err().to_string();
    expect(
        &msg,
        &["fc.weight (file [10, 64], model [1000000000000, 64])"],
    );
}

/// The metadata the train example writes, for `name`, `classes` names and `input`.
fn run_metadata(name: &str, classes: usize, input: [usize; 3]) -> Vec<(&'static str, String)> {
    let names: Vec<String> = (0..classes).map(|i| format!("c{i}")).collect();
    vec![
        ("model.name", name.to_string()),
        ("model.input", serde_json::to_string(&input).unwrap()),
        ("data.classes", serde_json::to_string(&names).unwrap()),
        (
            "data.mean",
            serde_json::to_string(&vec![0.5; input[0]]).unwrap(),
        ),
        (
            "data.std",
            serde_json::to_string(&vec![0.25; input[0]]).unwrap(),
        ),
    ]
}

#[test]
fn predict_refuses_metadata_that_asks_for_petabytes() {
    let dir = scratch("predict");
    let path = dir.join("best.safetensors");
    let lenet = tensors_of("lenet5-modern", 10, [1, 28, 28]);
    let load = |meta: Vec<(&str, String)>| {
        save(&path, lenet.clone(), &meta);
        predict::load_model(&path, None).err().unwrap().to_string()
    };
    // The checkpoint of a real run loads.
    save(
        &path,
        lenet.clone(),
        &run_metadata("lenet5-modern", 10, [1, 28, 28]),
    );
    assert_eq!(predict::load_model(&path, None).unwrap().classes.len(), 10);
    // Widths of 100,000 in the model's name: 2.5e11 weights in conv2 alone.
    let wide = "lenet5-modern-100000-100000-100000-100000";
    let msg = load(run_metadata(wide, 10, [1, 28, 28]));
    expect(
        &msg,
        &[
            "best.safetensors",
            "features.3.weight (file [16, 6, 5, 5], model [100000, 100000, 5, 5])",
        ],
    );
    // A million class names: 84 million weights in the head, where the file has 840.
    let msg = load(run_metadata("lenet5-modern", 1_000_000, [1, 28, 28]));
    expect(
        &msg,
        &["classifier.2.weight (file [10, 84], model [1000000, 84])"],
    );
    // An input of 10^10 pixels, which every image would be resized to.
    let msg = load(run_metadata("lenet5-modern", 10, [1, 100_000, 100_000]));
    expect(&msg, &["model.input [1, 100000, 100000]", "pixels"]);
}

#[test]
fn resume_refuses_a_model_name_that_asks_for_petabytes() {
    let dir = scratch("resume");
    let path = dir.join("checkpoint.safetensors");
    let lenet = tensors_of("lenet5-modern", 10, [1, 28, 28]);
    save(&path, lenet.clone(), &[]);
    let ckpt = Checkpoint::load(&path).unwrap();
    let resume = Some((path.as_path(), &ckpt));
    assert!(train::build_model("lenet5-modern", 10, [1, 28, 28], 0, resume).is_ok());
    let wide = "lenet5-modern-100000-100000-100000-100000";
    let msg = train::build_model(wide, 10, [1, 28, 28], 0, resume)
        .err()
        .unwrap()
        .to_string();
    expect(
        &msg,
        &[
            "checkpoint.safetensors",
            "features.0.weight (file [6, 1, 5, 5], model [100000, 1, 5, 5])",
        ],
    );
}
