//! Data-parallel training: `--replicas N`, one thread of this process (rank) per shard of
//! every batch, or `--distributed`, one process per shard, started by `mpirun -np N` (needs
//! the program built with the `mpi` feature). Both shard the batches and average the
//! gradients alike.

use std::rc::Rc;
use tapegrad::autograd::{Error, Result};
use tapegrad::distributed::Communicator;
use tapegrad::nn::checkpoint::Checkpoint;

/// The checkpoint's metadata key for the number of ranks that trained it.
pub const RANKS_KEY: &str = "run.ranks";

/// The world of the run's processes with `--distributed`, else `None`.
pub fn world(distributed: bool) -> Result<Option<Rc<dyn Communicator>>> {
    if !distributed {
        return Ok(None);
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Some(Rc::new(tapegrad::distributed::MpiWorld::init()?)))
    }
    #[cfg(not(feature = "mpi"))]
    Err(Error::invalid(
        "train",
        "--distributed needs MPI, and this program was built without it: build it with \
         `cargo build --release --example train --features mpi` (Debian packages openmpi-bin \
         libopenmpi-dev libclang-dev) and start it with \
         `mpirun -np N target/release/examples/train --distributed ...`",
    ))
}

/// Worker threads of each rank when `--threads` is not given: the cores shared out among the
/// ranks on this machine.
pub fn default_threads(world: Option<&dyn Communicator>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / world.map_or(1, |w| w.local_size().max(1))).max(1)
}

fn pool_error(e: rayon::ThreadPoolBuildError) -> Error {
    Error::invalid("train", format!("thread pool: {e}"))
}

/// Sets the process's pool of worker threads, which every operation splits its work over.
pub fn set_global_threads(threads: usize) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
    pool.build_global().map_err(pool_error)
}

/// A pool of `threads` worker threads for a replica on a thread (`--replicas`), of which that
/// thread is one: its operations run there and on the pool's other threads while the returned
/// pool lives.
pub fn replica_threads(threads: usize) -> Result<rayon::ThreadPool> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
    pool.use_current_thread().build().map_err(pool_error)
}

/// A resumed run must have as many ranks as the run it continues: the position in the epoch
/// counts batches of each rank's shard, and the global batch is ranks x `--batch-size`.
pub fn check_ranks(ckpt: &Checkpoint, ranks: usize) -> Result<()> {
    let saved = match ckpt.metadata.get(RANKS_KEY) {
        None => 1,
        Some(v) => v.parse::<usize>().map_err(|e| {
            Error::invalid(
                "train",
                format!("checkpoint metadata {RANKS_KEY} = {v:?}: {e}"),
            )
        })?,
    };
    if saved != ranks {
        return Err(Error::invalid(
            "train",
            format!(
                "the checkpoint was trained by {saved} rank{}, this run has {ranks}: resume \
                 it with {}",
                if saved == 1 { "" } else { "s" },
                if saved == 1 {
                    "one rank: --replicas 1, without --distributed (or under mpirun -np 1)"
                        .to_string()
                } else {
                    format!("--replicas {saved}, or mpirun -np {saved} ... --distributed")
                }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_needs_the_ranks_that_trained_the_checkpoint() {
        let mut ckpt = Checkpoint::default();
        // No key: a single-process checkpoint from before distributed training.
        check_ranks(&ckpt, 1).unwrap();
        let e = check_ranks(&ckpt, 2).unwrap_err().to_string();
        assert!(
            e.contains("by 1 rank,") && e.contains("--replicas 1, without --distributed"),
            "{e}"
        );
        ckpt.metadata.insert(RANKS_KEY.into(), "4".into());
        check_ranks(&ckpt, 4).unwrap();
        let e = check_ranks(&ckpt, 2).unwrap_err().to_string();
        assert!(
            e.contains("by 4 ranks") && e.contains("--replicas 4, or mpirun -np 4"),
            "{e}"
        );
        ckpt.metadata.insert(RANKS_KEY.into(), "many".into());
        assert!(check_ranks(&ckpt, 4).is_err());
    }

    #[test]
    fn no_world_without_distributed() {
        assert!(world(false).unwrap().is_none());
        assert!(default_threads(None) >= 1);
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn distributed_without_the_mpi_feature_says_how_to_build_it() {
        let e = world(true).err().unwrap().to_string();
        assert!(e.contains("--features mpi") && e.contains("mpirun"), "{e}");
    }
}
