//! Fashion-MNIST as installed by `apt-get install dataset-fashion-mnist` (or `$FASHION_MNIST_DIR`).
//! These tests need the full data set, so they are ignored by default (`-- --include-ignored`
//! runs them; CI installs the package). The same code paths run without it on the subset in
//! `assets/` (`tests/fashion_subset.rs`) and on files the tests write (`data_corrupt.rs`).

use std::path::Path;
use tapegrad_data::{DataLoader, FashionMnist, LoaderOptions};

fn load() -> tapegrad_data::Split {
    FashionMnist::open(None).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs the full Fashion-MNIST: apt-get install dataset-fashion-mnist"]
fn all_seventy_thousand_images_with_balanced_labels() {
    let split = load();
    // The published sizes: 60,000 training and 10,000 test images of 28x28 grey.
    assert_eq!(split.train.len(), 60_000);
    assert_eq!(split.test.len(), 10_000);
    for ds in [&split.train, &split.test] {
        assert_eq!(ds.sample_shape(), [1, 28, 28]);
        assert_eq!(ds.pixels().len(), ds.len() * 784);
        assert_eq!(ds.classes(), &FashionMnist::CLASSES.map(String::from));
    }
    // Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    assert_eq!(split.train.class_counts(), vec![6_000; 10]);
    assert_eq!(split.test.class_counts(), vec![1_000; 10]);
    // Bytes 0..=255 scaled by 1/255: both ends occur in the data, so the range is exactly [0, 1].
    assert_eq!(split.train.value_range(), (0.0, 1.0));
    assert_eq!(split.test.value_range(), (0.0, 1.0));
    // Every value is a whole number of 255ths.
    assert!(split.test.pixels().iter().all(|&v| {
        let b = v * 255.0;
        (b - b.round()).abs() < 1e-3
    }));
}

#[test]
#[ignore = "needs the full Fashion-MNIST: apt-get install dataset-fashion-mnist"]
fn first_samples_match_an_independent_reading() {
    let split = load();
    // Read independently from the .gz files (gunzip, skip the 8/16-byte headers): the first
    // labels are train [9, 0, 0, 3, 0] and test [9, 2, 1, 1, 6], and the first training image's
    // bytes sum to 76247.
    assert_eq!(&split.train.labels()[..5], &[9, 0, 0, 3, 0]);
    assert_eq!(&split.test.labels()[..5], &[9, 2, 1, 1, 6]);
    assert_eq!(split.train.classes()[9], "Ankle boot");
    let byte_sum: f32 = split
        .train
        .sample(0)
        .unwrap()
        .iter()
        .map(|v| (v * 255.0).round())
        .sum();
    assert_eq!(byte_sum, 76247.0);
}

#[test]
#[ignore = "needs the full Fashion-MNIST: apt-get install dataset-fashion-mnist"]
fn find_honours_an_explicit_folder_and_explains_a_missing_one() {
    let dir = FashionMnist::find(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(FashionMnist::find(Some(&dir)).unwrap(), dir);
    let err = FashionMnist::find(Some(Path::new("/nonexistent/fashion"))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/fashion"), "{msg}");
    assert!(
        msg.contains("apt-get install dataset-fashion-mnist"),
        "{msg}"
    );
    assert!(msg.contains(FashionMnist::ENV_VAR), "{msg}");
}

#[test]
#[ignore = "needs the full Fashion-MNIST: apt-get install dataset-fashion-mnist"]
fn the_loader_covers_the_test_split_in_batches() {
    let test = std::sync::Arc::new(load().test);
    let loader = DataLoader::new(test.clone(), 256, LoaderOptions::default()).unwrap();
    // 10,000 = 39 * 256 + 16, so 40 batches, the last of 16.
    assert_eq!(loader.len(), 40);
    let mut counts = [0usize; 10];
    let mut sizes = Vec::new();
    for batch in loader.epoch(3) {
        let batch = batch.unwrap();
        assert_eq!(&batch.images.dims()[1..], &[1, 28, 28]);
        sizes.push(batch.len());
        for &l in &batch.labels {
            counts[l] += 1;
        }
    }
    assert_eq!(sizes.len(), 40);
    assert_eq!(*sizes.last().unwrap(), 16);
    assert_eq!(counts, [1_000; 10]);
}
