//! `Communicator`: what data parallelism needs from a message-passing library, and the
//! single-process implementation that needs none.
//!
//! Every collective must be called by every rank, in the same order, with buffers of the same
//! length; a rank that skips one leaves the others waiting. Buffers are reduced in place.

use std::sync::mpsc::Receiver;
use tapegrad_autograd::{Error, Result};

/// How an all-reduce combines the ranks' buffers, element by element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    /// The sum divided by the number of ranks.
    Mean,
    Max,
}

/// A group of processes (ranks `0..size`) that exchange buffers.
pub trait Communicator {
    /// This process's rank, in `0..size()`.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn size(&self) -> usize;

    /// Ranks running on this machine (threads per rank default to cores / this).
    fn local_size(&self) -> usize {
        1
    }

    /// Combines `buf` element-wise across ranks; every rank ends with the result.
    fn all_reduce(&self, buf: &mut [f32], op: Reduce) -> Result<()>;

    /// Starts an all-reduce of `buf` that may go on while the caller works (gradients of
    /// later layers are averaged while backward computes earlier ones); [`PendingReduce::wait`]
    /// gives the result. All-reduces started this way complete in the order they were started,
    /// and every rank must start them in the same order. The default reduces at once, before
    /// returning (no overlap).
    fn start_all_reduce(&self, mut buf: Vec<f32>, op: Reduce) -> PendingReduce {
        let result = self.all_reduce(&mut buf, op).map(|()| buf);
        PendingReduce::done(result)
    }

    /// [`Communicator::all_reduce`] in f64: counts and sums of metrics, exact to 2^53.
    fn all_reduce_f64(&self, buf: &mut [f64], op: Reduce) -> Result<()>;

    /// Replaces `buf` on every rank with `root`'s.
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;

    /// [`Communicator::broadcast`] in f64.
    fn broadcast_f64(&self, buf: &mut [f64], root: usize) -> Result<()>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Ends every rank's process with `code` (non-zero): the way out for a rank that failed,
    /// so that the others, which may be waiting in a collective for it, do not hang. Only a
    /// program's `main` should call it, after printing why.
    fn abort(&self, code: i32) -> !;
}

/// An all-reduce started by [`Communicator::start_all_reduce`].
pub struct PendingReduce(Pending);

enum Pending {
    Done(Result<Vec<f32>>),
    Waiting(Receiver<Vec<f32>>),
}

impl PendingReduce {
    /// One that has finished, with this result.
    pub fn done(result: Result<Vec<f32>>) -> PendingReduce {
        PendingReduce(Pending::Done(result))
    }

    /// One whose result will come through `rx`.
    pub fn waiting(rx: Receiver<Vec<f32>>) -> PendingReduce {
        PendingReduce(Pending::Waiting(rx))
    }

    /// The reduced buffer, once the all-reduce has finished.
    pub fn wait(self) -> Result<Vec<f32>> {
        match self.0 {
            Pending::Done(r) => r,
            Pending::Waiting(rx) => rx.recv().map_err(|_| {
                Error::invalid(
                    "PendingReduce::wait",
                    "the communication thread stopped before the all-reduce finished",
                )
            }),
        }
    }
}

/// Checks that `root` is a rank of `comm`.
pub fn check_root(op: &'static str, root: usize, size: usize) -> Result<()> {
    if root < size {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("root rank {root} is not among the {size} ranks"),
        ))
    }
}

/// One process alone: rank 0 of 1. Reductions and broadcasts leave the buffers as they are
/// (the mean of one value is itself), so code written for many ranks runs unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce(&self, _buf: &mut [f32], _op: Reduce) -> Result<()> {
        Ok(())
    }

    fn all_reduce_f64(&self, _buf: &mut [f64], _op: Reduce) -> Result<()> {
        Ok(())
    }

    fn broadcast(&self, _buf: &mut [f32], root: usize) -> Result<()> {
        check_root("SingleProcess::broadcast", root, 1)
    }

    fn broadcast_f64(&self, _buf: &mut [f64], root: usize) -> Result<()> {
        check_root("SingleProcess::broadcast_f64", root, 1)
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(if code == 0 { 1 } else { code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_is_rank_zero_of_one() {
        let c = SingleProcess;
        assert_eq!((c.rank(), c.size(), c.local_size()), (0, 1, 1));
    }

    #[test]
    fn reductions_of_one_rank_keep_the_values() {
        // Sum, mean and max over a single rank are the rank's own values.
        let c = SingleProcess;
        for op in [Reduce::Sum, Reduce::Mean, Reduce::Max] {
            let mut b = [1.5f32, -2.0, 0.0];
            c.all_reduce(&mut b, op).unwrap();
            assert_eq!(b, [1.5, -2.0, 0.0]);
            let mut d = [3.0f64, 1e300];
            c.all_reduce_f64(&mut d, op).unwrap();
            assert_eq!(d, [3.0, 1e300]);
        }
        c.barrier().unwrap();
    }

    #[test]
    fn a_started_all_reduce_of_one_rank_gives_the_buffer_back() {
        let p = SingleProcess.start_all_reduce(vec![1.0, 2.0], Reduce::Mean);
        assert_eq!(p.wait().unwrap(), vec![1.0, 2.0]);
        // A result that never comes (its sender gone) is an error, not a hang.
        let (tx, rx) = std::sync::mpsc::channel();
        drop(tx);
        assert!(PendingReduce::waiting(rx).wait().is_err());
    }

    #[test]
    fn broadcast_from_a_rank_that_does_not_exist_fails() {
        let c = SingleProcess;
        let mut b = [1.0f32];
        c.broadcast(&mut b, 0).unwrap();
        assert_eq!(b, [1.0]);
        let e = c.broadcast(&mut b, 1).unwrap_err().to_string();
        assert!(e.contains("root rank 1") && e.contains("1 ranks"), "{e}");
        assert!(c.broadcast_f64(&mut [0.0], 3).is_err());
    }
}
