//! The MPI communicator (feature `mpi`): the world of the processes that `mpirun` started.
//!
//! MPI's default error handler ends the job on any communication failure, so the collectives
//! here either succeed or never return; the `Result`s report what is checked before calling
//! MPI (a root outside the world).

use crate::communicator::{check_root, Communicator, Reduce};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};
use tapegrad_autograd::{Error, Result};

/// Elements per MPI call: counts are C ints, so longer buffers go in pieces.
const CHUNK: usize = 1 << 28;

/// `MPI_COMM_WORLD`, initialised on creation and finalised when dropped.
pub struct MpiWorld {
    world: SimpleCommunicator,
    local_size: usize,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl MpiWorld {
    /// Initialises MPI. Fails if it was initialised before (there is one world per process).
    /// Run alone (not under `mpirun`), the process is a world of one.
    pub fn init() -> Result<MpiWorld> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::invalid(
                "MpiWorld::init",
                "MPI was already initialised in this process",
            )
        })?;
        let world = universe.world();
        let local_size = world.split_shared(world.rank()).size() as usize;
        Ok(MpiWorld {
            world,
            local_size,
            _universe: universe,
        })
    }

    fn op(op: Reduce) -> SystemOperation {
        match op {
            Reduce::Sum | Reduce::Mean => SystemOperation::sum(),
            Reduce::Max => SystemOperation::max(),
        }
    }
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn local_size(&self) -> usize {
        self.local_size
    }

    fn all_reduce(&self, buf: &mut [f32], op: Reduce) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        // rsmpi has no in-place all-reduce without `unsafe`: reduce from a copy of each piece.
        let mut send = Vec::with_capacity(buf.len().min(CHUNK));
        for piece in buf.chunks_mut(CHUNK) {
            send.clear();
            send.extend_from_slice(piece);
            self.world
                .all_reduce_into(&send[..], piece, MpiWorld::op(op));
        }
        if op == Reduce::Mean {
            let n = self.size() as f32;
            buf.iter_mut().for_each(|v| *v /= n);
        }
        Ok(())
    }

    fn all_reduce_f64(&self, buf: &mut [f64], op: Reduce) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let mut send = Vec::with_capacity(buf.len().min(CHUNK));
        for piece in buf.chunks_mut(CHUNK) {
            send.clear();
            send.extend_from_slice(piece);
            self.world
                .all_reduce_into(&send[..], piece, MpiWorld::op(op));
        }
        if op == Reduce::Mean {
            let n = self.size() as f64;
            buf.iter_mut().for_each(|v| *v /= n);
        }
        Ok(())
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root("MpiWorld::broadcast", root, self.size())?;
        let process = self.world.process_at_rank(root as i32);
        for piece in buf.chunks_mut(CHUNK) {
            process.broadcast_into(piece);
        }
        Ok(())
    }

    fn broadcast_f64(&self, buf: &mut [f64], root: usize) -> Result<()> {
        check_root("MpiWorld::broadcast_f64", root, self.size())?;
        let process = self.world.process_at_rank(root as i32);
        for piece in buf.chunks_mut(CHUNK) {
            process.broadcast_into(piece);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(if code == 0 { 1 } else { code })
    }
}
