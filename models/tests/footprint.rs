//! A zoo model's size from its name, checked against the model built, and the check that refuses
//! a file's sizes before anything is built.

use tapegrad_autograd::{Error, Tensor};
use tapegrad_models::{build, check_file, footprint, Footprint};
use tapegrad_nn::checkpoint::state_dict;

/// The built model's state dict as (key, dims), `num_batches_tracked` counters left out.
fn built(name: &str, classes: usize, input: [usize; 3]) -> Vec<(String, Vec<usize>)> {
    let mut m = build(name, classes, input, 0).unwrap();
    state_dict(m.as_mut())
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| (k, t.dims().to_vec()))
        .collect()
}

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// The footprint agrees with the built model: its values (all of them, or for the fixed-width
/// families the head's), its head (the last 2-D weight), its stem (the first 4-D weight) and
/// every sized key's dims.
fn agrees(name: &str, classes: usize, input: [usize; 3], exact: bool) -> Footprint {
    let fp = footprint(name, classes, input).unwrap();
    let sd = built(name, classes, input);
    let total: usize = sd.iter().map(|(_, d)| numel(d)).sum();
    let head = sd.iter().rfind(|(_, d)| d.len() == 2).unwrap();
    assert_eq!(&fp.head, head, "{name}");
    if exact {
        assert_eq!(fp.values, total, "{name} {classes} {input:?}");
        let stem = sd.iter().find(|(_, d)| d.len() == 4).unwrap();
        assert_eq!(fp.stem.as_ref(), Some(stem), "{name}");
    } else {
        // The head's weight and bias.
        assert_eq!(fp.values, numel(&head.1) + classes, "{name}");
        assert!(fp.stem.is_none());
    }
    for (key, dims) in &fp.sized {
        assert!(
            sd.contains(&(key.clone(), dims.clone())),
            "{name}: {key} {dims:?}"
        );
    }
    fp
}

#[test]
fn lenet_and_resnet_sizes_are_exact() {
    for (name, input) in [
        ("lenet5", [1, 28, 28]),
        ("lenet5-modern", [3, 32, 32]),
        ("lenet5-wide", [1, 28, 28]),
        ("lenet5-modern-12-24-128-84", [2, 28, 28]),
        ("lenet5-3-4-5-6", [1, 32, 32]),
        ("small-vgg-8-16", [1, 28, 28]),
        ("small-vgg-8x2-16-32x3-fc24-drop10", [3, 32, 32]),
    ] {
        agrees(name, 7, input, true);
    }
    for depth in [18, 34, 50, 101, 152] {
        for kind in ["resnet", "plain"] {
            agrees(&format!("{kind}{depth}-w4"), 5, [3, 32, 32], true);
            if depth <= 34 {
                agrees(&format!("{kind}{depth}-small-w8"), 10, [1, 28, 28], true);
            }
        }
    }
    // The zoo's default width, as torchvision's ResNet-18 (11,689,512 parameters for 1000
    // classes) plus 9,600 running statistics (2 for each of its 4,800 batch-norm channels:
    // 64 in the stem; per stage 2 blocks x 2 of 64, 128, 256, 512; and 128 + 256 + 512 in the
    // projections).
    let fp = agrees("resnet18", 1000, [3, 224, 224], true);
    assert_eq!(fp.values, 11_689_512 + 9_600);
}

#[test]
fn fixed_families_count_their_head() {
    for name in ["googlenet", "vgg11"] {
        agrees(name, 12, [3, 224, 224], false);
    }
}

#[test]
fn unknown_names_and_overflowing_sizes_are_errors() {
    for name in [
        "resnet19",
        "vgg12",
        "lenet5-1-2-3",
        "alexnet-x",
        "small-vgg-",
        "small-vgg-8-0",
        "small-vgg-8-drop100",
        "small-vgg-fc10",
    ] {
        assert!(footprint(name, 10, [3, 32, 32]).is_err(), "{name}");
    }
    let msg = footprint("resnet18-w4611686018427387904", 10, [3, 32, 32])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("overflows"), "{msg}");
    let huge = format!("lenet5-modern-{0}-{0}-{0}-{0}", usize::MAX / 2);
    assert!(footprint(&huge, 10, [1, 28, 28]).is_err());
    assert!(footprint("googlenet", usize::MAX, [3, 224, 224]).is_err());
}

fn file_of(name: &str, classes: usize, input: [usize; 3]) -> Vec<(String, Tensor)> {
    built(name, classes, input)
        .into_iter()
        .map(|(k, d)| (k, Tensor::zeros(d)))
        .collect()
}

fn refused(name: &str, classes: usize, input: [usize; 3], file: &[(String, Tensor)]) -> String {
    let err = check_file(name, classes, input, file, "w.safetensors").unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn a_file_too_small_for_the_model_is_refused_naming_the_sized_keys() {
    let lenet = file_of("lenet5-modern", 10, [1, 28, 28]);
    // The model of the file, and near misses (left to the strict load), pass.
    assert!(check_file("lenet5-modern", 10, [1, 28, 28], &lenet, "w").is_ok());
    assert!(check_file("lenet5-modern", 11, [3, 28, 28], &lenet, "w").is_ok());
    assert!(check_file("lenet5-modern-8-16-120-84", 10, [1, 28, 28], &lenet, "w").is_ok());
    // Widths of 100,000 in a model name: 2.5e11 weights in conv2 alone.
    let msg = refused(
        "lenet5-modern-100000-100000-100000-100000",
        10,
        [1, 28, 28],
        &lenet,
    );
    for word in [
        "w.safetensors",
        "lenet5-modern-100000-100000-100000-100000",
        "features.3.weight (file [16, 6, 5, 5], model [100000, 100000, 5, 5])",
        "nothing was built",
    ] {
        assert!(msg.contains(word), "expected {word:?} in: {msg}");
    }
    // A class count of 10^12 against a file with 10.
    let msg = refused("lenet5-modern", 1_000_000_000_000, [1, 28, 28], &lenet);
    assert!(
        msg.contains("classifier.2.weight (file [10, 84], model [1000000000000, 84])"),
        "{msg}"
    );
    // A file with a zero-size head claiming 4e12 classes, and a model of that many classes.
    let mut crafted = file_of("resnet18-small-w4", 10, [3, 32, 32]);
    crafted.retain(|(k, _)| k != "fc.weight");
    crafted.push(("fc.weight".into(), Tensor::zeros([4_000_000_000_000, 0])));
    let msg = refused(
        "resnet18-small-w4",
        4_000_000_000_000,
        [3, 32, 32],
        &crafted,
    );
    assert!(
        msg.contains("fc.weight (file [4000000000000, 0], model [4000000000000, 32])"),
        "{msg}"
    );
    // A fixed-width family: only the head's size depends on the file.
    let msg = refused("vgg16", 1 << 40, [3, 224, 224], &lenet);
    assert!(
        msg.contains("classifier.6.weight (model [1099511627776, 4096], not in the file)"),
        "{msg}"
    );
}
