//! Data-parallel training with ranks on threads of one process (`ThreadGroup`): the same
//! checks that `examples/distributed_check` runs under `mpirun` (rank 0's state broadcast, N
//! ranks training as one process with an N times larger batch, resumption from a checkpoint,
//! the sampler's shards), here on groups of two and four threads, each rank with its own pool
//! of one worker (its own thread), as `train --replicas N` runs them.

#[path = "../examples/distributed_check/checks.rs"]
mod checks;

use std::rc::Rc;
use tapegrad::autograd::Result;
use tapegrad::distributed::{Communicator, ThreadGroup};

/// Runs every check on a group of `size` threads; each rank's lines or its error.
fn on_threads(size: usize) -> Vec<Result<Vec<String>>> {
    let group = ThreadGroup::new(size).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|rank| {
                s.spawn(move || {
                    let _pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .use_current_thread()
                        .build()
                        .unwrap();
                    let comm: Rc<dyn Communicator> = Rc::new(rank);
                    checks::run_checks(&comm)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn two_and_four_ranks_on_threads_pass_the_distributed_checks() {
    for size in [2, 4] {
        let results = on_threads(size);
        for (rank, r) in results.iter().enumerate() {
            let lines = r
                .as_ref()
                .unwrap_or_else(|e| panic!("rank {rank} of {size}: {e}"));
            assert_eq!(lines.len(), 4);
        }
        let lines = results[0].as_ref().unwrap();
        eprintln!("{}", lines.join("\n"));
        assert!(lines[1].contains(&format!("{size} ranks x batch {}", 64 / size)));
    }
}
