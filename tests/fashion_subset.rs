//! The 7,000 real Fashion-MNIST images that ship in `assets/fashion-mnist-subset` (the main
//! job's data set without the full one, and the real data of these tests): their checksums,
//! the IDX reading of them gzipped and raw, and a short training run that must learn.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tapegrad::autograd::rng;
use tapegrad::data::{DataLoader, FashionMnist, LoaderOptions, Split};
use tapegrad::models::{LeNet5, LeNetConfig};
use tapegrad::nn::optim::{Adam, AdamConfig};
use tapegrad::train::{Schedule, Trainer};

fn subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist-subset")
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The four files and the SHA-256 of their gunzipped content, as the folder's README lists them.
const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "cf313073c7eb485392848071d5c433571d7166043e971e3345b095cc30518084",
    ),
    (
        "train-labels-idx1-ubyte",
        "097b93fbcf9bd5bc648b1a457ddc55c9e4ab49afb33f9ecae8ce068399a75e3a",
    ),
    (
        "t10k-images-idx3-ubyte",
        "7cee33c3c6414b1b86c25e665a6c4f41584269de3b7cc9768b1d351922845eef",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "3128d790775889812b73c4f13923559c8b9e281d112c6ea7862acf60a206a909",
    ),
];

#[test]
fn the_subset_files_match_their_checksums_and_the_readme() {
    let readme = std::fs::read_to_string(subset_dir().join("README.md")).unwrap();
    for (stem, want) in FILES {
        let got = sha256(&gunzip(&subset_dir().join(format!("{stem}.gz"))));
        assert_eq!(got, want, "{stem}.gz");
        assert!(readme.contains(want), "the README lists {stem}'s checksum");
    }
}

#[test]
fn the_subset_holds_600_training_and_100_test_images_per_class() {
    let split = FashionMnist::load(&subset_dir()).unwrap();
    assert_eq!(split.train.class_counts(), vec![600; 10]);
    assert_eq!(split.test.class_counts(), vec![100; 10]);
    for ds in [&split.train, &split.test] {
        assert_eq!(ds.sample_shape(), [1, 28, 28]);
        assert_eq!(ds.classes(), &FashionMnist::CLASSES.map(String::from));
        assert_eq!(ds.value_range(), (0.0, 1.0));
    }
    // The subset keeps the source files' order: the first five images of the full training file
    // are of classes 9, 0, 0, 3, 0 and all five are among the first 600 of their class; the
    // first test images are 9, 2, 1, 1, 6. The first training image's bytes sum to 76247
    // (read independently: gunzip, skip the 16-byte header, add the first 784 bytes).
    assert_eq!(&split.train.labels()[..5], &[9, 0, 0, 3, 0]);
    assert_eq!(&split.test.labels()[..5], &[9, 2, 1, 1, 6]);
    let raw = gunzip(&subset_dir().join("train-images-idx3-ubyte.gz"));
    let byte_sum: u32 = raw[16..16 + 784].iter().map(|&b| u32::from(b)).sum();
    assert_eq!(byte_sum, 76247);
    let read_sum: f32 = split
        .train
        .sample(0)
        .unwrap()
        .iter()
        .map(|v| (v * 255.0).round())
        .sum();
    assert_eq!(read_sum, 76247.0);
}

/// A folder of the same four files written uncompressed, as some downloads store them.
fn raw_copy(dir: &Path) {
    for (stem, _) in FILES {
        std::fs::write(
            dir.join(stem),
            gunzip(&subset_dir().join(format!("{stem}.gz"))),
        )
        .unwrap();
    }
}

#[test]
fn find_prefers_an_explicit_folder_raw_files_load_alike_and_a_missing_folder_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    raw_copy(dir.path());
    assert_eq!(FashionMnist::find(Some(dir.path())).unwrap(), dir.path());
    let raw = FashionMnist::load(dir.path()).unwrap();
    let gz = FashionMnist::load(&subset_dir()).unwrap();
    assert_eq!(raw.train.pixels(), gz.train.pixels());
    assert_eq!(raw.test.labels(), gz.test.labels());

    let err = FashionMnist::find(Some(Path::new("/nonexistent/fashion"))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/fashion"), "{msg}");
    assert!(
        msg.contains("apt-get install dataset-fashion-mnist"),
        "{msg}"
    );
    assert!(msg.contains(FashionMnist::ENV_VAR), "{msg}");
}

/// One epoch of LeNet-5 (ReLU, max pooling) with Adam over `split`, then its test accuracy.
fn one_epoch(split: Split) -> f32 {
    let train = DataLoader::new(Arc::new(split.train), 32, LoaderOptions::default()).unwrap();
    let test_opts = LoaderOptions {
        shuffle: false,
        ..Default::default()
    };
    let test = DataLoader::new(Arc::new(split.test), 250, test_opts).unwrap();
    let model = LeNet5::new(LeNetConfig::modern(28, 10), &mut rng(0)).unwrap();
    let opt = Adam::new(AdamConfig {
        lr: 0.002,
        ..Default::default()
    })
    .unwrap();
    let mut t = Trainer::new(Box::new(model), Box::new(opt), Schedule::None);
    assert!(t.train_epoch(&train, None, |_| {}).unwrap());
    t.finish_epoch(None, 0.0).unwrap();
    let eval = t.evaluate(&test).unwrap();
    assert_eq!(eval.count(), 1000);
    // Top-5 error is never above top-1 error.
    assert!(eval.top5_error().unwrap() <= eval.top1_error());
    eval.accuracy()
}

#[test]
fn one_short_epoch_on_the_subset_beats_seventy_percent() {
    // 6,000 images once through: chance is 10%; a LeNet-5 gets past 70% of the 1,000 test images.
    let acc = one_epoch(FashionMnist::load(&subset_dir()).unwrap());
    assert!(acc > 0.7, "test accuracy {acc}");
}

#[test]
fn a_short_run_on_raw_idx_files_learns_too() {
    // The same data through the uncompressed reader: 2,000 images once through beat chance well.
    let dir = tempfile::tempdir().unwrap();
    raw_copy(dir.path());
    let split = FashionMnist::load(dir.path()).unwrap();
    let first = (0..2000).collect::<Vec<_>>();
    let split = Split {
        train: split.train.subset(&first).unwrap(),
        test: split.test,
    };
    let acc = one_epoch(split);
    assert!(acc > 0.5, "test accuracy {acc}");
}
