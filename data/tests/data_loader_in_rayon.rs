//! Loaders iterated from inside rayon's workers (two trainings in a `par_iter`): the prefetch
//! thread prepares batches in a pool of its own, so it never waits for a worker that is
//! waiting for it. A regression fails on the timeout rather than hanging the test run.
//!
//! This binary holds one test, so that it can size rayon's global pool itself.

use rayon::prelude::*;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tapegrad_data::{synthetic, DataLoader, HorizontalFlip, LoaderOptions};

#[test]
fn two_loaders_iterated_inside_a_par_iter_on_two_threads_finish() {
    // Two workers, both busy iterating a loader: nothing else is left in the global pool.
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build_global()
        .unwrap();
    let data = Arc::new(synthetic::shapes(3, 0).unwrap());
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let counts: Vec<usize> = (0..2u64)
            .into_par_iter()
            .map(|seed| {
                // A transform, so that each batch is assembled with a parallel map.
                let opts = LoaderOptions {
                    seed,
                    transform: Some(Arc::new(HorizontalFlip)),
                    prefetch: 2,
                    ..Default::default()
                };
                let loader = DataLoader::new(data.clone(), 4, opts).unwrap();
                (0..2)
                    .map(|e| loader.epoch(e).map(|b| b.unwrap().len()).sum::<usize>())
                    .sum()
            })
            .collect();
        done.send(counts).unwrap();
    });
    // 30 samples, two epochs each; the work takes milliseconds, the limit is generous for a
    // busy machine.
    let counts = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("the loaders did not finish in 120 s: deadlocked");
    assert_eq!(counts, vec![60, 60]);
}
