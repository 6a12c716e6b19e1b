//! tapegrad-distributed: data-parallel training across processes, as PyTorch's
//! `DistributedDataParallel`.
//!
//! Each process (rank) holds a replica of the model and trains on its own shard of every
//! batch; [`DataParallel`] keeps the replicas identical by broadcasting rank 0's state and
//! averaging gradients, bucket by bucket, while backward is still running. The processes talk
//! through a [`Communicator`]: `MpiWorld` (feature `mpi`, launched with `mpirun`),
//! [`ThreadGroup`] (ranks on threads of one process) or [`SingleProcess`], which needs nothing
//! and makes the same code run alone.
//!
//! ```
//! use std::rc::Rc;
//! use tapegrad_autograd::{rng, Tape, Tensor};
//! use tapegrad_distributed::{DataParallel, SingleProcess};
//! use tapegrad_nn::{layers::Linear, optim::GradMap, Module};
//!
//! let mut model = Linear::new(3, 2, &mut rng(0)).unwrap();
//! let mut ddp = DataParallel::new(Rc::new(SingleProcess));
//! ddp.broadcast_model(&mut model).unwrap();
//! let mut grads = {
//!     let tape = Tape::new();
//!     let y = model.forward(tape.input(Tensor::ones([4, 3]))).unwrap();
//!     GradMap::from_grads(&model, &y.sum(&[], false).unwrap().backward().unwrap())
//! };
//! ddp.average_gradients(&mut model, &mut grads).unwrap();
//! assert_eq!(grads.len(), 2);
//! ```

mod buckets;
mod communicator;
mod data_parallel;
#[cfg(feature = "mpi")]
mod mpi_world;
mod thread_group;

pub use communicator::{Communicator, PendingReduce, Reduce, SingleProcess};
pub use data_parallel::{DataParallel, SyncStats, DEFAULT_BUCKET_BYTES};
#[cfg(feature = "mpi")]
pub use mpi_world::MpiWorld;
pub use thread_group::ThreadGroup;
