//! The batching loader: shapes, coverage, determinism across threads and prefetch depths,
//! per-sample augmentation seeds, prefetching ahead, and errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapegrad_autograd::{Result, Rng, Tensor};
use tapegrad_data::{
    synthetic, Batch, CenterCrop, Compose, DataLoader, Dataset, LoaderOptions, RandomCrop,
    RandomHorizontalFlip, Transform,
};

fn data(per_class: usize) -> Arc<Dataset> {
    Arc::new(synthetic::shapes(per_class, 1).unwrap())
}

fn collect(loader: &DataLoader, epoch: u64) -> Vec<Batch> {
    loader.epoch(epoch).map(|b| b.unwrap()).collect()
}

fn augment() -> Arc<dyn Transform> {
    Arc::new(
        Compose::new()
            .then(RandomCrop::new(24, 2, 0.0))
            .then(RandomHorizontalFlip::new(0.5)),
    )
}

#[test]
fn batch_shapes_and_the_last_partial_batch() {
    // 23 samples in batches of 5: 4 full batches and one of 3, or just the 4 with drop_last.
    let ds = Arc::new(data(3).subset(&(0..23).collect::<Vec<_>>()).unwrap());
    let keep = DataLoader::new(ds.clone(), 5, LoaderOptions::default()).unwrap();
    assert_eq!(keep.len(), 5);
    let sizes: Vec<usize> = collect(&keep, 0).iter().map(|b| b.len()).collect();
    assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    for b in collect(&keep, 0) {
        assert_eq!(b.images.dims(), &[b.len(), 1, 28, 28]);
    }
    let opts = LoaderOptions {
        drop_last: true,
        ..Default::default()
    };
    let drop = DataLoader::new(ds.clone(), 5, opts).unwrap();
    assert_eq!(drop.len(), 4);
    let batches = collect(&drop, 0);
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![5; 4]
    );
    // With augmentation, the batch takes the transformed shape.
    let opts = LoaderOptions {
        transform: Some(augment()),
        ..Default::default()
    };
    let aug = DataLoader::new(ds, 8, opts).unwrap();
    assert_eq!(collect(&aug, 0)[0].images.dims(), &[8, 1, 24, 24]);
}

#[test]
fn every_sample_exactly_once_per_epoch_with_its_own_label_and_pixels() {
    let ds = data(10);
    let loader = DataLoader::new(ds.clone(), 16, LoaderOptions::default()).unwrap();
    for epoch in 0..3 {
        let batches = collect(&loader, epoch);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        // Shuffled: not in dataset order ...
        assert_ne!(seen, (0..100).collect::<Vec<_>>());
        // ... but a permutation of it.
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        for b in &batches {
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.labels[k], ds.labels()[i]);
                let img = b.images.narrow(0, k, 1).unwrap();
                assert_eq!(img.data(), ds.sample(i).unwrap());
            }
        }
    }
    // Without shuffling the order is the dataset's.
    let opts = LoaderOptions {
        shuffle: false,
        ..Default::default()
    };
    let plain = DataLoader::new(ds, 16, opts).unwrap();
    let order: Vec<usize> = collect(&plain, 5)
        .iter()
        .flat_map(|b| b.indices.clone())
        .collect();
    assert_eq!(order, (0..100).collect::<Vec<_>>());
}

fn same(a: &[Batch], b: &[Batch]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.indices == y.indices && x.labels == y.labels && x.images == y.images)
}

#[test]
fn deterministic_for_a_seed_whatever_the_threads_and_prefetch() {
    let ds = data(6);
    let make = |seed, threads, prefetch| {
        let opts = LoaderOptions {
            seed,
            threads: Some(threads),
            prefetch,
            transform: Some(augment()),
            ..Default::default()
        };
        DataLoader::new(ds.clone(), 7, opts).unwrap()
    };
    let reference = collect(&make(42, 1, 0), 1);
    assert!(same(&reference, &collect(&make(42, 2, 0), 1)));
    assert!(same(&reference, &collect(&make(42, 2, 3), 1)));
    assert!(same(&reference, &collect(&make(42, 1, 1), 1)));
    // Another seed or another epoch gives another order.
    assert!(!same(&reference, &collect(&make(43, 1, 0), 1)));
    assert!(!same(&reference, &collect(&make(42, 1, 0), 2)));
}

#[test]
fn a_sample_is_augmented_the_same_whatever_batch_it_lands_in() {
    // Per-sample generators are seeded by (seed, epoch, index): a batch size of 4 or 9 puts a
    // sample in a different batch at a different position, but not under different randomness.
    let ds = data(4);
    let by_index = |batch_size| {
        let opts = LoaderOptions {
            transform: Some(augment()),
            ..Default::default()
        };
        let loader = DataLoader::new(ds.clone(), batch_size, opts).unwrap();
        let mut out: Vec<Option<Tensor>> = vec![None; ds.len()];
        for b in collect(&loader, 0) {
            for (k, &i) in b.indices.iter().enumerate() {
                out[i] = Some(b.images.narrow(0, k, 1).unwrap());
            }
        }
        out
    };
    let (a, b) = (by_index(4), by_index(9));
    assert!(a.iter().all(Option::is_some));
    assert_eq!(a, b);
    // And the augmentation is random: some samples were cropped at different offsets than a
    // plain centre crop would give.
    let centred: Vec<Tensor> = (0..ds.len())
        .map(|i| {
            let x = ds.image(i).unwrap();
            let c = CenterCrop::new(24)
                .apply(&x, &mut tapegrad_autograd::rng(0))
                .unwrap();
            c.reshape([1, 1, 24, 24]).unwrap()
        })
        .collect();
    let differ = a
        .iter()
        .zip(&centred)
        .filter(|(x, c)| x.as_ref() != Some(c))
        .count();
    assert!(differ > ds.len() / 2, "{differ}");
}

/// Counts the samples it has transformed.
struct Counting(Arc<AtomicUsize>);

impl Transform for Counting {
    fn apply(&self, x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(x.clone())
    }
}

fn counting_loader(prefetch: usize) -> (DataLoader, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let opts = LoaderOptions {
        prefetch,
        transform: Some(Arc::new(Counting(count.clone()))),
        ..Default::default()
    };
    (DataLoader::new(data(5), 10, opts).unwrap(), count)
}

#[test]
fn prefetching_prepares_the_next_batch_while_the_caller_works() {
    // With prefetch 2, once batch 0 is taken the background thread goes on to batches 1 and 2
    // without being asked: the count passes 10 while this thread only waits.
    let (loader, count) = counting_loader(2);
    let mut epoch = loader.epoch(0);
    epoch.next().unwrap().unwrap();
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < 30 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(count.load(Ordering::SeqCst), 30);
    // It stops there (two batches ahead) until the caller takes more.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count.load(Ordering::SeqCst), 30);
    assert_eq!(epoch.count(), 4);
    assert_eq!(count.load(Ordering::SeqCst), 50);

    // Without prefetching, nothing happens between calls.
    let (loader, count) = counting_loader(0);
    let mut epoch = loader.epoch(0);
    epoch.next().unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count.load(Ordering::SeqCst), 10);
}

#[test]
fn dropping_an_epoch_early_stops_its_thread() {
    let (loader, count) = counting_loader(1);
    {
        let mut epoch = loader.epoch(0);
        epoch.next().unwrap().unwrap();
    }
    // The drop joined the worker, which had at most one more batch in hand.
    let after = count.load(Ordering::SeqCst);
    assert!(after <= 20, "{after}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count.load(Ordering::SeqCst), after);
}

#[test]
fn errors_stop_the_epoch() {
    assert!(DataLoader::new(data(1), 0, LoaderOptions::default()).is_err());
    for prefetch in [0, 2] {
        // A crop larger than the 28x28 images fails on the first batch.
        let opts = LoaderOptions {
            prefetch,
            transform: Some(Arc::new(CenterCrop::new(30))),
            ..Default::default()
        };
        let loader = DataLoader::new(data(3), 4, opts).unwrap();
        let mut epoch = loader.epoch(0);
        let err = epoch.next().unwrap().unwrap_err();
        assert!(err.to_string().contains("CenterCrop"), "{err}");
        assert!(epoch.next().is_none());
    }
}
