//! The model zoo through checkpoints: torchvision's state_dict names and dtypes on disk, and
//! bit-identical outputs after a save and a load into a freshly built network.

use serde_json::Value;
use std::path::PathBuf;
use tapegrad::models::{by_name, ResNet, ResNetConfig};
use tapegrad::nn::checkpoint::{self, state_dict};
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
    checkpoint::save(&mut a, &path).unwrap();

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
    let counts: Vec<f32> = state_dict(&mut b)
        .iter()
        .filter(|(n, _)| n.ends_with("num_batches_tracked"))
        .map(|(_, t)| t.item().unwrap())
        .collect();
    assert_eq!(counts, vec![1.0; 20]);
}

#[test]
fn a_resnet_checkpoint_does_not_fit_the_plain_network() {
    // plain-18 has no shortcut projections: a strict load names each downsample key.
    let dir = scratch("plain18");
    let path = dir.join("resnet18.safetensors");
    checkpoint::save(&mut resnet(1), &path).unwrap();
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
    checkpoint::save(&mut a, &path).unwrap();
    let mut b = by_name("lenet5", 10, 1, 2).unwrap();
    let x = Tensor::randn([2, 1, 28, 28], &mut rng(5));
    assert_ne!(eval_out(&mut a, &x), eval_out(&mut b, &x));
    assert!(checkpoint::load(&mut b, &path, true).unwrap().is_clean());
    assert_eq!(eval_out(&mut a, &x), eval_out(&mut b, &x));
}
