//! The numbers the lecture examples (`examples/*.rs`) print, asserted through the same
//! functions of `tapegrad_lecture` the programs call.

mod common;
use common::seed_example;
use serde_json::Value;
use tapegrad::autograd::{DropoutMode, Tensor};
use tapegrad::data::synthetic;
use tapegrad::models::{by_name, default_input, LeNet5, LeNetConfig, ResNet, ResNetConfig};
use tapegrad::nn::Module;
use tapegrad::prelude::rng;
use tapegrad_lecture::{
    activations, backprop, degradation, design, dropout, graph, linear_collapse, topk, vanishing,
};

/// A JSON matrix (list of rows) flattened.
fn matrix(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| r.as_array().expect("a row").iter())
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

#[test]
fn chain_rule_on_x2y_plus_y() {
    // z = x^2 y + y at (3, 2): z = 9*2 + 2 = 20, dz/dx = 2xy = 12, dz/dy = x^2 + 1 = 10; with
    // dL/dz = 0.5 from above, dL/dx = 0.5 * 12 = 6 and dL/dy = 0.5 * 10 = 5.
    let c = backprop::chain_rule(3.0, 2.0, 0.5).unwrap();
    assert_eq!((c.z, c.dz_dx, c.dz_dy), (20.0, 12.0, 10.0));
    assert_eq!((c.dl_dx, c.dl_dy), (6.0, 5.0));
    // y feeds both the product and the sum: its gradient is the sum of two paths,
    // 0.5 * x^2 = 4.5 through the product and 0.5 through the sum.
    assert!(c.trace.contains("variable 'y'"), "{}", c.trace);
    assert!(
        c.trace.contains("grad (sum of 2 paths): [] [5.0000]"),
        "{}",
        c.trace
    );
    assert!(c.trace.contains("-> #1: [] [4.5000]"), "{}", c.trace);
}

#[test]
fn convolution_example_matches_the_golden_file() {
    let g = seed_example("conv_3x3_2x2");
    let e = backprop::conv_example().unwrap();
    // The embedded numbers are the golden file's.
    assert_eq!(e.x.to_vec(), matrix(&g["X"]));
    assert_eq!(e.w.to_vec(), matrix(&g["W"]));
    assert_eq!(e.dh.to_vec(), matrix(&g["dh"]));
    // Small integers: every sum is exact in f32.
    assert_eq!(e.h.to_vec(), matrix(&g["h"]));
    assert_eq!(e.dw.to_vec(), matrix(&g["dW"]));
    assert_eq!(e.dx.to_vec(), matrix(&g["dX"]));
    assert_eq!(
        e.dw_as_correlation.to_vec(),
        matrix(&g["dW_as_correlation_of_X_with_dh"])
    );
    assert_eq!(
        e.dx_as_full_convolution.to_vec(),
        matrix(&g["dX_as_full_convolution_of_dh_with_flipped_W"])
    );
    // W = [[1, -1], [2, 0]] flipped in both directions is [[0, 2], [-1, 1]].
    assert_eq!(e.w_flipped.to_vec(), vec![0.0, 2.0, -1.0, 1.0]);
}

#[test]
fn convolution_formulas_are_the_lectures_and_sum_to_the_tape_values() {
    let e = backprop::conv_example().unwrap();
    let f = backprop::conv_formulas(&e);
    assert_eq!(f.h[0].symbolic, "h11 = W11X11 + W12X12 + W21X21 + W22X22");
    assert_eq!(
        f.dw[1].symbolic,
        "dW12 = X12dh11 + X13dh12 + X22dh21 + X23dh22"
    );
    // X22 sits under every window, so it feeds all four outputs, each through a different weight.
    assert_eq!(
        f.dx[4].symbolic,
        "dX22 = W22dh11 + W21dh12 + W12dh21 + W11dh22"
    );
    // dW12 = 2*1 + 0*2 + (-1)*(-1) + 2*3 = 9.
    assert_eq!(f.dw[1].numeric, "2*1 + 0*2 + (-1)*(-1) + 2*3");
    assert_eq!(f.dw[1].value, 9.0);
    let values = |v: &[backprop::Formula]| v.iter().map(|f| f.value).collect::<Vec<_>>();
    assert_eq!(values(&f.h), e.h.to_vec());
    assert_eq!(values(&f.dw), e.dw.to_vec());
    assert_eq!(values(&f.dx), e.dx.to_vec());
}

#[test]
fn activation_derivatives_from_the_tape_match_their_formulas() {
    use activations::Activation as A;
    let x = activations::grid(-5.0, 5.0, 401).unwrap();
    assert_eq!(x.numel(), 401);
    assert!((x.data()[200]).abs() < 1e-6, "the grid passes through 0");
    for c in activations::curves(&x).unwrap() {
        for ((&x, &y), &dy) in c.x.iter().zip(&c.y).zip(&c.dy) {
            let s = 1.0 / (1.0 + (-x).exp());
            // Each derivative written by hand from the function.
            let want = match c.activation {
                A::Step => 0.0,
                A::Linear => 1.0,
                A::Sigmoid => s * (1.0 - s),
                A::Tanh => 1.0 - y * y,
                A::Relu => (x > 0.0) as u8 as f32,
                A::LeakyRelu => {
                    if x > 0.0 {
                        1.0
                    } else {
                        0.01
                    }
                }
                A::Swish => y + s * (1.0 - y),
            };
            assert!(
                (dy - want).abs() < 1e-5,
                "{} at {x}: tape {dy}, formula {want}",
                c.activation.name()
            );
        }
        if c.activation == A::Sigmoid {
            // sigmoid'(0) = 1/2 * 1/2 = 1/4, its largest value.
            let peak = c.dy.iter().cloned().fold(f32::MIN, f32::max);
            assert!((peak - 0.25).abs() < 1e-6);
        }
    }
}

#[test]
fn softmax_plain_normalisation_and_argmax_of_2_4_2_1() {
    // softmax: e^2 / (2e^2 + e^4 + e) = 0.1025...; plain: [2, 4, 2, 1] / 9.
    let n = activations::normalisations(&[2.0, 4.0, 2.0, 1.0]).unwrap();
    let four_dp = |v: &[f32]| -> Vec<i32> { v.iter().map(|x| (x * 1e4).round() as i32).collect() };
    assert_eq!(four_dp(&n.softmax), vec![1025, 7573, 1025, 377]);
    assert_eq!(four_dp(&n.plain), vec![2222, 4444, 2222, 1111]);
    assert_eq!(n.argmax, vec![0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn a_stack_of_linear_layers_is_one_matrix() {
    let c = linear_collapse::linear_collapse(10, 32, 64, 0).unwrap();
    // Ten layers of 32*32 weights + 32 biases, against one such layer.
    assert_eq!(c.stack_params, 10 * (32 * 32 + 32));
    assert_eq!(c.single_params, 32 * 32 + 32);
    assert_eq!(c.product.dims(), &[32, 32]);
    // The same function up to f32 rounding (outputs are about 0.3)...
    assert!(c.max_abs_output > 0.05, "{}", c.max_abs_output);
    assert!(c.max_abs_diff < 1e-5, "{}", c.max_abs_diff);
    // ...while a ReLU between the layers makes it a different function.
    assert!(
        c.max_abs_diff_with_relu > 1e-2,
        "{}",
        c.max_abs_diff_with_relu
    );
}

#[test]
fn gradients_vanish_through_twenty_sigmoid_layers() {
    let o = vanishing::VanishingOptions::default();
    assert_eq!(o.depth, 20);
    let [sig, relu, res] = vanishing::Kind::ALL.map(|k| vanishing::gradient_norms(k, o).unwrap());
    for g in [&sig, &relu, &res] {
        assert_eq!(g.norms.len(), 20);
        assert!(g.norms.iter().all(|n| n.is_finite() && *n > 0.0), "{g:?}");
    }
    // Each sigmoid layer multiplies the gradient by sigmoid' <= 1/4 and by W^T, about
    // 1/sqrt(3) in norm with the default init: ~0.14 per layer, so 19 layers shrink it by far
    // more than the required 100x.
    assert!(sig.ratio() > 100.0, "sigmoid ratio {}", sig.ratio());
    assert!(
        sig.ratio() > relu.ratio(),
        "{} vs {}",
        sig.ratio(),
        relu.ratio()
    );
    // The shortcuts carry the gradient to the first layer: it gets far more than with
    // sigmoid or ReLU layers.
    assert!(
        res.norms[0] > 1e3 * relu.norms[0],
        "{:?} {:?}",
        res.norms,
        relu.norms
    );
    assert!(relu.norms[0] > sig.norms[0]);
}

#[test]
fn dropout_expectations_match_the_theory() {
    let n = 200_000;
    for mode in [DropoutMode::Classic, DropoutMode::Inverted] {
        for p in [0.2f32, 0.5, 0.8] {
            let s = dropout::dropout_stats(mode, p, 2.0, n, 1).unwrap();
            // The mean of n draws has standard deviation sqrt(Var / n): allow 5 of them.
            let tol = 5.0 * (s.expected_var / n as f64).sqrt();
            assert!(
                (s.train_mean - s.expected_mean).abs() < tol,
                "{mode:?} p {p}: mean {} vs {}",
                s.train_mean,
                s.expected_mean
            );
            assert!(
                (s.train_var / s.expected_var - 1.0).abs() < 0.05,
                "{mode:?} p {p}: var {} vs {}",
                s.train_var,
                s.expected_var
            );
            assert!((s.dropped - p as f64).abs() < 0.01);
            // At test the output is the training expectation: (1 - p) a classic, a inverted.
            assert!((s.test_value as f64 - s.expected_mean).abs() < 1e-6);
        }
    }
    // The lecture's AlexNet setting: p = 0.5, multiply by 0.5 at test.
    let s = dropout::dropout_stats(DropoutMode::Classic, 0.5, 2.0, 10, 0).unwrap();
    assert_eq!(s.test_value, 1.0);
    assert!(dropout::dropout_stats(DropoutMode::Classic, 1.0, 2.0, 10, 0).is_err());
}

#[test]
fn design_budgets_of_the_four_networks() {
    let budget = |name: &str| {
        let mut m = by_name(name, 1000, 3, 0).unwrap();
        design::budget(name, &mut m, &default_input(name)).unwrap()
    };
    let (alex, s) = budget("alexnet");
    // FC6 9216*4096 + 4096, FC7 4096*4096 + 4096, FC8 4096*1000 + 1000.
    let fc = 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000;
    assert_eq!(alex.fc_params, fc);
    assert_eq!(fc, 58_631_144);
    // conv1 64*3*11*11 + 64, conv2 192*64*5*5 + 192, conv3 384*192*9 + 384,
    // conv4 256*384*9 + 256, conv5 256*256*9 + 256.
    let conv = 23_296 + 307_392 + 663_936 + 884_992 + 590_080;
    assert_eq!(alex.conv_params, conv);
    assert_eq!(alex.params, conv + fc);
    assert_eq!((alex.conv_layers, alex.fc_layers), (5, 3));
    // conv1 at 224x224, stride 4, padding 2: 55x55x64 outputs, 11*11*3 MACs each.
    let conv1 = s.layers().next().unwrap();
    assert_eq!(conv1.macs, 55 * 55 * 64 * 363);
    // A fully connected layer costs one MAC per weight: FC MACs = FC params - biases.
    assert_eq!(alex.fc_macs, (fc - 4096 - 4096 - 1000) as u64);
    assert!(alex.conv_macs > 10 * alex.fc_macs);

    // torchvision's counts for the same networks.
    assert_eq!(budget("vgg16").0.params, 138_357_544);
    assert_eq!(budget("resnet50").0.params, 25_557_032);
    let (goog, _) = budget("googlenet");
    assert_eq!(goog.params, 6_624_904);
    assert!(
        goog.fc_params * 5 < goog.params,
        "global pooling, one small FC"
    );
}

#[test]
fn two_3x3_layers_see_what_one_5x5_sees_with_fewer_weights() {
    let c = 16;
    let one = design::conv_stack(&[5], c, 12).unwrap();
    let two = design::conv_stack(&[3, 3], c, 12).unwrap();
    // Receptive fields: 5; and 3 + (3 - 1) = 5.
    assert_eq!((one.receptive_field, two.receptive_field), (5, 5));
    // 25 C^2 against 2 * 9 C^2 = 18 C^2 weights.
    assert_eq!((one.params, two.params), (25 * c * c, 18 * c * c));
    assert_eq!((one.nonlinearities, two.nonlinearities), (0, 1));
    // Same padding keeps 12x12: MACs = 144 * params.
    assert_eq!(two.macs, 144 * two.params as u64);
    let three = design::conv_stack(&[3, 3, 3], c, 12).unwrap();
    let seven = design::conv_stack(&[7], c, 12).unwrap();
    assert_eq!((three.receptive_field, seven.receptive_field), (7, 7));
    assert_eq!((three.params, seven.params), (27 * c * c, 49 * c * c));
    assert!(design::conv_stack(&[4], c, 12).is_err());
}

#[test]
fn degradation_runs_and_gives_finite_curves() {
    // A reduced run: 40 synthetic images, one epoch, thin networks. The ordering of the
    // lecture's table needs the full run; here only that it trains and records sensibly.
    let opts = degradation::DegradationOptions {
        depths: vec![18, 34],
        epochs: 1,
        limit_train: Some(40),
        limit_test: Some(20),
        batch_size: 20,
        points_per_epoch: 2,
        ..degradation::DegradationOptions::default()
    };
    let split = synthetic::split(4, 2, 0).unwrap();
    let build = |depth: usize, residual: bool| -> tapegrad::autograd::Result<Box<dyn Module>> {
        let c = ResNetConfig {
            in_channels: 1,
            width: 2,
            small_stem: true,
            plain: !residual,
            ..ResNetConfig::new(depth, 10)
        };
        Ok(Box::new(ResNet::new(c, &mut rng(0))?))
    };
    let mut seen = 0;
    let curves =
        degradation::run(&build, split.train, &split.test, &opts, &mut |_| seen += 1).unwrap();
    let names: Vec<String> = curves.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["resnet-18", "resnet-34", "plain-18", "plain-34"]);
    for c in &curves {
        assert!(c.is_finite(), "{c:?}");
        // 40 images in batches of 20: two batches, one point each; one test error per epoch.
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.points[1].epoch, 1.0);
        assert_eq!(c.test_error.len(), 1);
        assert_eq!(c.final_test_error(), c.test_error[0]);
        assert!((0.0..=1.0).contains(&c.final_train_error()));
        // Ten classes, freshly initialised: the loss starts near ln 10 = 2.3.
        assert!(c.points[0].train_loss > 1.0 && c.points[0].train_loss < 10.0);
    }
    // The residual network of a depth has the plain one's layers plus the projection shortcuts.
    assert!(curves[0].params > curves[2].params);
    assert_eq!(seen, 4 * 3, "two points and one test error per network");
    let bad = degradation::DegradationOptions {
        depths: vec![],
        ..opts
    };
    let empty = synthetic::split(1, 1, 0).unwrap();
    assert!(degradation::run(&build, empty.train, &empty.test, &bad, &mut |_| {}).is_err());
}

#[test]
fn degradation_data_respects_the_limits() {
    let opts = degradation::DegradationOptions {
        limit_train: Some(30),
        limit_test: Some(10),
        ..degradation::DegradationOptions::default()
    };
    let (train, test, _) = degradation::load_data(&opts).unwrap();
    assert_eq!((train.len(), test.len()), (30, 10));
    assert_eq!(train.sample_shape(), [1, 28, 28]);
}

#[test]
fn the_strawberry_is_a_top1_error_but_not_a_top5_error() {
    let (ranked, top1, top5) = topk::evaluate(&topk::pictures()).unwrap();
    let s = &ranked[0];
    assert_eq!((s.name, s.truth), ("strawberry", "strawberry"));
    // tomato 0.34 and cherry 0.22 beat strawberry 0.18: ranked 3rd.
    assert_eq!(s.rank, 3);
    assert_eq!((s.top1_error, s.top5_error), (1.0, 0.0));
    assert_eq!(s.top5[0].0, "tomato");
    assert!(s.top5.iter().any(|(n, _)| *n == "strawberry"));
    // The batch: strawberry (3rd), lemon (1st), fig (6th): top-1 misses 2 of 3, top-5 1 of 3.
    assert_eq!(ranked.iter().map(|r| r.rank).collect::<Vec<_>>(), [3, 1, 6]);
    assert!((top1 - 2.0 / 3.0).abs() < 1e-6 && (top5 - 1.0 / 3.0).abs() < 1e-6);
}

fn lenet_graph() -> graph::TapeGraph {
    let mut model = LeNet5::new(LeNetConfig::classic(28, 10), &mut rng(0)).unwrap();
    let images = Tensor::rand([2, 1, 28, 28], 0.0, 1.0, &mut rng(1));
    graph::model_dot(&mut model, images, &[3, 7]).unwrap()
}

#[test]
fn lenet5_tape_exports_valid_dot_with_gradient_norms() {
    let g = lenet_graph();
    let check = graph::check_dot(&g.dot).unwrap();
    assert_eq!(check.nodes, g.nodes);
    // LeNet-5 has 10 parameter tensors (5 layers, weight and bias): all appear as nodes.
    assert_eq!(g.dot.matches("fillcolor=lightblue").count(), 10);
    assert!(check.edges >= check.nodes - 1 - 4, "{check:?}");
    assert!(check.labelled_edges > 10 && check.labelled_edges <= check.edges);
    assert!(g.traced_steps > 10 && g.traced_steps < g.nodes);
    assert!(g.loss.is_finite());

    // Malformed graphs are refused.
    for broken in [
        "graph g {\n}\n",
        "digraph g {\n  n0 [label=\"a\"]\n}\n",
        "digraph g {\n  n0;\n  n0 -> n1;\n}\n",
        "digraph g {\n  n0 [label=\"a];\n}\n",
        "digraph g {\n  n0;\n",
    ] {
        assert!(graph::check_dot(broken).is_err(), "accepted {broken:?}");
    }
}

#[test]
#[ignore = "needs Graphviz's dot: apt-get install graphviz"]
fn lenet5_tape_renders_with_graphviz() {
    // The DOT text itself is checked without Graphviz by the test above; this one renders it.
    let g = lenet_graph();
    let dir = tempfile::tempdir().unwrap();
    let (dot_file, svg_file) = (dir.path().join("lenet5.dot"), dir.path().join("lenet5.svg"));
    std::fs::write(&dot_file, &g.dot).unwrap();
    assert!(
        graph::find_dot().is_some(),
        "Graphviz's dot is not installed (apt-get install graphviz)"
    );
    assert!(graph::render_svg(&dot_file, &svg_file).unwrap());
    let svg = std::fs::read_to_string(&svg_file).unwrap();
    assert!(svg.contains("<svg"));
    // One SVG group per tape node.
    assert_eq!(svg.matches("class=\"node\"").count(), g.nodes);
}
