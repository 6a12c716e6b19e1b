//! Top-N error, as ImageNet results report it: a sample counts as an error unless its true
//! class is among the N highest scores. The lecture's strawberry picture is a top-1 error (the
//! network's first guess is another red fruit) but not a top-5 error (strawberry is among its
//! five guesses).

use tapegrad_autograd::{Result, Tensor};
use tapegrad_data::metrics::{rank_of, top_k_error, Accumulator};

/// The classes of the example.
pub const CLASSES: [&str; 10] = [
    "apple",
    "strawberry",
    "tomato",
    "cherry",
    "raspberry",
    "pomegranate",
    "red pepper",
    "lemon",
    "banana",
    "fig",
];

/// A picture with its true class and the network's probabilities for [`CLASSES`].
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub name: &'static str,
    pub label: usize,
    pub scores: [f32; 10],
}

/// The strawberry picture (true class ranked 3rd), and two more for a batch: a lemon ranked
/// first, and a fig ranked 6th (outside the top 5).
pub fn pictures() -> Vec<Picture> {
    vec![
        Picture {
            name: "strawberry",
            label: 1,
            // tomato 0.34 > cherry 0.22 > strawberry 0.18 > raspberry 0.12 > pomegranate 0.06
            scores: [0.04, 0.18, 0.34, 0.22, 0.12, 0.06, 0.02, 0.005, 0.005, 0.01],
        },
        Picture {
            name: "lemon",
            label: 7,
            scores: [0.05, 0.01, 0.02, 0.01, 0.01, 0.01, 0.04, 0.70, 0.12, 0.03],
        },
        Picture {
            name: "fig",
            label: 9,
            // pomegranate, apple, tomato, cherry, raspberry, then fig (6th)
            scores: [0.20, 0.05, 0.15, 0.12, 0.10, 0.25, 0.04, 0.01, 0.01, 0.07],
        },
    ]
}

/// One picture's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    pub name: &'static str,
    pub truth: &'static str,
    /// 1-based rank of the true class among the scores.
    pub rank: usize,
    /// The five highest-scoring classes, best first, with their scores.
    pub top5: Vec<(&'static str, f32)>,
    pub top1_error: f32,
    pub top5_error: f32,
}

/// Top-1 and top-5 error of each picture, and of the batch (through [`Accumulator`]).
pub fn evaluate(pictures: &[Picture]) -> Result<(Vec<Ranked>, f32, f32)> {
    let mut acc = Accumulator::new(&CLASSES, &[1, 5])?;
    let mut ranked = Vec::new();
    for p in pictures {
        let scores = Tensor::from_vec(p.scores.to_vec(), [1, CLASSES.len()])?;
        acc.update(&scores, &[p.label])?;
        let (values, indices) = scores.topk(5, 1)?;
        ranked.push(Ranked {
            name: p.name,
            truth: CLASSES[p.label],
            rank: rank_of(&p.scores, p.label) + 1,
            top5: indices
                .data()
                .iter()
                .zip(values.data())
                .map(|(&i, &v)| (CLASSES[i as usize], v))
                .collect(),
            top1_error: top_k_error(&scores, &[p.label], 1)?,
            top5_error: top_k_error(&scores, &[p.label], 5)?,
        });
    }
    Ok((ranked, acc.top_k_error(1)?, acc.top_k_error(5)?))
}
