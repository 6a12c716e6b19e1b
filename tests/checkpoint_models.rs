//! The model zoo through checkpoints: torchvision's state_dict names and dtypes on disk, and
//! bit-identical outputs after a save and a load into a freshly built network.

use serde_json::Value;
use std::path::PathBuf;
use tapegrad::models::{by_name, ResNet, ResNetConfig};
use tapegrad::nn::checkpoint::{self, counters, state_dict};
use tapegrad::prelude::*;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("checkpoint-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A ResNet-18 with the small-image stem and 4 channels in its first stage.
fn resnet(seed: u64) -> ResNet {
    let c = ResNetConfig {
        width: 4,
        small_stem: true,
        ..ResNetConfig::new(18, 5)
    };
    ResNet::new(c, &mut rng(seed)).unwrap()
}

fn eval_out(m: &mut dyn Module, x: &Tensor) -> Vec<u32> {
    m.eval();
    let tape = Tape::inference();
    let y = m.forward(tape.input(x.clone())).unwrap().value();
    y.data().iter().map(|v| v.to_bits()).collect()
}

/// The JSON header of a safetensors file.
fn header(path: &std::path::Path) -> serde_json::Map<String, Value> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

#[test]
fn resnet18_round_trips_under_torchvisions_names() {
    let dir = scratch("resnet18");
    let path = dir.join("resnet18.safetensors");
    let mut a = resnet(1);
    // One training-mode pass moves every batch norm's running statistics and count.
    a.train();
    let tape = Tape::new();
    a.forward(tape.input(Tensor::randn([4, 3, 8, 8], &mut rng(2))))
        .unwrap();
    drop(tape);
    checkpoint::save(&a, &path).unwrap();

    // torchvision's resnet18().state_dict() has 122 entries: 20 convolutions (stem, 16 in the
    // blocks, 3 downsample projections) with one weight each, 20 batch norms with 5 entries
    // each (weight, bias, running_mean, running_var, num_batches_tracked), and fc's 2.
    let h = header(&path);
    let keys: Vec<&String> = h.keys().filter(|k| *k != "__metadata__").collect();
    assert_eq!(keys.len(), 20 + 20 * 5 + 2);
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv2.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.num_batches_tracked",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(h.contains_key(name), "{name} missing from {keys:?}");
    }
    for (k, v) in h.iter().filter(|(k, _)| *k != "__metadata__") {
        let want = if k.ends_with(".num_batches_tracked") {
            "I64"
        } else {
            "F32"
        };
        assert_eq!(v["dtype"], want, "{k}");
    }
    assert_eq!(h["fc.weight"]["shape"], serde_json::json!([5, 32]));

    let mut b = resnet(3);
    let x = Tensor::randn([2, 3, 8, 8], &mut rng(4));
    assert_ne!(eval_out(&mut a, &x), eval_out(&mut b, &x));
    assert!(checkpoint::load(&mut b, &path, true).unwrap().is_clean());
    assert_eq!(eval_out(&mut a, &x), eval_out(&mut b, &x));
    let counts = counters(&b);
    assert_eq!(counts.len(), 20);
    assert!(counts
        .iter()
        .all(|(n, c)| n.ends_with(".num_batches_tracked") && *c == 1));
}

/// A safetensors file as PyTorch's `save_file` writes it: F32 tensors, `num_batches_tracked`
/// as I64 scalars, written here with the `safetensors` crate directly (not tapegrad's saver).
fn torch_style_file(path: &std::path::Path, floats: &[(String, Tensor)], ints: &[(&str, i64)]) {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = floats
        .iter()
        .map(|(n, t)| {
            let b = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), Dtype::F32, t.dims().to_vec(), b)
        })
        .chain(
            ints.iter()
                .map(|(n, v)| (n.to_string(), Dtype::I64, vec![], v.to_le_bytes().to_vec())),
        )
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn a_file_without_num_batches_tracked_loads_strictly_as_pytorch_allows() {
    // Many published safetensors exports leave out the counters; PyTorch's strict
    // load_state_dict accepts them (batch norm keeps the counter it has) and so does tapegrad.
    let dir = scratch("no-counters");
    let mut a = resnet(1);
    a.train();
    let tape = Tape::new();
    a.forward(tape.input(Tensor::randn([4, 3, 8, 8], &mut rng(2))))
        .unwrap();
    drop(tape);
    let floats = state_dict(&a);
    assert!(floats.iter().all(|(n, _)| !n.contains("num_batches")));

    let without = dir.join("without.safetensors");
    torch_style_file(&without, &floats, &[]);
    let mut b = resnet(3);
    let report = checkpoint::load(&mut b, &without, true).unwrap();
    assert!(report.is_clean(), "{report}");
    // The same logits as the model the tensors came from, bit for bit; fresh counters stay 0.
    let x = Tensor::randn([2, 3, 8, 8], &mut rng(4));
    assert_eq!(eval_out(&mut a, &x), eval_out(&mut b, &x));
    assert!(counters(&b).iter().all(|(_, c)| *c == 0));

    // With the counters, past f32's last exact integer (2^24 + 1 = 16,777,217): kept exactly.
    let with = dir.join("with.safetensors");
    let names: Vec<String> = counters(&a).into_iter().map(|(n, _)| n).collect();
    let ints: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), 16_777_217)).collect();
    torch_style_file(&with, &floats, &ints);
    let mut c = resnet(5);
    assert!(checkpoint::load(&mut c, &with, true).unwrap().is_clean());
    assert_eq!(eval_out(&mut a, &x), eval_out(&mut c, &x));
    assert!(counters(&c).iter().all(|(_, n)| *n == 16_777_217));
    // ... and saved again as the same integers.
    let again = dir.join("again.safetensors");
    checkpoint::save(&c, &again).unwrap();
    let h = header(&again);
    assert_eq!(h["bn1.num_batches_tracked"]["dtype"], "I64");
    let mut d = resnet(6);
    checkpoint::load(&mut d, &again, true).unwrap();
    assert_eq!(counters(&d), counters(&c));

    // Any other missing key is still refused, by name, and the model is left as it was.
    let missing = dir.join("missing.safetensors");
    let fewer: Vec<(String, Tensor)> = floats
        .iter()
        .filter(|(n, _)| n != "layer1.0.bn1.running_mean")
        .cloned()
        .collect();
    torch_style_file(&missing, &fewer, &[]);
    let mut e = resnet(7);
    let before = eval_out(&mut e, &x);
    let msg = checkpoint::load(&mut e, &missing, true)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing keys: layer1.0.bn1.running_mean"),
        "{msg}"
    );
    assert!(!msg.contains("num_batches_tracked"), "{msg}");
    assert_eq!(eval_out(&mut e, &x), before);
    // A negative count is refused, naming the counter.
    let negative = dir.join("negative.safetensors");
    torch_style_file(&negative, &floats, &[("bn1.num_batches_tracked", -1)]);
    let msg = checkpoint::load(&mut resnet(8), &negative, true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bn1.num_batches_tracked"), "{msg}");
}

#[test]
fn a_resnet_checkpoint_does_not_fit_the_plain_network() {
    // plain-18 has no shortcut projections: a strict load names each downsample key.
    let dir = scratch("plain18");
    let path = dir.join("resnet18.safetensors");
    checkpoint::save(&resnet(1), &path).unwrap();
    let c = ResNetConfig {
        width: 4,
        small_stem: true,
        plain: true,
        ..ResNetConfig::new(18, 5)
    };
    let mut plain = ResNet::new(c, &mut rng(1)).unwrap();
    let msg = checkpoint::load(&mut plain, &path, true)
        .unwrap_err()
        .to_string();
    for stage in ["layer2", "layer3", "layer4"] {
        assert!(
            msg.contains(&format!("{stage}.0.downsample.0.weight")),
            "{msg}"
        );
    }
    let report = checkpoint::load(&mut plain, &path, false).unwrap();
    assert!(report.missing.is_empty() && report.mismatched.is_empty());
    assert_eq!(report.unexpected.len(), 3 * 6);
}

#[test]
fn lenet_from_the_zoo_round_trips() {
    let dir = scratch("lenet");
    let path = dir.join("lenet.safetensors");
    let mut a = by_name("lenet5", 10, 1, 1).unwrap();
    checkpoint::save(&a, &path).unwrap();
    let mut b = by_name("lenet5", 10, 1, 2).unwrap();
    let x = Tensor::randn([2, 1, 28, 28], &mut rng(5));
    assert_ne!(eval_out(&mut a, &x), eval_out(&mut b, &x));
    assert!(checkpoint::load(&mut b, &path, true).unwrap().is_clean());
    assert_eq!(eval_out(&mut a, &x), eval_out(&mut b, &x));
}
