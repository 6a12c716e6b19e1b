//! A model loaded from a safetensors file with torchvision's names gives the same logits as an
//! independent reference within 1e-4.
//!
//! Each test lays out every tensor torchvision's `state_dict` would hold for the network (names
//! and PyTorch shapes written out here by hand, not taken from the model), draws random weights
//! and non-trivial batch-norm statistics (mean != 0, var != 1), writes them with the
//! `safetensors` crate (F32, and `num_batches_tracked` as I64 scalars, as
//! `safetensors.torch.save_file` does), loads the file strictly, and compares the model's
//! eval-mode logits with a forward pass written here in plain f64 loops over the same numbers.

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tapegrad::autograd::Pool2dOptions;
use tapegrad::models::blocks::ConvBnRelu;
use tapegrad::models::{Inception, ResNet, ResNetConfig};
use tapegrad::nn::checkpoint::{self, counters, state_dict};
use tapegrad::nn::forward_child;
use tapegrad::nn::layers::{AdaptiveAvgPool2d, Linear, MaxPool2d};
use tapegrad::prelude::*;

#[path = "interop/reference.rs"]
mod reference;
use reference::*;

/// Draws the tensors of a torchvision state dict.
struct Gen {
    g: Rng,
    w: Weights,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            g: rng(seed),
            w: Weights::new(),
        }
    }

    fn put(&mut self, name: String, t: Tensor) {
        let data = t.data().iter().map(|&v| v as f64).collect();
        let shape = t.dims().to_vec();
        let int = false;
        assert!(self.w.insert(name, Arr { shape, data, int }).is_none());
    }

    /// A convolution weight `[out, in, k, k]`, N(0, 2 / fan_in) so activations keep their scale.
    fn conv(&mut self, name: String, out: usize, cin: usize, k: usize) {
        let std = (2.0 / (cin * k * k) as f32).sqrt();
        let t = Tensor::randn([out, cin, k, k], &mut self.g).map(|v| v * std);
        self.put(name, t);
    }

    /// The five entries of a BatchNorm2d: scale in [0.5, 1.5], shift N(0, 0.2), running mean
    /// N(0, 0.3), running variance in [0.5, 2], and a batch count.
    fn bn(&mut self, prefix: &str, c: usize) {
        let t = Tensor::rand([c], 0.5, 1.5, &mut self.g);
        self.put(format!("{prefix}.weight"), t);
        let t = Tensor::randn([c], &mut self.g).map(|v| 0.2 * v);
        self.put(format!("{prefix}.bias"), t);
        let t = Tensor::randn([c], &mut self.g).map(|v| 0.3 * v);
        self.put(format!("{prefix}.running_mean"), t);
        let t = Tensor::rand([c], 0.5, 2.0, &mut self.g);
        self.put(format!("{prefix}.running_var"), t);
        let arr = Arr {
            shape: vec![],
            data: vec![123.0],
            int: true,
        };
        self.w.insert(format!("{prefix}.num_batches_tracked"), arr);
    }

    /// A linear layer `weight [out, in]`, `bias [out]`, scaled so logits are of order 1.
    fn linear(&mut self, prefix: &str, out: usize, cin: usize) {
        let std = (1.0 / cin as f32).sqrt();
        let t = Tensor::randn([out, cin], &mut self.g).map(|v| v * std);
        self.put(format!("{prefix}.weight"), t);
        let t = Tensor::randn([out], &mut self.g).map(|v| 0.1 * v);
        self.put(format!("{prefix}.bias"), t);
    }
}

/// Writes `w` (without `skip`) with the safetensors crate, as `safetensors.torch.save_file`.
fn write(w: &Weights, skip: Option<&str>, path: &Path) {
    let bytes: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = w
        .iter()
        .filter(|(n, _)| Some(n.as_str()) != skip)
        .map(|(n, a)| {
            let (dtype, b) = if a.int {
                let b = a.data.iter().flat_map(|&v| (v as i64).to_le_bytes());
                (Dtype::I64, b.collect())
            } else {
                let b = a.data.iter().flat_map(|&v| (v as f32).to_le_bytes());
                (Dtype::F32, b.collect())
            };
            (n.as_str(), dtype, a.shape.clone(), b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("interop-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- Comparing the model with the reference. ----

fn input(seed: u64) -> (Tensor, Act) {
    let t = Tensor::randn([2, 3, 16, 16], &mut rng(seed));
    let d = t.data().iter().map(|&v| v as f64).collect();
    let a = Act {
        n: 2,
        c: 3,
        h: 16,
        w: 16,
        d,
    };
    (t, a)
}

/// Writes `w`, checks the model expects exactly its keys and shapes, that a file lacking
/// `drop` fails naming it, then loads strictly and compares eval logits with `reference`.
fn check(
    model: &mut dyn Module,
    w: &Weights,
    drop: &str,
    dir: &Path,
    reference: impl Fn(&Act) -> Vec<Vec<f64>>,
) {
    // The tensors, and the counters (one-element integers, shape []).
    let counts = counters(model).into_iter().map(|(n, _)| (n, vec![]));
    let expected: BTreeMap<String, Vec<usize>> = state_dict(model)
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .chain(counts)
        .collect();
    let written: BTreeMap<String, Vec<usize>> = w
        .iter()
        .map(|(n, a)| (n.clone(), a.shape.clone()))
        .collect();
    assert_eq!(expected, written, "the model's keys are not torchvision's");

    let partial = dir.join("partial.safetensors");
    write(w, Some(drop), &partial);
    let msg = checkpoint::load(model, &partial, true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing keys") && msg.contains(drop), "{msg}");

    let path = dir.join("weights.safetensors");
    write(w, None, &path);
    assert!(checkpoint::load(model, &path, true).unwrap().is_clean());
    let loaded = counters(model);
    assert!(!loaded.is_empty());
    assert!(loaded
        .iter()
        .all(|(n, c)| n.ends_with("num_batches_tracked") && *c == 123));

    model.eval();
    let (x, xa) = input(99);
    let tape = Tape::inference();
    let got = model.forward(tape.input(x)).unwrap().value();
    let want = reference(&xa);
    assert_eq!(got.dims(), [2, want[0].len()]);
    let want: Vec<f64> = want.into_iter().flatten().collect();
    // The comparison must not be vacuous: the logits spread over order 1.
    let spread = want.iter().cloned().fold(f64::MIN, f64::max)
        - want.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.1, "logits {want:?}");
    for (i, (g, r)) in got.data().iter().zip(&want).enumerate() {
        assert!(
            (*g as f64 - r).abs() < 1e-4,
            "logit {i}: model {g}, reference {r}"
        );
    }
}

// ---- ResNet-18. ----

const RESNET_EPS: f64 = 1e-5;

/// torchvision's resnet18 state dict at `width` (64 there): stem, four stages of two basic
/// blocks, a downsample projection on the first block of stages 2-4, and `fc`.
fn resnet18_weights(width: usize, small_stem: bool, classes: usize, seed: u64) -> Weights {
    let mut g = Gen::new(seed);
    g.conv(
        "conv1.weight".into(),
        width,
        3,
        if small_stem { 3 } else { 7 },
    );
    g.bn("bn1", width);
    let mut cin = width;
    for stage in 0..4 {
        let c = width << stage;
        for b in 0..2 {
            let p = format!("layer{}.{b}", stage + 1);
            g.conv(format!("{p}.conv1.weight"), c, cin, 3);
            g.bn(&format!("{p}.bn1"), c);
            g.conv(format!("{p}.conv2.weight"), c, c, 3);
            g.bn(&format!("{p}.bn2"), c);
            if b == 0 && stage > 0 {
                g.conv(format!("{p}.downsample.0.weight"), c, cin, 1);
                g.bn(&format!("{p}.downsample.1"), c);
            }
            cin = c;
        }
    }
    g.linear("fc", classes, cin);
    g.w
}

/// torchvision's ResNet.forward with BasicBlock, in f64.
fn resnet18_reference(w: &Weights, x: &Act, small_stem: bool) -> Vec<Vec<f64>> {
    let (s, p) = if small_stem { (1, 1) } else { (2, 3) };
    let mut y = relu(bn(conv(x, &w["conv1.weight"], s, p), w, "bn1", RESNET_EPS));
    if !small_stem {
        y = max_pool(&y, 3, 2, 1, false);
    }
    for stage in 1..=4 {
        for b in 0..2 {
            let p = format!("layer{stage}.{b}");
            let s = if b == 0 && stage > 1 { 2 } else { 1 };
            let f = conv(&y, &w[&format!("{p}.conv1.weight")], s, 1);
            let f = relu(bn(f, w, &format!("{p}.bn1"), RESNET_EPS));
            let f = conv(&f, &w[&format!("{p}.conv2.weight")], 1, 1);
            let f = bn(f, w, &format!("{p}.bn2"), RESNET_EPS);
            let identity = match w.get(&format!("{p}.downsample.0.weight")) {
                Some(dw) => bn(
                    conv(&y, dw, s, 0),
                    w,
                    &format!("{p}.downsample.1"),
                    RESNET_EPS,
                ),
                None => y.clone(),
            };
            y = relu(add(f, &identity));
        }
    }
    head(&y, w, "fc")
}

fn resnet_case(small_stem: bool, dir: &str) {
    let dir = scratch(dir);
    let w = resnet18_weights(4, small_stem, 10, 5);
    let c = ResNetConfig {
        width: 4,
        small_stem,
        ..ResNetConfig::new(18, 10)
    };
    let mut model = ResNet::new(c, &mut rng(1)).unwrap();
    check(
        &mut model,
        &w,
        "layer3.0.downsample.1.running_var",
        &dir,
        |x| resnet18_reference(&w, x, small_stem),
    );
}

#[test]
fn resnet18_small_stem_matches_the_reference() {
    resnet_case(true, "resnet18-small");
}

#[test]
fn resnet18_imagenet_stem_matches_the_reference() {
    // 16x16 -> conv 7x7/2 -> 8x8 -> max pool 3x3/2 pad 1 -> 4x4 -> stages: 4, 2, 1, 1.
    resnet_case(false, "resnet18");
}

// ---- A GoogLeNet in miniature. ----

const GOOGLENET_EPS: f64 = 1e-3;

/// torchvision's GoogLeNet cut down to its stem convolution, first max pool, one inception
/// module and the head, with torchvision's child names.
#[derive(Module)]
struct TinyGoogLeNet {
    conv1: ConvBnRelu,
    maxpool1: MaxPool2d,
    inception3a: Inception,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
}

/// Channels: stem 6; inception 1x1 4, 3x3 reduce 3 -> 5, "5x5" (3x3 in torchvision) reduce 2
/// -> 3, pool projection 2; 4 + 5 + 3 + 2 = 14 into fc.
const STEM: usize = 6;
const INCEPTION: [usize; 6] = [4, 3, 5, 2, 3, 2];

impl TinyGoogLeNet {
    fn new(classes: usize, g: &mut Rng) -> TinyGoogLeNet {
        let [c1, r3, c3, r5, c5, pp] = INCEPTION;
        TinyGoogLeNet {
            conv1: ConvBnRelu::new(3, STEM, 7, 2, 3, GOOGLENET_EPS as f32, g).unwrap(),
            maxpool1: MaxPool2d(Pool2dOptions::new(3).stride(2).ceil_mode(true)),
            inception3a: Inception::new(STEM, c1, r3, c3, r5, c5, pp, 3, g).unwrap(),
            avgpool: AdaptiveAvgPool2d((1, 1)),
            fc: Linear::new(c1 + c3 + c5 + pp, classes, g).unwrap(),
        }
    }
}

impl TinyGoogLeNet {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = forward_child("conv1", &mut self.conv1, x)?;
        let y = forward_child("maxpool1", &mut self.maxpool1, y)?;
        let y = forward_child("inception3a", &mut self.inception3a, y)?;
        let y = forward_child("avgpool", &mut self.avgpool, y)?.flatten(1)?;
        forward_child("fc", &mut self.fc, y)
    }
}

/// torchvision's names: a BasicConv2d is `conv` (no bias) + `bn`; branch2/branch3 are
/// Sequentials of two, branch4 is (MaxPool2d, BasicConv2d), so its convolution is `branch4.1`.
fn googlenet_weights(classes: usize, seed: u64) -> Weights {
    let [c1, r3, c3, r5, c5, pp] = INCEPTION;
    let mut g = Gen::new(seed);
    let basic = |g: &mut Gen, p: &str, out: usize, cin: usize, k: usize| {
        g.conv(format!("{p}.conv.weight"), out, cin, k);
        g.bn(&format!("{p}.bn"), out);
    };
    basic(&mut g, "conv1", STEM, 3, 7);
    let i = "inception3a";
    basic(&mut g, &format!("{i}.branch1"), c1, STEM, 1);
    basic(&mut g, &format!("{i}.branch2.0"), r3, STEM, 1);
    basic(&mut g, &format!("{i}.branch2.1"), c3, r3, 3);
    basic(&mut g, &format!("{i}.branch3.0"), r5, STEM, 1);
    basic(&mut g, &format!("{i}.branch3.1"), c5, r5, 3);
    basic(&mut g, &format!("{i}.branch4.1"), pp, STEM, 1);
    g.linear("fc", classes, c1 + c3 + c5 + pp);
    g.w
}

/// BasicConv2d: relu(bn(conv(x))), eps 1e-3.
fn basic(x: &Act, w: &Weights, p: &str, stride: usize, pad: usize) -> Act {
    let y = conv(x, &w[&format!("{p}.conv.weight")], stride, pad);
    relu(bn(y, w, &format!("{p}.bn"), GOOGLENET_EPS))
}

fn googlenet_reference(w: &Weights, x: &Act) -> Vec<Vec<f64>> {
    // 16x16 -> conv 7x7/2 pad 3 -> 8x8 -> max pool 3x3/2 ceil_mode -> 4x4 (floor would give 3:
    // the last window covers only rows 6 and 7).
    let y = basic(x, w, "conv1", 2, 3);
    let y = max_pool(&y, 3, 2, 0, true);
    assert_eq!((y.h, y.w), (4, 4));
    let i = "inception3a";
    let b1 = basic(&y, w, &format!("{i}.branch1"), 1, 0);
    let b2 = basic(&y, w, &format!("{i}.branch2.0"), 1, 0);
    let b2 = basic(&b2, w, &format!("{i}.branch2.1"), 1, 1);
    let b3 = basic(&y, w, &format!("{i}.branch3.0"), 1, 0);
    let b3 = basic(&b3, w, &format!("{i}.branch3.1"), 1, 1);
    let b4 = max_pool(&y, 3, 1, 1, true);
    let b4 = basic(&b4, w, &format!("{i}.branch4.1"), 1, 0);
    head(&concat(&[b1, b2, b3, b4]), w, "fc")
}

#[test]
fn googlenet_inception_matches_the_reference() {
    let dir = scratch("googlenet");
    let w = googlenet_weights(10, 7);
    let mut model = TinyGoogLeNet::new(10, &mut rng(2));
    check(
        &mut model,
        &w,
        "inception3a.branch2.1.bn.running_var",
        &dir,
        |x| googlenet_reference(&w, x),
    );
}
