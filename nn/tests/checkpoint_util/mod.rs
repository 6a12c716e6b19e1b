//! Helpers shared by the checkpoint tests: a small conv + BN + linear network, scratch
//! directories, and safetensors files written by hand.

#![allow(dead_code)]

use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use tapegrad_autograd::{rng, Tape, Tensor};
use tapegrad_nn::checkpoint::state_dict;
use tapegrad_nn::layers::{BatchNorm2d, Conv2dConfig, Flatten, Linear, ReLU};
use tapegrad_nn::{Module, Sequential};

/// PyTorch's `nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
/// nn.Flatten(), nn.Linear(3 * 4 * 4, 2))`, for `[N, 2, 4, 4]` input.
pub fn net(seed: u64) -> Sequential {
    let g = &mut rng(seed);
    Sequential::new()
        .add(Conv2dConfig::new(2, 3, 3).padding(1).init(g).unwrap())
        .add(BatchNorm2d::new(3).unwrap())
        .add(ReLU)
        .add(Flatten::default())
        .add(Linear::new(48, 2, g).unwrap())
}

/// `net` after two training-mode forward passes, so that its running statistics and
/// `num_batches_tracked` (2) differ from a fresh network's.
pub fn trained_net(seed: u64) -> Sequential {
    let mut m = net(seed);
    m.train();
    for s in 0..2 {
        let tape = Tape::new();
        m.forward(tape.input(Tensor::randn([3, 2, 4, 4], &mut rng(100 + s))))
            .unwrap();
    }
    m.eval();
    m
}

/// The network's output in evaluation mode.
pub fn eval_out(m: &mut dyn Module, x: &Tensor) -> Tensor {
    m.eval();
    let tape = Tape::inference();
    m.forward(tape.input(x.clone())).unwrap().value()
}

pub fn input() -> Tensor {
    Tensor::randn([2, 2, 4, 4], &mut rng(7))
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("checkpoint-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in a directory, sorted.
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Bitwise equality of two state dicts (NaN-safe, and -0.0 differs from 0.0).
pub fn same_bits(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((na, ta), (nb, tb))| {
            na == nb
                && ta.shape() == tb.shape()
                && ta
                    .data()
                    .iter()
                    .zip(tb.data())
                    .all(|(x, y)| x.to_bits() == y.to_bits())
        })
}

pub fn snapshot(m: &mut dyn Module) -> Vec<(String, Tensor)> {
    // Deep copies: the model's tensors must not be the ones compared later.
    state_dict(m)
        .into_iter()
        .map(|(n, t)| {
            let c = Tensor::from_vec(t.to_vec(), t.shape().clone()).unwrap();
            (n, c)
        })
        .collect()
}

/// One tensor of a hand-written file.
pub struct Raw {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

pub fn f32s(shape: &[usize], v: &[f32]) -> Raw {
    assert_eq!(shape.iter().product::<usize>(), v.len());
    Raw {
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

pub fn i64_scalar(v: i64) -> Raw {
    Raw {
        dtype: Dtype::I64,
        shape: vec![],
        data: v.to_le_bytes().to_vec(),
    }
}

/// A safetensors file as `safetensors.torch.save_file` writes it (with `format: pt`).
pub fn file(entries: &[(&str, Raw)]) -> Vec<u8> {
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize(entries.iter().map(|(n, r)| (*n, r)), Some(meta)).unwrap()
}

/// A file from a header written by hand (which may lie) and a data section.
pub fn forged(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
