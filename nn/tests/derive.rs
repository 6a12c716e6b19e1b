//! `#[derive(Module)]` on custom structs: names from fields, `Vec` numbered, `Option` present or
//! absent, attributes for what the type cannot tell, train/eval passed on, the inherent
//! `forward` called.

use tapegrad_autograd::{rng, Param, Result, Rng, Tape, Tensor, Var};
use tapegrad_nn::checkpoint::{counters, state_dict};
use tapegrad_nn::layers::{BatchNorm2d, Conv2d, Conv2dConfig, Dropout, Linear, LinearConfig, ReLU};
use tapegrad_nn::{Entry, EntryRef, Module, Sequential};

/// y = relu(bn(conv(x))) + x.
#[derive(Module)]
struct Residual {
    conv: Conv2d,
    bn: BatchNorm2d,
    #[module(skip)]
    add_input: bool,
}

impl Residual {
    fn new(c: usize, g: &mut Rng) -> Result<Residual> {
        let o = tapegrad_autograd::Conv2dOptions::default().padding(1);
        Ok(Residual {
            conv: Conv2dConfig::new(c, c, 3).options(o).bias(false).init(g)?,
            bn: BatchNorm2d::new(c)?,
            add_input: true,
        })
    }

    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = self.bn.forward(self.conv.forward(x)?)?.relu();
        if self.add_input {
            y.add(x)
        } else {
            Ok(y)
        }
    }
}

#[derive(Module)]
struct Net {
    stem: Conv2d,
    blocks: Vec<Residual>,
    extra: Option<Residual>,
    head: Option<Linear>,
    #[module(rename = "0")]
    scale: Param,
    #[module(buffer)]
    mean: Tensor,
    #[module(counter)]
    steps: u64,
    #[module(training)]
    training: bool,
    dropout: Dropout,
    #[module(skip)]
    width: usize,
}

impl Net {
    fn new(blocks: usize, extra: bool, g: &mut Rng) -> Result<Net> {
        let o = tapegrad_autograd::Conv2dOptions::default();
        Ok(Net {
            stem: Conv2dConfig::new(1, 2, 1).options(o).init(g)?,
            blocks: (0..blocks)
                .map(|_| Residual::new(2, g))
                .collect::<Result<_>>()?,
            extra: extra.then(|| Residual::new(2, g)).transpose()?,
            head: None,
            scale: Param::new(Tensor::scalar(2.0)),
            mean: Tensor::zeros([2]),
            steps: 0,
            training: true,
            dropout: Dropout::new(0.5, 7)?,
            width: 2,
        })
    }

    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let mut y = self.stem.forward(x)?;
        for b in &mut self.blocks {
            y = b.forward(y)?;
        }
        if self.training {
            self.steps += 1;
        }
        assert_eq!(y.shape().dims()[1], self.width);
        y.mul(x.tape().param(&self.scale))
    }
}
/// Names and kinds as `visit` reads them (through a shared reference), checked against
/// `visit_mut`'s, which must list the same entries in the same order.
fn entries(m: &mut dyn Module) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let shared: &dyn Module = m;
    shared.visit("", &mut |name, e| {
        let kind = match e {
            EntryRef::Param(_) => "param",
            EntryRef::Buffer(_) => "buffer",
            EntryRef::Counter(_) => "counter",
            EntryRef::Rng(_) => "rng",
        };
        out.push((name.to_string(), kind));
    });
    let mut out_mut = Vec::new();
    m.visit_mut("", &mut |name, e| {
        let kind = match e {
            Entry::Param(_) => "param",
            Entry::Buffer(_) => "buffer",
            Entry::Counter(_) => "counter",
            Entry::Rng(_) => "rng",
        };
        out_mut.push((name.to_string(), kind));
    });
    assert_eq!(out, out_mut);
    out
}

#[test]
fn names_come_from_fields_in_order() {
    let mut g = rng(0);
    let mut net = Net::new(2, false, &mut g).unwrap();
    let names: Vec<String> = entries(&mut net)
        .into_iter()
        .map(|(n, k)| format!("{n}:{k}"))
        .collect();
    let block = |i: usize| {
        [
            format!("blocks.{i}.conv.weight:param"),
            format!("blocks.{i}.bn.weight:param"),
            format!("blocks.{i}.bn.bias:param"),
            format!("blocks.{i}.bn.running_mean:buffer"),
            format!("blocks.{i}.bn.running_var:buffer"),
            format!("blocks.{i}.bn.num_batches_tracked:counter"),
        ]
    };
    let mut want = vec!["stem.weight:param".to_string(), "stem.bias:param".into()];
    want.extend(block(0));
    want.extend(block(1));
    want.extend([
        "0:param".to_string(),
        "mean:buffer".into(),
        "steps:counter".into(),
        "dropout.rng_state:rng".into(),
    ]);
    assert_eq!(names, want);
    // 2x1x1x1 + 2 (stem), 2 x (2x2x3x3 + 2 + 2) (blocks), 1 (scale).
    assert_eq!(net.num_parameters(), 4 + 2 * (36 + 4) + 1);
}

#[test]
fn an_option_is_visited_when_present() {
    let mut g = rng(0);
    let mut net = Net::new(0, true, &mut g).unwrap();
    let names: Vec<String> = entries(&mut net).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"extra.conv.weight".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("head")), "{names:?}");
    let mut bare = Net::new(0, false, &mut g).unwrap();
    assert!(!entries(&mut bare)
        .iter()
        .any(|(n, _)| n.starts_with("extra")));
}

#[test]
fn train_and_eval_reach_every_child_and_the_flag() {
    let mut g = rng(0);
    let mut net = Net::new(1, true, &mut g).unwrap();
    net.eval();
    assert!(!net.training);
    let tape = Tape::new();
    let x = tape.var(Tensor::rand([1, 1, 3, 3], -1.0, 1.0, &mut g));
    // Batch norm in evaluation mode uses (and keeps) its running statistics.
    net.forward(x).unwrap();
    assert_eq!(net.blocks[0].bn.num_batches_tracked, 0);
    assert_eq!(net.steps, 0);
    net.train();
    assert!(net.training);
    net.forward(x).unwrap();
    assert_eq!(net.blocks[0].bn.num_batches_tracked, 1);
    assert_eq!(net.steps, 1);
    // `extra` is not run by forward, but it was told the mode.
    net.forward(x).unwrap();
    assert_eq!(net.extra.as_ref().unwrap().bn.num_batches_tracked, 0);
}

#[test]
fn the_derived_forward_is_the_inherent_one() {
    let mut g = rng(1);
    let mut block = Residual::new(2, &mut g).unwrap();
    block.eval();
    let tape = Tape::new();
    let x = tape.var(Tensor::rand([1, 2, 4, 4], -1.0, 1.0, &mut g));
    let through_trait = Module::forward(&mut block, x).unwrap().value();
    let by_hand = block
        .bn
        .forward(block.conv.forward(x).unwrap())
        .unwrap()
        .relu()
        .add(x)
        .unwrap()
        .value();
    assert_eq!(through_trait.to_vec(), by_hand.to_vec());
    // And as a boxed module in a Sequential, numbered as PyTorch's.
    let mut seq = Sequential::new().add(block).add(ReLU);
    let names: Vec<String> = entries(&mut seq).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "0.conv.weight");
    assert_eq!(seq.forward(x).unwrap().shape().dims(), &[1, 2, 4, 4]);
}

/// A unit struct is a module without entries; arrays are numbered like `Vec`s.
#[derive(Module)]
struct Twice;

impl Twice {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        x.add(x)
    }
}

#[derive(Module)]
struct Pair {
    halves: [Linear; 2],
    twice: Twice,
    biases: Vec<Param>,
}

impl Pair {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let a = self.halves[0].forward(x)?;
        self.twice.forward(self.halves[1].forward(a)?)
    }
}

#[test]
fn arrays_and_vecs_of_params_are_numbered() {
    let mut g = rng(2);
    let mut pair = Pair {
        halves: [
            LinearConfig::new(3, 3).bias(false).init(&mut g).unwrap(),
            Linear::new(3, 3, &mut g).unwrap(),
        ],
        twice: Twice,
        biases: (0..2).map(|_| Param::new(Tensor::zeros([3]))).collect(),
    };
    let names: Vec<String> = entries(&mut pair).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "halves.0.weight",
            "halves.1.weight",
            "halves.1.bias",
            "biases.0",
            "biases.1"
        ]
    );
    let tape = Tape::new();
    let y = Module::forward(&mut pair, tape.var(Tensor::zeros([1, 3]))).unwrap();
    assert_eq!(y.shape().dims(), &[1, 3]);
}

#[test]
fn reading_needs_only_a_shared_reference() {
    let mut g = rng(3);
    let mut net = Net::new(1, false, &mut g).unwrap();
    net.steps = 5;
    let net = &net;
    assert_eq!(net.num_parameters(), 4 + 40 + 1);
    assert_eq!(net.parameter_names()[..2], ["stem.weight", "stem.bias"]);
    let sd = state_dict(net);
    assert_eq!(sd.len(), 2 + 5 + 2);
    assert_eq!(sd[7].0, "0");
    assert_eq!(sd[8], ("mean".to_string(), Tensor::zeros([2])));
    assert!(counters(net).contains(&("steps".to_string(), 5)));
}

mod parts {
    use tapegrad_autograd::{Result, Rng, Var};
    use tapegrad_nn::layers::{BatchNorm2d, Conv2d, ReLU};
    use tapegrad_nn::{Module, Sequential};

    /// conv, bn, relu; its inherent forward is private, so callers outside this module reach
    /// it through `Module::forward`, which summaries see.
    #[derive(Module)]
    pub struct Block {
        conv: Conv2d,
        bn: BatchNorm2d,
        act: Sequential,
    }

    impl Block {
        pub fn new(c: usize, g: &mut Rng) -> Result<Block> {
            let o = tapegrad_autograd::Conv2dOptions::default().padding(1);
            Ok(Block {
                conv: tapegrad_nn::layers::Conv2dConfig::new(c, c, 3)
                    .options(o)
                    .bias(false)
                    .init(g)?,
                bn: BatchNorm2d::new(c)?,
                act: Sequential::new().add(ReLU).add(ReLU),
            })
        }

        fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
            self.act.forward(self.bn.forward(self.conv.forward(x)?)?)
        }
    }
}

#[derive(Module)]
struct Stack {
    first: parts::Block,
    rest: Vec<parts::Block>,
    head: Linear,
}

impl Stack {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let mut y = self.first.forward(x)?;
        for b in &mut self.rest {
            y = b.forward(y)?;
        }
        self.head.forward(y.mean(&[2, 3], false)?)
    }
}

#[test]
fn summaries_see_children_called_directly_and_keep_the_mode() {
    let mut g = rng(4);
    let mut m = Stack {
        first: parts::Block::new(2, &mut g).unwrap(),
        rest: vec![parts::Block::new(2, &mut g).unwrap()],
        head: Linear::new(2, 3, &mut g).unwrap(),
    };
    m.eval();
    let s = tapegrad_nn::summary(&mut m, &[1, 2, 5, 5]).unwrap();
    let leaves: Vec<(&str, &str)> = s.layers().map(|r| (&*r.name, r.type_name)).collect();
    let block = |p: &str| {
        [
            (format!("{p}.conv"), "Conv2d"),
            (format!("{p}.bn"), "BatchNorm2d"),
            (format!("{p}.act.0"), "ReLU"),
            (format!("{p}.act.1"), "ReLU"),
        ]
    };
    let mut want: Vec<(String, &str)> = block("first").into();
    want.extend(block("rest.0"));
    want.push(("head".into(), "Linear"));
    let want: Vec<(&str, &str)> = want.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    assert_eq!(leaves, want);
    // The blocks and their Sequentials have rows of their own, with their outputs.
    let row = s
        .row("rest.0")
        .expect("the block called directly has a row");
    assert_eq!((row.type_name, row.leaf), ("Block", false));
    assert_eq!(row.output_shape.dims(), &[1, 2, 5, 5]);
    assert_eq!(s.row("first.act").unwrap().type_name, "Sequential");
    assert_eq!(s.total_params, m.num_parameters());
    // Taken in evaluation mode, the model stays there; in training mode, it returns to it.
    assert_eq!(m.is_training(), Some(false));
    m.train();
    tapegrad_nn::summary(&mut m, &[1, 2, 5, 5]).unwrap();
    assert_eq!(m.is_training(), Some(true));
    // Batch norm ran in evaluation mode: its statistics were not updated.
    assert_eq!(counters(&m).iter().map(|c| c.1).sum::<u64>(), 0);
}

#[test]
fn a_forward_on_another_tape_is_not_recorded() {
    /// Runs a second model on its own tape inside its forward.
    #[derive(Module)]
    struct Nested {
        inner: Linear,
        #[module(skip)]
        other: Option<Box<Linear>>,
    }
    impl Nested {
        fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
            if let Some(o) = &mut self.other {
                let tape = Tape::new();
                o.forward(tape.var(Tensor::zeros([1, 2])))?;
            }
            self.inner.forward(x)
        }
    }
    let mut g = rng(5);
    let mut m = Nested {
        inner: Linear::new(2, 2, &mut g).unwrap(),
        other: Some(Box::new(Linear::new(2, 2, &mut g).unwrap())),
    };
    let s = tapegrad_nn::summary(&mut m, &[1, 2]).unwrap();
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["inner"]);
}

/// Generic over its body; boxed children and optional lists of them are walked too.
#[derive(Module)]
struct Wrapper<M: Module> {
    body: M,
    extras: Option<Vec<Box<dyn Module>>>,
}

impl<M: Module> Wrapper<M> {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let mut y = self.body.forward(x)?;
        for e in self.extras.iter_mut().flatten() {
            y = e.forward(y)?;
        }
        Ok(y)
    }
}

#[test]
fn generic_boxed_and_nested_fields_are_walked() {
    let mut g = rng(6);
    let extras: Vec<Box<dyn Module>> = vec![
        Box::new(LinearConfig::new(3, 3).bias(false).init(&mut g).unwrap()),
        Box::new(Dropout::new(0.5, 1).unwrap()),
    ];
    let mut w = Wrapper {
        body: Linear::new(3, 3, &mut g).unwrap(),
        extras: Some(extras),
    };
    let names: Vec<String> = entries(&mut w).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "body.weight",
            "body.bias",
            "extras.0.weight",
            "extras.1.rng_state"
        ]
    );
    // The dropout inside the boxed list keeps a mode, so the wrapper reports one.
    w.eval();
    assert_eq!(w.is_training(), Some(false));
    let mut modules = Vec::new();
    w.visit_modules("", &mut |name, _| modules.push(name.to_string()));
    assert_eq!(modules, ["body", "extras.0", "extras.1"]);
    let tape = Tape::new();
    let y = Module::forward(&mut w, tape.var(Tensor::ones([2, 3]))).unwrap();
    assert_eq!(y.shape().dims(), &[2, 3]);
}

/// A hand-written container that lists no children to summaries, around a hand-written leaf
/// that does not report itself: `forward_child` still names and records both.
struct Old {
    leaf: Doubling,
    fc: Linear,
}

struct Doubling;

impl Module for Doubling {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        x.add(x)
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, EntryRef<'_>)) {}
    fn visit_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, Entry<'_>)) {}
}

impl Module for Old {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        let y = tapegrad_nn::forward_child("double", &mut self.leaf, x)?;
        tapegrad_nn::forward_child("out", &mut self.fc, y)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        self.fc.visit(&format!("{prefix}out."), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.fc.visit_mut(&format!("{prefix}out."), f);
    }
}

#[test]
fn forward_child_names_what_the_walk_does_not() {
    let mut m = Old {
        leaf: Doubling,
        fc: Linear::new(2, 4, &mut rng(7)).unwrap(),
    };
    let s = tapegrad_nn::summary(&mut m, &[3, 2]).unwrap();
    let rows: Vec<(&str, &str, usize)> = s
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.type_name, r.params))
        .collect();
    assert_eq!(rows, [("double", "Doubling", 0), ("out", "Linear", 12)]);
    assert_eq!(s.total_macs, 3 * 4 * 2);
}
