//! The MPI communicator (feature `mpi`): the world of the processes that `mpirun` started.
//!
//! MPI's default error handler ends the job on any communication failure, so the collectives
//! here either succeed or never return; the `Result`s report what is checked before calling
//! MPI (a root outside the world).
//!
//! All-reduces started with [`Communicator::start_all_reduce`] run on a communication thread,
//! one per process, over a duplicate of the world (so that its collectives never interleave
//! with the main thread's on the world), one after the other in the order they were started.
//! That needs MPI's `MPI_THREAD_MULTIPLE`; a library that does not provide it gets no thread,
//! and started all-reduces run at once on the caller's thread.

use crate::communicator::{check_root, Communicator, PendingReduce, Reduce};
use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;
use tapegrad_autograd::{Error, Result};

/// A buffer to all-reduce on the communication thread, and where to send the result.
type Job = (Vec<f32>, Reduce, Sender<Vec<f32>>);

/// The communication thread: it owns a duplicate of the world, made while the main thread
/// waits (a collective on the world, so no other may run at the same time).
fn start_comm_thread() -> (Sender<Job>, JoinHandle<()>) {
    let (jobs, rx) = channel::<Job>();
    let (ready_tx, ready_rx) = channel();
    let handle = std::thread::spawn(move || {
        let comm = SimpleCommunicator::world().duplicate();
        let _ = ready_tx.send(());
        let mut send = Vec::new();
        for (mut buf, op, reply) in rx {
            reduce_f32(&comm, &mut send, &mut buf, op);
            let _ = reply.send(buf);
        }
    });
    let _ = ready_rx.recv();
    (jobs, handle)
}

/// All-reduces `buf` in place over `comm`, through the scratch buffer `send`.
fn reduce_f32(comm: &SimpleCommunicator, send: &mut Vec<f32>, buf: &mut [f32], op: Reduce) {
    if comm.size() == 1 {
        return;
    }
    // rsmpi has no in-place all-reduce without `unsafe`: reduce from a copy of each piece.
    for piece in buf.chunks_mut(CHUNK) {
        send.clear();
        send.extend_from_slice(piece);
        comm.all_reduce_into(&send[..], piece, MpiWorld::op(op));
    }
    if op == Reduce::Mean {
        let n = comm.size() as f32;
        buf.iter_mut().for_each(|v| *v /= n);
    }
}

/// Elements per MPI call: counts are C ints, so longer buffers go in pieces.
const CHUNK: usize = 1 << 28;

/// `MPI_COMM_WORLD`, initialised on creation and finalised when dropped.
pub struct MpiWorld {
    world: SimpleCommunicator,
    local_size: usize,
    /// The communication thread, when MPI allows threads to communicate concurrently.
    comm_thread: Option<(Sender<Job>, JoinHandle<()>)>,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl Drop for MpiWorld {
    fn drop(&mut self) {
        // The thread ends when its queue closes; it must be gone before MPI is finalised.
        if let Some((jobs, handle)) = self.comm_thread.take() {
            drop(jobs);
            let _ = handle.join();
        }
    }
}

impl MpiWorld {
    /// Initialises MPI. Fails if it was initialised before (there is one world per process).
    /// Run alone (not under `mpirun`), the process is a world of one.
    pub fn init() -> Result<MpiWorld> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
            .ok_or_else(|| {
                Error::invalid(
                    "MpiWorld::init",
                    "MPI was already initialised in this process",
                )
            })?;
        let world = universe.world();
        let local_size = world.split_shared(world.rank()).size() as usize;
        let comm_thread = (threading == Threading::Multiple).then(start_comm_thread);
        Ok(MpiWorld {
            world,
            local_size,
            comm_thread,
            _universe: universe,
        })
    }

    /// Whether started all-reduces run on a communication thread (MPI_THREAD_MULTIPLE).
    pub fn overlaps(&self) -> bool {
        self.comm_thread.is_some()
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
        reduce_f32(&self.world, &mut Vec::new(), buf, op);
        Ok(())
    }

    fn start_all_reduce(&self, mut buf: Vec<f32>, op: Reduce) -> PendingReduce {
        let Some((jobs, _)) = &self.comm_thread else {
            reduce_f32(&self.world, &mut Vec::new(), &mut buf, op);
            return PendingReduce::done(Ok(buf));
        };
        let (reply, rx) = channel();
        if jobs.send((buf, op, reply)).is_err() {
            return PendingReduce::done(Err(Error::invalid(
                "MpiWorld::start_all_reduce",
                "the communication thread has stopped",
            )));
        }
        PendingReduce::waiting(rx)
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
