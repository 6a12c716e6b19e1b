//! Linear and the activation modules: hand-computed forwards, gradients, names and PyTorch's
//! reference values.

mod common;

use common::{assert_close, cases, tensor, tol};
use tapegrad_autograd::gradcheck::{gradcheck_with, GradcheckOptions};
use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_nn::layers::{
    Flatten, Identity, LeakyReLU, Linear, LinearConfig, LogSoftmax, ReLU, Sigmoid, Softmax, Swish,
    Tanh,
};
use tapegrad_nn::{Module, Sequential};

fn t(data: &[f32], dims: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), dims).unwrap()
}

#[test]
fn linear_forward_by_hand() {
    // W = [[1, 2], [3, 4], [5, 6]], b = [0.5, -1, 2], x = [[1, -1], [2, 0.5]]:
    // row 1: [1-2, 3-4, 5-6] + b = [-0.5, -2, 1]; row 2: [2+1, 6+2, 10+3] + b = [3.5, 7, 15].
    let mut l = Linear::from_tensors(
        t(&[1., 2., 3., 4., 5., 6.], &[3, 2]),
        Some(Tensor::from_slice(&[0.5, -1.0, 2.0])),
    )
    .unwrap();
    assert_eq!((l.in_features(), l.out_features()), (2, 3));
    let tape = Tape::new();
    let y = l
        .forward(tape.input(t(&[1., -1., 2., 0.5], &[2, 2])))
        .unwrap();
    assert_eq!(y.value().to_vec(), vec![-0.5, -2.0, 1.0, 3.5, 7.0, 15.0]);
    // L = sum(y): dL/db = batch size 2 per output; dL/dW[o, i] = sum_n x[n, i] = [3, -0.5].
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(
        g.param(l.bias.as_ref().unwrap()).unwrap().to_vec(),
        vec![2.0; 3]
    );
    assert_eq!(
        g.param(&l.weight).unwrap().to_vec(),
        vec![3.0, -0.5, 3.0, -0.5, 3.0, -0.5]
    );
}

#[test]
fn linear_names_and_shape_errors() {
    let mut seq = Sequential::new()
        .add(Linear::new(4, 3, &mut rng(0)).unwrap())
        .add(ReLU)
        .add(
            LinearConfig::new(3, 2)
                .bias(false)
                .init(&mut rng(1))
                .unwrap(),
        );
    assert_eq!(
        seq.parameter_names(),
        vec!["0.weight", "0.bias", "2.weight"]
    );
    assert_eq!(seq.num_parameters(), 4 * 3 + 3 + 3 * 2);
    let tape = Tape::new();
    assert!(seq.forward(tape.input(Tensor::ones([2, 5]))).is_err());
    assert!(Linear::from_tensors(Tensor::ones([3]), None).is_err());
    assert!(Linear::from_tensors(Tensor::ones([3, 2]), Some(Tensor::ones([2]))).is_err());
}

#[test]
fn linear_gradcheck() {
    // f(x, W, b) = tanh(x W^T + b) on a [2, 3, 4] input (leading dims are batch dims).
    let mut g = rng(3);
    let inputs = [
        Tensor::randn([2, 3, 4], &mut g),
        Tensor::randn([5, 4], &mut g),
        Tensor::randn([5], &mut g),
    ];
    let report = gradcheck_with(
        |_, v| Ok(v[0].linear(v[1], Some(v[2]))?.tanh()),
        &inputs,
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
    // And through the module, whose parameters are on the tape as params.
    let report = gradcheck_with(
        |_, v| {
            let mut l = Linear::from_tensors(inputs[1].clone(), Some(inputs[2].clone()))?;
            Ok(l.forward(v[0])?.sigmoid())
        },
        &inputs[..1],
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn linear_matches_pytorch() {
    for case in &cases("linear.json") {
        let name = case["name"].as_str().unwrap();
        let inp = &case["inputs"];
        let bias = inp.get("bias").map(tensor);
        let mut l = Linear::from_tensors(tensor(&inp["weight"]), bias).unwrap();
        let tape = Tape::new();
        let x = tape.var(tensor(&inp["x"]));
        let y = l.forward(x).unwrap();
        assert_close(
            &format!("{name} output"),
            &y.value(),
            &tensor(&case["output"]),
            tol(case),
        );
        let g = y.backward_with(tensor(&case["grad_output"])).unwrap();
        let want = &case["grads"];
        assert_close(
            &format!("{name} dx"),
            &g.get(x).unwrap(),
            &tensor(&want["x"]),
            tol(case),
        );
        let dw = g.param(&l.weight).unwrap();
        assert_close(
            &format!("{name} dW"),
            &dw,
            &tensor(&want["weight"]),
            tol(case),
        );
        if let Some(b) = l.bias.as_ref() {
            let db = g.param(b).unwrap();
            assert_close(
                &format!("{name} db"),
                &db,
                &tensor(&want["bias"]),
                tol(case),
            );
        }
    }
}

#[test]
fn activation_modules_forward_by_hand() {
    let x = Tensor::from_slice(&[-2.0, 0.0, 3.0]);
    let tape = Tape::new();
    let v = tape.input(x.clone());
    let run = |m: &mut dyn Module| m.forward(v).unwrap().value().to_vec();
    assert_eq!(run(&mut ReLU), vec![0.0, 0.0, 3.0]);
    assert_eq!(run(&mut LeakyReLU::default()), vec![-0.02, 0.0, 3.0]);
    assert_eq!(run(&mut LeakyReLU::new(0.5)), vec![-1.0, 0.0, 3.0]);
    assert_eq!(run(&mut Identity), vec![-2.0, 0.0, 3.0]);
    let s = run(&mut Sigmoid);
    assert!((s[1] - 0.5).abs() < 1e-7 && (s[2] - 1.0 / (1.0 + (-3f32).exp())).abs() < 1e-6);
    let th = run(&mut Tanh);
    assert!((th[0] - (-2f32).tanh()).abs() < 1e-6 && th[1] == 0.0);
    // swish(3) = 3 sigmoid(3) = 2.857722.
    assert!((run(&mut Swish)[2] - 2.857722).abs() < 1e-5);
}

#[test]
fn softmax_and_flatten_modules() {
    // The lecture's example: softmax([2, 4, 2, 1]) = [0.1025, 0.7573, 0.1025, 0.0377].
    let tape = Tape::new();
    let v = tape.input(t(&[2., 4., 2., 1.], &[1, 4]));
    let p = Softmax::new(1).forward(v).unwrap().value().to_vec();
    for (a, b) in p.iter().zip([0.10249119, 0.7573132, 0.10249119, 0.0377044]) {
        assert!((a - b).abs() < 1e-6);
    }
    let lp = LogSoftmax::new(1).forward(v).unwrap().value().to_vec();
    assert!((lp[1] - 0.7573132f32.ln()).abs() < 1e-6);
    let img = tape.input(Tensor::zeros([2, 3, 4, 5]));
    assert_eq!(Flatten::default().forward(img).unwrap().dims(), vec![2, 60]);
    assert_eq!(Flatten::new(2).forward(img).unwrap().dims(), vec![2, 3, 20]);
    assert!(Flatten::new(5).forward(img).is_err());
    assert_eq!(ReLU.type_name(), "ReLU");
    assert_eq!(ReLU.num_parameters(), 0);
}

/// Every layer is built the same way: `new` with PyTorch's defaults, a config for the rest,
/// a `Result` whose error names the layer, parameters as public fields.
#[test]
fn layers_are_built_alike() {
    use tapegrad_nn::layers::{BatchNorm2d, Conv2d, Conv2dConfig, Linear, LinearConfig};
    let mut g = rng(0);
    let fc = Linear::new(4, 3, &mut g).unwrap();
    assert_eq!(
        (fc.weight.value().dims(), fc.bias.is_some()),
        (&[3, 4][..], true)
    );
    let fc = LinearConfig::new(4, 3).bias(false).init(&mut g).unwrap();
    assert!(fc.bias.is_none());
    let conv = Conv2d::new(3, 8, 3, &mut g).unwrap();
    assert_eq!(conv.weight.value().dims(), &[8, 3, 3, 3]);
    assert_eq!(conv.options, tapegrad_autograd::Conv2dOptions::default());
    let conv = Conv2dConfig::rect(4, 8, (1, 3))
        .stride(2)
        .padding(1)
        .groups(2)
        .bias(false)
        .init(&mut g)
        .unwrap();
    assert_eq!(conv.weight.value().dims(), &[8, 2, 1, 3]);
    assert_eq!((conv.options.stride, conv.options.groups), ((2, 2), 2));
    assert!(conv.bias.is_none());
    let bn = BatchNorm2d::new(5).unwrap();
    assert_eq!(bn.channels(), 5);
    for (e, layer) in [
        (Linear::new(0, 3, &mut g).err(), "Linear"),
        (LinearConfig::new(4, 0).init(&mut g).err(), "Linear"),
        (Conv2d::new(3, 0, 3, &mut g).err(), "Conv2d"),
        (
            Conv2dConfig::new(3, 6, 3).groups(2).init(&mut g).err(),
            "Conv2d",
        ),
        (BatchNorm2d::new(0).err(), "BatchNorm2d"),
        // Sizes whose weight cannot exist: an error, not an overflow or an abort.
        (Linear::new(1 << 40, 1 << 40, &mut g).err(), "rand"),
        (Conv2d::new(1 << 62, 2, 1 << 31, &mut g).err(), "Conv2d"),
        (Conv2d::new(1 << 40, 1 << 40, 1, &mut g).err(), "rand"),
        (BatchNorm2d::new(usize::MAX).err(), "full"),
    ]
    .map(|(e, l)| (e.map(|e| e.to_string()), l))
    {
        let e = e.expect("an error");
        assert!(e.starts_with(layer), "{e}");
    }
}
