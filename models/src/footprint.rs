//! What a zoo model holds, computed from its name without building it, and the check that a
//! file's tensors can be that model before anything is allocated for it.
//!
//! Programs that build a network from a file (`infer`, `predict`, `train --resume`) take sizes
//! from the file: class counts from a head's rows, input channels from a stem's shape, widths
//! from a model name in the metadata. A crafted file can claim sizes that ask for petabytes, and
//! building the network would abort the process before the strict load looked at anything. A
//! model that loads a file strictly has exactly the file's tensors, so its values cannot
//! outnumber them; [`check_file`] refuses a model with more than twice as many values as the
//! file holds (leaving near misses to the strict load, whose error lists every key), and names
//! the weights whose sizes come from the arguments, with the file's shapes and the model's.

use crate::resnet::Bottleneck;
use crate::zoo::{parse_any, Arch};
use tapegrad_autograd::{Error, Result, Tensor};

/// A key and its dims.
pub type KeyShape = (String, Vec<usize>);

/// A zoo model's size, from its name and arguments alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Values of its parameters and running statistics (`num_batches_tracked` counters left
    /// out): exact for LeNet and ResNet; for AlexNet, VGG and GoogLeNet, whose other layers are
    /// fixed, those of the last classifier layer only (a lower bound).
    pub values: usize,
    /// The last classifier layer's weight: `[num_classes, features]`.
    pub head: KeyShape,
    /// The first convolution's weight, `[out, in_channels, kh, kw]`, for the families whose
    /// input channels vary (LeNet, ResNet; the others take 3 channels).
    pub stem: Option<KeyShape>,
    /// Every weight whose shape depends on the arguments (the head and stem among them).
    pub sized: Vec<KeyShape>,
}

fn overflow(name: &str, num_classes: usize, c: usize) -> Error {
    Error::invalid(
        "models::footprint",
        format!("{name} with {num_classes} classes and {c} input channels: its size overflows"),
    )
}

/// Sums of products, checked.
struct Tally(Option<usize>);

impl Tally {
    fn add(&mut self, dims: &[usize]) {
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        self.0 = self.0.zip(n).and_then(|(t, n)| t.checked_add(n));
    }
    /// A convolution without bias, `[o, i, k, k]`.
    fn conv(&mut self, i: usize, o: usize, k: usize) {
        self.add(&[o, i, k, k]);
    }
    /// Weight, bias, running mean and variance.
    fn batch_norm(&mut self, c: usize) {
        self.add(&[4, c]);
    }
}

/// The size of `build(name, num_classes, input)` (see [`Footprint`]), without building it: an
/// error for a name the zoo does not know or sizes whose product overflows.
pub fn footprint(name: &str, num_classes: usize, input: [usize; 3]) -> Result<Footprint> {
    let c = input[0];
    let mut t = Tally(Some(0));
    let key = |k: &str, dims: &[usize]| (k.to_string(), dims.to_vec());
    let (head, stem, mut sized) = match parse_any(name)? {
        Arch::LeNet { modern, widths } => {
            let (c1, c2, c3, hidden) = widths;
            // features: conv, act, pool, conv, ... (the classic one has an extra tanh).
            let (conv2, conv3) = if modern { (3, 6) } else { (4, 7) };
            let sized = vec![
                key("features.0.weight", &[c1, c, 5, 5]),
                key(&format!("features.{conv2}.weight"), &[c2, c1, 5, 5]),
                key(&format!("features.{conv3}.weight"), &[c3, c2, 5, 5]),
                key("classifier.0.weight", &[hidden, c3]),
                key("classifier.2.weight", &[num_classes, hidden]),
            ];
            for (_, dims) in &sized {
                t.add(dims);
                t.add(&dims[..1]);
            }
            (sized[4].clone(), Some(sized[0].clone()), sized)
        }
        Arch::ResNet {
            depth,
            small,
            width: w,
            plain,
        } => {
            let (bottleneck, counts) = match depth {
                18 => (false, [2, 2, 2, 2]),
                34 => (false, [3, 4, 6, 3]),
                50 => (true, [3, 4, 6, 3]),
                101 => (true, [3, 4, 23, 3]),
                _ => (true, [3, 8, 36, 3]),
            };
            let e = if bottleneck { Bottleneck::EXPANSION } else { 1 };
            let k = if small { 3 } else { 7 };
            t.conv(c, w, k);
            t.batch_norm(w);
            let mut cin = w;
            for (i, &blocks) in counts.iter().enumerate() {
                let width = w.checked_mul(1 << i);
                let out = width.and_then(|x| x.checked_mul(e));
                let (Some(width), Some(out)) = (width, out) else {
                    return Err(overflow(name, num_classes, c));
                };
                for b in 0..blocks {
                    let stride = if b == 0 && i > 0 { 2 } else { 1 };
                    if bottleneck {
                        t.conv(cin, width, 1);
                        t.conv(width, width, 3);
                        t.conv(width, out, 1);
                        t.batch_norm(width);
                        t.batch_norm(width);
                    } else {
                        t.conv(cin, width, 3);
                        t.conv(width, width, 3);
                        t.batch_norm(width);
                    }
                    t.batch_norm(out);
                    if !plain && (stride != 1 || cin != out) {
                        t.conv(cin, out, 1);
                        t.batch_norm(out);
                    }
                    cin = out;
                }
            }
            let features = w
                .checked_mul(8 * e)
                .ok_or_else(|| overflow(name, num_classes, c))?;
            t.add(&[num_classes, features]);
            t.add(&[num_classes]);
            let stem = key("conv1.weight", &[w, c, k, k]);
            let first = if bottleneck {
                [w, w, 1, 1]
            } else {
                [w, w, 3, 3]
            };
            let head = key("fc.weight", &[num_classes, features]);
            let sized = vec![
                stem.clone(),
                key("layer1.0.conv1.weight", &first),
                head.clone(),
            ];
            (head, Some(stem), sized)
        }
        Arch::SmallVgg => {
            let cfg = crate::SmallVggConfig::from_name(name, c, input[1], num_classes)
                .ok_or_else(|| overflow(name, num_classes, c))?;
            let mut sized = Vec::new();
            let (mut cin, mut index) = (c, 0);
            for &(width, convs) in &cfg.stages {
                for _ in 0..convs {
                    let w = key(&format!("features.{index}.weight"), &[width, cin, 3, 3]);
                    t.add(&w.1);
                    t.batch_norm(width);
                    sized.push(w);
                    (cin, index) = (width, index + 3);
                }
                index += 1;
            }
            let side = cfg.final_side();
            let flat = cin
                .checked_mul(side)
                .and_then(|x| x.checked_mul(side))
                .ok_or_else(|| overflow(name, num_classes, c))?;
            let mut linear = |k: &str, o: usize, i: usize| {
                t.add(&[o, i]);
                t.add(&[o]);
                sized.push(key(k, &[o, i]));
            };
            let head = if cfg.hidden > 0 {
                linear("classifier.1.weight", cfg.hidden, flat);
                linear("classifier.4.weight", num_classes, cfg.hidden);
                "classifier.4.weight"
            } else {
                linear("classifier.1.weight", num_classes, flat);
                "classifier.1.weight"
            };
            let head = sized.iter().find(|(k, _)| k == head).cloned();
            let head = head.expect("the head was just added");
            (head, Some(sized[0].clone()), sized)
        }
        fixed => {
            let (head_key, features) = match fixed {
                Arch::GoogLeNet => ("fc.weight", 1024),
                Arch::Vgg { depth, .. } if ![11, 13, 16, 19].contains(&depth) => {
                    return Err(Error::invalid(
                        "Vgg",
                        format!("depth {depth} is not one of 11, 13, 16, 19"),
                    ))
                }
                _ => ("classifier.6.weight", 4096),
            };
            t.add(&[num_classes, features]);
            t.add(&[num_classes]);
            let head = key(head_key, &[num_classes, features]);
            (head.clone(), None, vec![head])
        }
    };
    sized.sort();
    let values = t.0.ok_or_else(|| overflow(name, num_classes, c))?;
    Ok(Footprint {
        values,
        head,
        stem,
        sized,
    })
}

/// Checks, before anything is built, that `build(name, num_classes, input)` can be the model of
/// `tensors` (a file's, named `what` in the error): refused when it would hold more than twice
/// as many values as the tensors do (a strict load needs exactly as many), naming each weight
/// whose shape comes from the arguments and differs in the file. A model that passes costs at
/// most twice the file's memory to build (plus the fixed layers of AlexNet, VGG or GoogLeNet);
/// smaller differences are left to the strict load, which names every key that does not fit.
pub fn check_file(
    name: &str,
    num_classes: usize,
    input: [usize; 3],
    tensors: &[(String, Tensor)],
    what: &str,
) -> Result<()> {
    let fp = footprint(name, num_classes, input)?;
    let held = tensors
        .iter()
        .fold(0usize, |n, (_, t)| n.saturating_add(t.numel()));
    if fp.values / 2 <= held {
        return Ok(());
    }
    let mut differ = Vec::new();
    for (key, want) in &fp.sized {
        match tensors.iter().find(|(n, _)| n == key) {
            Some((_, t)) if t.dims() == want.as_slice() => {}
            Some((_, t)) => differ.push(format!("{key} (file {:?}, model {want:?})", t.dims())),
            None => differ.push(format!("{key} (model {want:?}, not in the file)")),
        }
    }
    let differ = if differ.is_empty() {
        ": none of the weights sized by the name and arguments".to_string()
    } else {
        format!(": {}", differ.join(", "))
    };
    Err(Error::Format {
        what: what.to_string(),
        msg: format!(
            "cannot be {name} with {num_classes} classes and input {input:?}, which holds at \
             least {} values where the file holds {held}; nothing was built. Sizes that differ{differ}",
            fp.values
        ),
    })
}
