//! The zoo: torchvision's parameter counts, the lecture's summary figures, and one backward pass
//! of each family reaching every parameter.

use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_models::{by_name, default_input, summary, NAMES};
use tapegrad_nn::loss::VarLosses;
use tapegrad_nn::{Entry, Module};

#[test]
fn parameter_counts_equal_torchvision() {
    for (name, want) in [
        ("alexnet", 61_100_840),
        ("vgg11", 132_863_336),
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        ("googlenet", 6_624_904),
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
    ] {
        let m = by_name(name, 1000, 3, 0).unwrap();
        assert_eq!(m.num_parameters(), want, "{name}");
    }
}

#[test]
fn every_name_builds_and_unknown_names_are_errors() {
    // The largest (VGG, ResNet-101/152) are built by the parameter-count test.
    let large = |n: &str| n.starts_with("vgg") || n.contains("101") || n.contains("152");
    for name in NAMES.iter().filter(|n| !large(n)) {
        assert!(
            by_name(name, 10, default_input(name)[1], 0).is_ok(),
            "{name}"
        );
    }
    // A narrower ResNet: every width divided by 4, so about 1/16 of the parameters.
    let narrow = by_name("resnet18-small-w16", 10, 1, 0).unwrap();
    let full = by_name("resnet18-small", 10, 1, 0).unwrap();
    let ratio = full.num_parameters() as f64 / narrow.num_parameters() as f64;
    assert!((14.0..17.0).contains(&ratio), "{ratio}");
    assert!(by_name("resnet18-small-wx", 10, 3, 0).is_err());
    let err = by_name("resnet19", 10, 3, 0).err().unwrap().to_string();
    assert!(err.contains("resnet19"), "{err}");
}

#[test]
fn rgb_only_models_refuse_other_channel_counts_instead_of_ignoring_them() {
    for name in ["alexnet", "alexnet-paper", "vgg11", "googlenet"] {
        let err = by_name(name, 10, 1, 0).err().expect(name).to_string();
        assert!(
            err.contains(name) && err.contains("3 input channels"),
            "{err}"
        );
    }
    // The families that honour the channel count build with one.
    for name in ["lenet5", "resnet18-small"] {
        let mut m = by_name(name, 10, 1, 0).unwrap();
        let first = m.parameter_names()[0].clone();
        let mut dims = Vec::new();
        m.visit_mut("", &mut |n, e| {
            if let (true, Entry::Param(p)) = (n == first, e) {
                dims = p.value().dims().to_vec();
            }
        });
        assert_eq!(dims[1], 1, "{name}: {first} {dims:?}");
    }
}

#[test]
fn paper_alexnet_summary_matches_the_lecture() {
    let mut m = by_name("alexnet-paper", 1000, 3, 0).unwrap();
    let s = summary(m.as_mut(), &[1, 3, 227, 227]).unwrap();
    let conv1 = s.row("features.0").unwrap();
    // 96 kernels of 11x11x3: 34,848 weights + 96 biases; 55x55 outputs each costing 11*11*3.
    assert_eq!(conv1.params, 34_848 + 96);
    assert_eq!(conv1.macs, 105_415_200);
    assert_eq!(conv1.output_shape.dims(), &[1, 96, 55, 55]);
    let fc = |n: &str| s.row(n).unwrap().params as f64 / 1e6;
    // FC6 9216x4096, FC7 4096x4096, FC8 4096x1000 (plus biases): ~38M, ~17M, ~4M.
    assert!((fc("classifier.0") - 37.75).abs() < 0.1);
    assert!((fc("classifier.3") - 16.78).abs() < 0.1);
    assert!((fc("classifier.6") - 4.1).abs() < 0.1);
}

#[test]
fn googlenet_output_sizes_match_the_lecture() {
    let mut m = by_name("googlenet", 1000, 3, 0).unwrap();
    let s = summary(m.as_mut(), &[1, 3, 224, 224]).unwrap();
    let hwc = |n: &str| {
        let d = s
            .row(n)
            .unwrap_or_else(|| panic!("{n}"))
            .output_shape
            .dims()
            .to_vec();
        (d[2], d[3], d[1])
    };
    assert_eq!(hwc("conv1"), (112, 112, 64));
    assert_eq!(hwc("maxpool1"), (56, 56, 64));
    assert_eq!(hwc("conv3"), (56, 56, 192));
    assert_eq!(hwc("maxpool2"), (28, 28, 192));
    assert_eq!(hwc("inception3a"), (28, 28, 256));
    assert_eq!(hwc("inception3b"), (28, 28, 480));
    assert_eq!(hwc("maxpool3"), (14, 14, 480));
    for n in ["inception4a", "inception4b", "inception4c"] {
        assert_eq!(hwc(n), (14, 14, 512));
    }
}

#[test]
fn vgg16_receptive_field() {
    // Thirteen 3x3 convolutions and four 2x2 pools before conv5_3: RF 196, 212 after the last
    // pool. The field does not depend on the input size, so a small input does.
    let mut m = by_name("vgg16", 10, 3, 0).unwrap();
    let s = summary(m.as_mut(), &[1, 3, 32, 32]).unwrap();
    assert_eq!(s.row("features.28").unwrap().type_name, "Conv2d");
    assert_eq!(s.row("features.28").unwrap().receptive_field, (196, 196));
    assert_eq!(s.row("features.30").unwrap().receptive_field, (212, 212));
    assert_eq!(s.row("features.30").unwrap().effective_stride, (32, 32));
}

#[test]
fn global_pooling_and_fully_connected_layers_see_the_whole_input() {
    // VGG-16 at 224x224: 196 at conv5_3, 212 after pool5; adaptive pooling 7x7 -> 7x7 changes
    // nothing; the first fully connected layer mixes all 7x7 positions, 32 pixels apart.
    let mut m = by_name("vgg16", 10, 3, 0).unwrap();
    let s = summary(m.as_mut(), &[1, 3, 224, 224]).unwrap();
    assert_eq!(s.row("features.28").unwrap().receptive_field, (196, 196));
    assert_eq!(s.row("features.30").unwrap().receptive_field, (212, 212));
    assert_eq!(s.row("avgpool").unwrap().receptive_field, (212, 212));
    let fc = s.row("classifier.0").unwrap();
    assert_eq!(fc.receptive_field, (212 + 6 * 32, 212 + 6 * 32));
    // From there on every row covers the whole input.
    let from = s
        .rows
        .iter()
        .position(|r| r.name == "classifier.0")
        .unwrap();
    for r in s.rows[from..].iter().filter(|r| r.leaf) {
        assert!(
            r.receptive_field.0 >= 224,
            "{}: {:?}",
            r.name,
            r.receptive_field
        );
    }
    for (name, input) in [
        ("resnet18", 224),
        ("googlenet", 224),
        ("resnet18-small", 32),
    ] {
        let mut m = by_name(name, 10, 3, 0).unwrap();
        let s = summary(m.as_mut(), &[1, 3, input, input]).unwrap();
        let pool = s.row("avgpool").unwrap();
        let fc = s.row("fc").unwrap();
        assert!(
            pool.receptive_field.0 >= input,
            "{name}: {:?}",
            pool.receptive_field
        );
        assert_eq!(fc.receptive_field, pool.receptive_field, "{name}");
        // Global pooling is the union of the last map's positions.
        let before = s
            .layers()
            .take_while(|r| r.name != "avgpool")
            .last()
            .unwrap();
        let extent = before.output_shape.dims()[2];
        let want = before.receptive_field.0 + (extent - 1) * before.effective_stride.0;
        assert_eq!(
            pool.receptive_field.0, want,
            "{name}: after {}",
            before.name
        );
    }
}

/// One backward pass at batch 2 gives every parameter a finite gradient that is not all zero.
fn check_backward(name: &str, input: [usize; 4]) {
    let mut m = tapegrad_models::build(name, 10, [input[1], input[2], input[3]], 1).unwrap();
    let tape = Tape::new();
    let x = tape.input(Tensor::randn(input, &mut rng(2)));
    let y = m.forward(x).unwrap();
    assert_eq!(y.dims(), vec![input[0], 10], "{name}");
    let loss = y.cross_entropy(&[3, 7]).unwrap();
    let grads = loss.backward().unwrap();
    m.visit_mut("", &mut |pname, e| {
        if let Entry::Param(p) = e {
            let g = grads
                .param(p)
                .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            assert!(
                g.data().iter().all(|v| v.is_finite()),
                "{name}: {pname} not finite"
            );
            assert!(
                g.data().iter().any(|&v| v != 0.0),
                "{name}: {pname} all zero"
            );
        }
    });
}

#[test]
fn backward_reaches_every_parameter_small_models() {
    check_backward("lenet5", [2, 1, 28, 28]);
    check_backward("lenet5-modern", [2, 1, 28, 28]);
    check_backward("resnet18-small", [2, 3, 32, 32]);
    check_backward("plain18-small", [2, 3, 32, 32]);
    check_backward("resnet50", [2, 3, 64, 64]);
    check_backward("googlenet", [2, 3, 64, 64]);
}

#[test]
fn backward_reaches_every_parameter_large_models() {
    check_backward("alexnet", [2, 3, 64, 64]);
    check_backward("vgg11_bn", [2, 3, 32, 32]);
    check_backward("alexnet-paper-towers", [2, 3, 227, 227]);
}

#[test]
fn lenet_layouts_by_name() {
    assert_eq!(
        tapegrad_models::lenet_layout("lenet5-wide"),
        Some((true, (16, 32, 128, 84)))
    );
    assert_eq!(
        tapegrad_models::lenet_layout("lenet5-12-24-128-84"),
        Some((false, (12, 24, 128, 84)))
    );
    assert_eq!(tapegrad_models::lenet_layout("lenet5-modern-1-2-3"), None);
    let mut m = tapegrad_models::build("lenet5-modern-8-16-64-32", 10, [1, 32, 32], 0).unwrap();
    let tape = Tape::new();
    let y = m
        .forward(tape.input(Tensor::zeros([2, 1, 32, 32])))
        .unwrap();
    assert_eq!(y.dims(), vec![2, 10]);
    assert!(tapegrad_models::build("lenet5", 10, [1, 28, 30], 0).is_err());
}

#[test]
fn small_vgg_layouts_by_name() {
    use tapegrad_models::SmallVggConfig;
    let c = SmallVggConfig::from_name("small-vgg-16x2-32-fc64-drop25", 1, 28, 10).unwrap();
    assert_eq!(c.stages, vec![(16, 2), (32, 1)]);
    assert_eq!((c.hidden, c.dropout, c.final_side()), (64, 0.25, 7));
    for bad in [
        "small-vgg-16x0",
        "small-vgg-a",
        "small-vgg-16-fc0",
        "small-vgg-16-drop150",
    ] {
        assert_eq!(SmallVggConfig::from_name(bad, 1, 28, 10), None, "{bad}");
    }
    let mut m = tapegrad_models::build("small-vgg-4x2-8-fc16-drop25", 10, [1, 28, 28], 0).unwrap();
    let tape = Tape::new();
    let y = m
        .forward(tape.input(Tensor::zeros([2, 1, 28, 28])))
        .unwrap();
    assert_eq!(y.dims(), vec![2, 10]);
    // Five pools halve 28 to nothing: an error naming the sizes, not a panic.
    let err = tapegrad_models::build("small-vgg-4-4-4-4-4", 10, [1, 28, 28], 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("5 stages"), "{err}");
    assert!(tapegrad_models::build("small-vgg-4", 10, [1, 28, 30], 0).is_err());
    check_backward("small-vgg-4x2-8-fc16-drop25", [2, 1, 28, 28]);
}

#[test]
fn zero_init_residual_starts_every_block_as_the_identity() {
    use tapegrad_models::{ResNet, ResNetConfig};
    let config = |plain| ResNetConfig {
        in_channels: 1,
        width: 4,
        small_stem: true,
        plain,
        zero_init_residual: true,
        ..ResNetConfig::new(18, 10)
    };
    let mut net = ResNet::new(config(false), &mut rng(0)).unwrap();
    let mut zeroed = 0;
    net.visit_mut("", &mut |name, e| {
        if let Entry::Param(p) = e {
            let v = p.value();
            if name.starts_with("layer") && name.ends_with(".bn2.weight") {
                zeroed += 1;
                assert!(v.data().iter().all(|&g| g == 0.0), "{name}");
            } else if name.ends_with("bn1.weight") {
                assert!(v.data().iter().all(|&g| g == 1.0), "{name}");
            }
        }
    });
    assert_eq!(zeroed, 8, "ResNet-18 has eight basic blocks");
    // Stage 1 keeps the shape, so it has no projection: each block is relu(0 + x), and two of
    // them give relu(relu(x)) = relu(x), also in training mode (batch statistics).
    let x = Tensor::randn([2, 4, 6, 6], &mut rng(1));
    let tape = Tape::new();
    let y = net.layer1.forward(tape.input(x.clone())).unwrap().value();
    assert_eq!(y.data(), x.map(|v| v.max(0.0)).data());
    // The zeroed scales still learn: their gradient is not zero.
    let y = net
        .forward(tape.input(Tensor::randn([2, 1, 8, 8], &mut rng(2))))
        .unwrap();
    let grads = y.cross_entropy(&[3, 7]).unwrap().backward().unwrap();
    let mut learning = 0;
    net.visit_mut("", &mut |name, e| {
        if let (Entry::Param(p), true) = (e, name.ends_with(".bn2.weight")) {
            let g = grads.param(p).unwrap();
            learning += usize::from(g.data().iter().any(|&v| v != 0.0));
        }
    });
    assert_eq!(learning, 8);
    // A plain network has no shortcut to carry the signal: its scales stay 1.
    let mut plain = ResNet::new(config(true), &mut rng(0)).unwrap();
    plain.visit_mut("", &mut |name, e| {
        if let (Entry::Param(p), true) = (e, name.ends_with("bn2.weight")) {
            assert!(p.value().data().iter().all(|&g| g == 1.0), "{name}");
        }
    });
}
