//! The `infer` example's logic (compiled in from examples/infer.rs): logits written under
//! `logits` equal a direct forward pass, class and channel counts come from the weights, and
//! every bad key or shape is an error naming it, never a panic.

#[path = "../examples/infer.rs"]
#[allow(dead_code)]
mod infer;

use infer::{read_input, run, Options};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use tapegrad::models::by_name;
use tapegrad::nn::checkpoint::{self, state_dict, Checkpoint};
use tapegrad::prelude::*;

/// A model's tensors by name.
type StateDict = Vec<(String, Tensor)>;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("infer-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes tensors with the safetensors crate: `(name, dtype, shape, little-endian bytes)`.
fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn f32_bytes(t: &Tensor) -> Vec<u8> {
    t.data().iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An input file holding `x` under `key`, and a label tensor the example must ignore.
fn write_input(path: &Path, key: &str, x: &Tensor) {
    let labels = vec![0u8; 8 * x.dims()[0]];
    write_raw(
        path,
        &[
            (key, Dtype::F32, x.dims().to_vec(), f32_bytes(x)),
            ("labels", Dtype::I64, vec![x.dims()[0]], labels),
        ],
    );
}

/// A small-stem ResNet-18 with `classes` outputs whose batch norms have moved off their
/// initial statistics (one training pass), saved to `dir/weights.safetensors`.
fn resnet_weights(dir: &Path, classes: usize) -> (Box<dyn Module>, PathBuf) {
    let mut m = by_name("resnet18-small", classes, 3, 11).unwrap();
    m.train();
    let tape = Tape::new();
    m.forward(tape.input(Tensor::randn([4, 3, 8, 8], &mut rng(12))))
        .unwrap();
    drop(tape);
    let path = dir.join("weights.safetensors");
    checkpoint::save(m.as_mut(), &path).unwrap();
    (m, path)
}

fn opts(dir: &Path, model: &str, weights: &Path) -> Options {
    Options {
        model: model.into(),
        weights: weights.into(),
        input: dir.join("input.safetensors"),
        output: dir.join("logits.safetensors"),
        classes: None,
        train_mode: false,
    }
}

fn forward(m: &mut dyn Module, x: &Tensor, training: bool) -> Tensor {
    m.set_training(training);
    let tape = Tape::inference();
    m.forward(tape.input(x.clone())).unwrap().value()
}

/// The `logits` tensor of an output file, checked to be F32.
fn read_logits(path: &Path) -> Tensor {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.names(), ["logits"]);
    let v = file.tensor("logits").unwrap();
    assert_eq!(v.dtype(), Dtype::F32);
    let data = v
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor::from_vec(data, v.shape().to_vec()).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn logits_match_a_direct_forward_in_eval_and_train_mode() {
    let dir = scratch("resnet");
    let (mut m, weights) = resnet_weights(&dir, 10);
    let x = Tensor::randn([2, 3, 16, 16], &mut rng(13));
    let mut o = opts(&dir, "resnet18-small", &weights);
    write_input(&o.input, "input", &x);

    // The class count is read off fc.weight ([10, 32]); the same weights on the same input
    // through the same kernels give the same bits.
    let got = run(&o).unwrap();
    let written = read_logits(&o.output);
    assert_eq!(written.dims(), [2, 10]);
    assert_eq!(bits(&written), bits(&got));
    let eval = forward(m.as_mut(), &x, false);
    assert_eq!(bits(&written), bits(&eval));

    // Train mode normalises by the batch's statistics, so the logits differ from eval's, and
    // equal a direct train-mode pass of a model holding the same weights.
    o.train_mode = true;
    let train = read_logits_after(&o);
    assert_ne!(bits(&train), bits(&eval));
    let mut fresh = by_name("resnet18-small", 10, 3, 99).unwrap();
    checkpoint::load(fresh.as_mut(), &weights, true).unwrap();
    assert_eq!(bits(&train), bits(&forward(fresh.as_mut(), &x, true)));
}

fn read_logits_after(o: &Options) -> Tensor {
    run(o).unwrap();
    read_logits(&o.output)
}

#[test]
fn classes_and_channels_come_from_the_weights() {
    let dir = scratch("counts");
    // LeNet-5 for 3-channel input and 7 classes: neither is the zoo's default (1, 10).
    let mut m = by_name("lenet5", 7, 3, 5).unwrap();
    let weights = dir.join("lenet.safetensors");
    checkpoint::save(m.as_mut(), &weights).unwrap();
    let x = Tensor::randn([3, 3, 28, 28], &mut rng(6));
    let mut o = opts(&dir, "lenet5", &weights);
    write_input(&o.input, "input", &x);
    let got = read_logits_after(&o);
    assert_eq!(got.dims(), [3, 7]);
    assert_eq!(bits(&got), bits(&forward(m.as_mut(), &x, false)));

    // --classes that disagrees with the file: the strict load names the head's keys.
    o.classes = Some(5);
    let msg = run(&o).unwrap_err().to_string();
    assert!(
        msg.contains("classifier.2.weight (file [7, 84], model [5, 84])"),
        "{msg}"
    );
    assert!(
        msg.contains("classifier.2.bias (file [7], model [5])"),
        "{msg}"
    );

    // A single-channel batch for the 3-channel model.
    o.classes = None;
    write_input(
        &o.input,
        "input",
        &Tensor::randn([3, 1, 28, 28], &mut rng(7)),
    );
    let msg = run(&o).unwrap_err().to_string();
    assert!(
        msg.contains("1 channels") && msg.contains("takes 3"),
        "{msg}"
    );
    assert!(msg.contains("features.0.weight"), "{msg}");

    // The right channels at the wrong size: an error from the forward pass, not a panic.
    write_input(
        &o.input,
        "input",
        &Tensor::randn([1, 3, 20, 20], &mut rng(8)),
    );
    let msg = run(&o).unwrap_err().to_string();
    assert!(msg.contains("lenet5 on input [1, 3, 20, 20]"), "{msg}");
}

#[test]
fn bad_inputs_are_named() {
    let dir = scratch("inputs");
    let (_, weights) = resnet_weights(&dir, 10);
    let o = opts(&dir, "resnet18-small", &weights);
    let err = |o: &Options| {
        let _ = std::fs::remove_file(&o.output);
        let msg = run(o).unwrap_err().to_string();
        assert!(!o.output.exists(), "an output was written despite: {msg}");
        msg
    };

    write_input(
        &o.input,
        "images",
        &Tensor::randn([2, 3, 8, 8], &mut rng(1)),
    );
    let msg = err(&o);
    assert!(msg.contains("no tensor named `input`"), "{msg}");
    assert!(msg.contains("images, labels"), "{msg}");

    write_input(&o.input, "input", &Tensor::randn([3, 8, 8], &mut rng(1)));
    let msg = err(&o);
    assert!(msg.contains("[3, 8, 8] (rank 3)"), "{msg}");

    write_input(&o.input, "input", &Tensor::randn([2, 4, 8, 8], &mut rng(1)));
    let msg = err(&o);
    assert!(
        msg.contains("4 channels") && msg.contains("conv1.weight"),
        "{msg}"
    );

    let x = Tensor::randn([1, 3, 2, 2], &mut rng(1));
    let f64_bytes = x.data().iter().flat_map(|&v| (v as f64).to_le_bytes());
    write_raw(
        &o.input,
        &[("input", Dtype::F64, vec![1, 3, 2, 2], f64_bytes.collect())],
    );
    let msg = err(&o);
    assert!(msg.contains("`input` is F64, expected F32"), "{msg}");

    std::fs::write(&o.input, b"not a safetensors file").unwrap();
    let msg = err(&o);
    assert!(msg.contains("input.safetensors"), "{msg}");
    assert!(read_input(&dir.join("absent.safetensors")).is_err());

    // Train mode on one value per channel (batch 1, and layer4 is 1x1 at 8x8 input).
    write_input(&o.input, "input", &Tensor::randn([1, 3, 8, 8], &mut rng(1)));
    let mut t = o.clone();
    t.train_mode = true;
    let msg = err(&t);
    assert!(msg.contains("more than one value per channel"), "{msg}");
}

#[test]
fn weights_that_do_not_fit_are_named() {
    let dir = scratch("weights");
    let (mut m, _) = resnet_weights(&dir, 10);
    let good = state_dict(m.as_mut());
    let o = opts(&dir, "resnet18-small", &dir.join("bad.safetensors"));
    write_input(&o.input, "input", &Tensor::randn([2, 3, 8, 8], &mut rng(1)));
    let with = |edit: &dyn Fn(&mut StateDict)| {
        let mut model = good.clone();
        edit(&mut model);
        let ckpt = Checkpoint {
            model,
            ..Default::default()
        };
        ckpt.save(&o.weights).unwrap();
        run(&o).unwrap_err().to_string()
    };

    let msg = with(&|m| m.retain(|(n, _)| n != "layer2.1.bn1.running_var"));
    assert!(
        msg.contains("missing keys: layer2.1.bn1.running_var"),
        "{msg}"
    );
    let msg = with(&|m| m.push(("layer5.0.conv1.weight".into(), Tensor::zeros([1]))));
    assert!(
        msg.contains("unexpected keys: layer5.0.conv1.weight"),
        "{msg}"
    );
    let msg = with(&|m| {
        let e = m
            .iter_mut()
            .find(|(n, _)| n == "layer1.0.conv2.weight")
            .unwrap();
        e.1 = Tensor::zeros([4, 4, 1, 1]);
    });
    assert!(
        msg.contains("layer1.0.conv2.weight (file [4, 4, 1, 1], model [64, 64, 3, 3])"),
        "{msg}"
    );
    let msg = with(&|m| {
        let e = m.iter_mut().find(|(n, _)| n == "fc.weight").unwrap();
        e.1 = Tensor::zeros([32]);
    });
    assert!(msg.contains("fc.weight has shape [32]"), "{msg}");

    let mut absent = o.clone();
    absent.weights = dir.join("absent.safetensors");
    let msg = run(&absent).unwrap_err().to_string();
    assert!(msg.contains("absent.safetensors"), "{msg}");
    let mut unknown = o.clone();
    unknown.model = "resnet19".into();
    let msg = run(&unknown).unwrap_err().to_string();
    assert!(msg.contains("unknown model 'resnet19'"), "{msg}");
}

#[test]
fn the_command_line_is_parsed_or_explained() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let o = Options::parse(&args(
        "--model resnet18 --weights w --input x --output y --classes 5 --train-mode",
    ))
    .unwrap();
    assert_eq!(o.model, "resnet18");
    assert_eq!((o.classes, o.train_mode), (Some(5), true));
    assert_eq!(o.output, PathBuf::from("y"));
    for (line, want) in [
        (
            "--model resnet18 --weights w --input x",
            "--output is required",
        ),
        (
            "--model resnet18 --weights w --input x --output y --classes 0",
            "--classes 0",
        ),
        (
            "--model resnet18 --weights w --input x --output y --classes",
            "--classes needs a value",
        ),
        (
            "--model resnet18 --weights w --input x --output y --batch 2",
            "unknown argument --batch",
        ),
    ] {
        let msg = Options::parse(&args(line)).unwrap_err().to_string();
        assert!(
            msg.contains(want) && msg.contains("usage:"),
            "{line}: {msg}"
        );
    }
}
