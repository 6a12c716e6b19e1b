//! The convolution family's layers: shapes, parameter names, modes, PyTorch's initialisation.

use tapegrad_autograd::{rng, Conv2dOptions, DropoutMode, Tape, Tensor};
use tapegrad_nn::layers::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Flatten, Linear, MaxPool2d,
};
use tapegrad_nn::{Module, Sequential};

#[test]
fn conv_layer_shapes_names_and_init() {
    let mut g = rng(0);
    let mut conv = Conv2dConfig::new(4, 6, 3)
        .padding(1)
        .groups(2)
        .init(&mut g)
        .unwrap();
    // 6 x (4/2) x 3 x 3 weights + 6 biases.
    assert_eq!(conv.num_parameters(), 6 * 2 * 9 + 6);
    assert_eq!(conv.parameter_names(), vec!["weight", "bias"]);
    // fan_in = 2 * 3 * 3 = 18: every weight within 1/sqrt(18).
    let bound = 1.0 / 18f32.sqrt();
    assert!(conv.weight.value().data().iter().all(|w| w.abs() <= bound));
    let tape = Tape::new();
    let y = conv
        .forward(tape.input(Tensor::ones([2, 4, 5, 5])))
        .unwrap();
    assert_eq!(y.dims(), vec![2, 6, 5, 5]);
    assert!(Conv2dConfig::new(3, 6, 3).groups(2).init(&mut g).is_err());
}

#[test]
fn batch_norm_trains_on_batches_and_evaluates_on_running_stats() {
    let mut bn = BatchNorm2d::new(2).unwrap();
    let mut g = rng(1);
    let x = Tensor::randn([8, 2, 3, 3], &mut g)
        .mul_scalar(3.0)
        .add_scalar(5.0);
    let tape = Tape::new();
    let y = bn.forward(tape.input(x.clone())).unwrap();
    // Training output is normalised per channel: mean ~0.
    let m = y.value().mean(&[0, 2, 3], false).unwrap();
    assert!(m.data().iter().all(|v| v.abs() < 1e-4));
    assert!(bn.running_mean.data().iter().all(|&v| v > 0.3 && v < 0.7));
    assert_eq!(bn.num_batches_tracked, 1);
    bn.eval();
    let before = bn.running_mean.clone();
    let _ = bn.forward(tape.input(x)).unwrap();
    assert_eq!(bn.running_mean, before);
    let mut names = Vec::new();
    bn.visit_mut("bn1.", &mut |n, _| names.push(n.to_string()));
    assert_eq!(
        names,
        [
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.num_batches_tracked"
        ]
    );
}

#[test]
fn dropout_modes_keep_the_expectation() {
    // Inverted: E[mask * x / (1-p)] = x in training, identity at test.
    // Classic: E[mask * x] = (1-p) x in training, x (1-p) at test.
    let x = Tensor::ones([20000]);
    for (mode, train_mean, test_mean) in [
        (DropoutMode::Inverted, 1.0, 1.0),
        (DropoutMode::Classic, 0.5, 0.5),
    ] {
        let mut d = Dropout::with_mode(0.5, mode, 7).unwrap();
        let tape = Tape::new();
        let y = d.forward(tape.input(x.clone())).unwrap().value();
        let mean = y.sum_all().item().unwrap() / 20000.0;
        assert!((mean - train_mean).abs() < 0.02, "{mode:?}: {mean}");
        d.eval();
        let y = d.forward(tape.input(x.clone())).unwrap().value();
        assert!((y.sum_all().item().unwrap() / 20000.0 - test_mean).abs() < 1e-6);
    }
}

#[test]
fn a_small_cnn_composes_and_names_its_layers() {
    let mut g = rng(2);
    let mut net = Sequential::new()
        .add(Conv2d::new(1, 4, 3, &mut g).unwrap())
        .add(MaxPool2d::new(2, 2))
        .add(BatchNorm2d::new(4).unwrap())
        .add(AdaptiveAvgPool2d((1, 1)));
    let tape = Tape::new();
    let y = net
        .forward(tape.input(Tensor::randn([2, 1, 8, 8], &mut g)))
        .unwrap();
    assert_eq!(y.dims(), vec![2, 4, 1, 1]);
    assert_eq!(
        net.parameter_names(),
        vec!["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    let loss = y.sum(&[], false).unwrap();
    assert!(loss.backward().is_ok());
}

/// Two 3x3 "same" convolutions without bias, 1 -> 4 -> 4 channels.
fn two_convs(g: &mut tapegrad_autograd::Rng) -> Sequential {
    let mut conv = |i| {
        Conv2dConfig::new(i, 4, 3)
            .padding(1)
            .bias(false)
            .init(g)
            .unwrap()
    };
    Sequential::new().add(conv(1)).add(conv(4))
}

#[test]
fn global_pooling_widens_the_receptive_field_to_the_whole_input() {
    // Two 3x3 convolutions (RF 5), global average pooling over the 28x28 map, a classifier:
    // every logit depends on every pixel.
    let mut g = rng(4);
    let mut net = two_convs(&mut g)
        .add(AdaptiveAvgPool2d((1, 1)))
        .add(Flatten::default())
        .add(Linear::new(4, 10, &mut g).unwrap());
    let s = tapegrad_nn::summary(&mut net, &[1, 1, 28, 28]).unwrap();
    let rf: Vec<usize> = s.layers().map(|r| r.receptive_field.0).collect();
    // The pool is the union of 28 positions one pixel apart: 5 + 27 = 32 (padding counted).
    assert_eq!(rf, vec![3, 5, 32, 32, 32]);
    assert_eq!(s.row("2").unwrap().effective_stride, (28, 28));
    // Pooling to 2x2 windows of 14: 5 + 13 = 18, moved by 14.
    let mut g = rng(4);
    let mut half = two_convs(&mut g)
        .add(AdaptiveAvgPool2d((2, 2)))
        .add(Flatten::default())
        .add(Linear::new(16, 10, &mut g).unwrap());
    let s = tapegrad_nn::summary(&mut half, &[1, 1, 28, 28]).unwrap();
    assert_eq!(s.row("2").unwrap().receptive_field, (18, 18));
    assert_eq!(s.row("2").unwrap().effective_stride, (14, 14));
    // The classifier mixes both windows: 18 + 14 = 32.
    assert_eq!(s.row("4").unwrap().receptive_field, (32, 32));
}

#[test]
fn summary_counts_macs_and_follows_the_receptive_field() {
    // Two 3x3 convolutions see what one 5x5 sees (RF 5), with 2*9*C^2 instead of 25*C^2 weights.
    let mut g = rng(3);
    let conv3x3 = Conv2dConfig::new(8, 8, 3)
        .options(Conv2dOptions::default().padding(1))
        .bias(false);
    let mut net = Sequential::new()
        .add(conv3x3.init(&mut g).unwrap())
        .add(conv3x3.init(&mut g).unwrap())
        .add(MaxPool2d::new(2, 2))
        .add(conv3x3.init(&mut g).unwrap());
    let s = tapegrad_nn::summary(&mut net, &[1, 8, 16, 16]).unwrap();
    let rf: Vec<usize> = s.layers().map(|r| r.receptive_field.0).collect();
    // 3, then 3 + 2 = 5, then the pool adds (2-1)*1 = 6 and doubles the jump, then 6 + 2*2 = 10.
    assert_eq!(rf, vec![3, 5, 6, 10]);
    assert_eq!(s.row("2").unwrap().effective_stride, (2, 2));
    // MACs of conv 0: 16*16*8 outputs, each 8*3*3.
    assert_eq!(s.row("0").unwrap().macs, 16 * 16 * 8 * 72);
    assert_eq!(s.total_params, 3 * 8 * 8 * 9);
    assert_eq!(s.output_shape.dims(), &[1, 8, 8, 8]);
    let text = s.to_string();
    assert!(text.contains("total parameters 1,728"), "{text}");
}

#[test]
fn named_parameters_label_their_tape_nodes() {
    let mut g = rng(4);
    let mut net = Sequential::new().add(Conv2d::new(1, 2, 3, &mut g).unwrap());
    net.name_parameters();
    let tape = Tape::new();
    let y = net.forward(tape.input(Tensor::ones([1, 1, 4, 4]))).unwrap();
    let dot = tapegrad_autograd::trace::to_dot(&tape, None);
    assert!(dot.contains("0.weight") && dot.contains("0.bias"), "{dot}");
    assert_eq!(y.dims(), vec![1, 2, 2, 2]);
}
