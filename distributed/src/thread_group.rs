//! `ThreadGroup`: ranks that are threads of one process, exchanging buffers through shared
//! memory. Data parallelism on one machine without MPI, as PyTorch's `DataParallel` runs its
//! replicas on threads; the code that trains over MPI runs unchanged on it.
//!
//! Why threads at all, when one process can already spread every operation over the cores:
//! a small network's operations are too short to split well (each one forks and joins the
//! cores), where replicas on one core each, meeting once a step, keep every core busy.
//!
//! Each collective is a rendezvous: every rank deposits its buffer; the last to arrive combines
//! them in rank order (the same bits on every run, and for sums and means the same arithmetic
//! as `MpiWorld`), and every rank copies the result out before the next collective may start.
//! A rank that is dropped (its thread ended, or unwound from a panic) or aborts breaks the
//! group: ranks waiting in a collective then get an error instead of waiting forever.

use crate::communicator::{check_root, Communicator, Reduce};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tapegrad_autograd::{Error, Result};

/// One rank's handle to a group of threads; see the module documentation. Made by
/// [`ThreadGroup::new`], one per rank, each to be moved into its rank's thread.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// What a collective does; every rank must call the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Collective {
    AllReduce(Reduce),
    Broadcast(usize),
    Barrier,
}

/// A deposited buffer.
#[derive(Clone)]
enum Buf {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

type Outcome = std::result::Result<Arc<Buf>, String>;

#[derive(Default)]
struct State {
    /// Each rank's call and buffer in the collective under way.
    deposits: Vec<Option<(Collective, Buf)>>,
    /// The collective's outcome once every rank has deposited, until every rank has read it.
    outcome: Option<Outcome>,
    unread: usize,
    /// Why no collective can complete any more: a rank left or aborted.
    broken: Option<String>,
}

impl ThreadGroup {
    /// A group of `size` ranks: the handles of ranks `0..size`, in order.
    pub fn new(size: usize) -> Result<Vec<ThreadGroup>> {
        if size == 0 {
            return Err(Error::invalid(
                "ThreadGroup::new",
                "a group needs at least one rank",
            ));
        }
        let state = State {
            deposits: vec![None; size],
            ..State::default()
        };
        let shared = Arc::new(Shared {
            size,
            state: Mutex::new(state),
            changed: Condvar::new(),
        });
        Ok((0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code holding the lock panics but by running out of memory; a poisoned state is
        // still consistent.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.shared
            .changed
            .wait(s)
            .unwrap_or_else(|e| e.into_inner())
    }

    fn broken(&self, op: &'static str, why: &str) -> Error {
        Error::invalid(op, format!("rank {}: {why}", self.rank))
    }

    /// Deposits `buf` for `call` and returns the combined outcome once every rank has.
    fn exchange(&self, op: &'static str, call: Collective, buf: Buf) -> Result<Arc<Buf>> {
        let size = self.shared.size;
        let mut s = self.lock();
        // The previous collective's outcome must be read by every rank first.
        while s.outcome.is_some() {
            if let Some(why) = &s.broken {
                return Err(self.broken(op, why));
            }
            s = self.wait(s);
        }
        if let Some(why) = &s.broken {
            return Err(self.broken(op, why));
        }
        s.deposits[self.rank] = Some((call, buf));
        if s.deposits.iter().all(Option::is_some) {
            let deposits: Vec<_> = s.deposits.iter_mut().map(|d| d.take()).collect();
            let deposits: Vec<_> = deposits.into_iter().flatten().collect();
            s.outcome = Some(combine(&deposits).map(Arc::new));
            s.unread = size;
            self.shared.changed.notify_all();
        }
        // An outcome now is this collective's: the next cannot start before this rank reads it.
        let outcome = loop {
            if let Some(o) = &s.outcome {
                break o.clone();
            }
            if let Some(why) = &s.broken {
                let why = why.clone();
                s.deposits[self.rank] = None;
                return Err(self.broken(op, &why));
            }
            s = self.wait(s);
        };
        s.unread -= 1;
        if s.unread == 0 {
            s.outcome = None;
            self.shared.changed.notify_all();
        }
        outcome.map_err(|why| Error::invalid(op, why))
    }

    /// Deposits a copy of `buf` for `call` and writes the outcome back into it.
    fn collective<T: Element>(
        &self,
        op: &'static str,
        call: Collective,
        buf: &mut [T],
    ) -> Result<()> {
        let out = self.exchange(op, call, T::deposit(buf.to_vec()))?;
        if let Some(v) = T::values(&out) {
            buf.copy_from_slice(v);
        }
        Ok(())
    }

    fn break_group(&self, why: String) {
        let mut s = self.lock();
        if s.broken.is_none() {
            s.broken = Some(why);
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for ThreadGroup {
    fn drop(&mut self) {
        let why = format!("rank {} left the group", self.rank);
        self.break_group(why);
    }
}

/// The element types exchanged: how a buffer of them is deposited and read back, and the
/// element-wise arithmetic of the reductions (in f32 for f32 buffers, as MPI does).
trait Element: Copy + PartialOrd + std::ops::Add<Output = Self> {
    fn deposit(values: Vec<Self>) -> Buf;
    fn values(buf: &Buf) -> Option<&[Self]>;
    fn divide(self, n: usize) -> Self;
    fn is_nan(self) -> bool;
}

impl Element for f32 {
    fn deposit(values: Vec<f32>) -> Buf {
        Buf::F32(values)
    }
    fn values(buf: &Buf) -> Option<&[f32]> {
        match buf {
            Buf::F32(v) => Some(v),
            Buf::F64(_) => None,
        }
    }
    fn divide(self, n: usize) -> f32 {
        self / n as f32
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Element for f64 {
    fn deposit(values: Vec<f64>) -> Buf {
        Buf::F64(values)
    }
    fn values(buf: &Buf) -> Option<&[f64]> {
        match buf {
            Buf::F64(v) => Some(v),
            Buf::F32(_) => None,
        }
    }
    fn divide(self, n: usize) -> f64 {
        self / n as f64
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// The reduction of `bufs` (all of one length), adding in rank order.
fn reduce<T: Element>(bufs: &[&[T]], op: Reduce) -> Vec<T> {
    let mut out = bufs[0].to_vec();
    for b in &bufs[1..] {
        for (o, &v) in out.iter_mut().zip(b.iter()) {
            *o = match op {
                Reduce::Sum | Reduce::Mean => *o + v,
                // NaN wins, as in MPI's MAX on most libraries: a NaN anywhere shows.
                Reduce::Max if v > *o || v.is_nan() => v,
                Reduce::Max => *o,
            };
        }
    }
    if op == Reduce::Mean {
        out.iter_mut().for_each(|o| *o = o.divide(bufs.len()));
    }
    out
}

/// The outcome of a collective from every rank's call and buffer, in rank order; a message
/// when the ranks did not make the same call.
fn combine(deposits: &[(Collective, Buf)]) -> std::result::Result<Buf, String> {
    let (call, first) = &deposits[0];
    let len = |b: &Buf| match b {
        Buf::F32(v) => (v.len(), "f32"),
        Buf::F64(v) => (v.len(), "f64"),
    };
    if let Some((r, (c, b))) = deposits
        .iter()
        .enumerate()
        .find(|(_, (c, b))| c != call || len(b) != len(first))
    {
        return Err(format!(
            "the ranks called different collectives: rank 0 {call:?} of {:?}, rank {r} {c:?} of {:?}",
            len(first),
            len(b)
        ));
    }
    Ok(match call {
        Collective::Barrier => first.clone(),
        Collective::Broadcast(root) => deposits[*root].1.clone(),
        Collective::AllReduce(op) => match first {
            Buf::F32(_) => reduce_all::<f32>(deposits, *op),
            Buf::F64(_) => reduce_all::<f64>(deposits, *op),
        },
    })
}

/// The reduction of every rank's buffer of `T`s (the calls were checked to agree).
fn reduce_all<T: Element>(deposits: &[(Collective, Buf)], op: Reduce) -> Buf {
    let bufs: Vec<&[T]> = deposits.iter().filter_map(|(_, b)| T::values(b)).collect();
    T::deposit(reduce(&bufs, op))
}

impl Communicator for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    /// Every rank shares this machine's cores.
    fn local_size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce(&self, buf: &mut [f32], op: Reduce) -> Result<()> {
        self.collective("ThreadGroup::all_reduce", Collective::AllReduce(op), buf)
    }

    fn all_reduce_f64(&self, buf: &mut [f64], op: Reduce) -> Result<()> {
        self.collective(
            "ThreadGroup::all_reduce_f64",
            Collective::AllReduce(op),
            buf,
        )
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        check_root("ThreadGroup::broadcast", root, self.size())?;
        self.collective("ThreadGroup::broadcast", Collective::Broadcast(root), buf)
    }

    fn broadcast_f64(&self, buf: &mut [f64], root: usize) -> Result<()> {
        check_root("ThreadGroup::broadcast_f64", root, self.size())?;
        self.collective(
            "ThreadGroup::broadcast_f64",
            Collective::Broadcast(root),
            buf,
        )
    }

    fn barrier(&self) -> Result<()> {
        let call = Collective::Barrier;
        self.collective::<f32>("ThreadGroup::barrier", call, &mut [])
    }

    /// Breaks the group (ranks waiting in a collective get an error), then ends the process,
    /// which holds every rank.
    fn abort(&self, code: i32) -> ! {
        self.break_group(format!("rank {} aborted", self.rank));
        std::process::exit(if code == 0 { 1 } else { code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Runs `work` on every rank of a group of `size`, each on its own thread; the results by
    /// rank.
    fn on_threads<R: Send>(size: usize, work: impl Fn(ThreadGroup) -> R + Sync) -> Vec<R> {
        let ranks = ThreadGroup::new(size).unwrap();
        std::thread::scope(|s| {
            let work = &work;
            let handles: Vec<_> = ranks
                .into_iter()
                .map(|r| s.spawn(move || work(r)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn reductions_combine_every_rank_in_rank_order() {
        let out = on_threads(3, |g| {
            let r = g.rank() as f32;
            let mut sum = vec![r, 1.0, -r];
            g.all_reduce(&mut sum, Reduce::Sum).unwrap();
            let mut mean = vec![r, 0.1];
            g.all_reduce(&mut mean, Reduce::Mean).unwrap();
            let mut max = vec![r, -r, if g.rank() == 1 { f32::NAN } else { 0.0 }];
            g.all_reduce(&mut max, Reduce::Max).unwrap();
            let mut wide = vec![1e300 * r as f64, 0.5];
            g.all_reduce_f64(&mut wide, Reduce::Sum).unwrap();
            (sum, mean, max, wide, (g.size(), g.local_size()))
        });
        for (sum, mean, max, wide, sizes) in out {
            assert_eq!(sum, [3.0, 3.0, -3.0]);
            // Added in rank order in f32, then divided, as MpiWorld does.
            assert_eq!(mean, [1.0, (0.1f32 + 0.1 + 0.1) / 3.0]);
            assert_eq!(max[..2], [2.0, 0.0]);
            assert!(max[2].is_nan(), "a NaN on one rank shows in the max");
            assert_eq!(wide, [3e300, 1.5]);
            assert_eq!(sizes, (3, 3));
        }
    }

    #[test]
    fn broadcasts_bring_the_roots_buffer() {
        let out = on_threads(2, |g| {
            let mut a = vec![g.rank() as f32; 3];
            g.broadcast(&mut a, 1).unwrap();
            let mut b = vec![10.0 + g.rank() as f64];
            g.broadcast_f64(&mut b, 0).unwrap();
            g.barrier().unwrap();
            let e = g.broadcast(&mut a, 2).unwrap_err().to_string();
            (a, b, e)
        });
        for (a, b, e) in out {
            assert_eq!((a, b), (vec![1.0; 3], vec![10.0]));
            assert!(e.contains("root rank 2") && e.contains("2 ranks"), "{e}");
        }
    }

    #[test]
    fn many_collectives_in_a_row_do_not_mix() {
        // Ranks race through the collectives: each round's result must be its own.
        let out = on_threads(4, |g| {
            (0..500)
                .map(|i| {
                    let mut b = [(i * 10 + g.rank()) as f64];
                    g.all_reduce_f64(&mut b, Reduce::Sum).unwrap();
                    b[0]
                })
                .collect::<Vec<_>>()
        });
        let want: Vec<f64> = (0..500).map(|i| (40 * i + 6) as f64).collect();
        assert!(out.iter().all(|o| *o == want));
    }

    #[test]
    fn different_calls_on_different_ranks_are_an_error_on_every_rank() {
        let out = on_threads(2, |g| {
            let mut b = vec![0.0f32; 2 + g.rank()];
            g.all_reduce(&mut b, Reduce::Sum).unwrap_err().to_string()
        });
        for e in out {
            assert!(
                e.contains("different collectives") && e.contains("rank 1"),
                "{e}"
            );
        }
        let out = on_threads(2, |g| {
            let mut b = vec![0.0f32; 2];
            match g.rank() {
                0 => g.all_reduce(&mut b, Reduce::Max),
                _ => g.broadcast(&mut b, 0),
            }
            .unwrap_err()
            .to_string()
        });
        assert!(out.iter().all(|e| e.contains("Broadcast(0)")), "{out:?}");
    }

    #[test]
    fn a_rank_that_leaves_ends_the_others_waits_with_an_error() {
        let started = Instant::now();
        let out = on_threads(3, |g| {
            if g.rank() == 2 {
                // Gone after one collective: its handle is dropped, as when its thread ends
                // or unwinds.
                g.barrier().unwrap();
                std::thread::sleep(Duration::from_millis(50));
                return String::new();
            }
            g.barrier().unwrap();
            let mut b = [1.0f32];
            g.all_reduce(&mut b, Reduce::Sum).unwrap_err().to_string()
        });
        assert!(out[0].contains("rank 2 left the group"), "{out:?}");
        assert!(out[1].contains("rank 2 left the group"), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(ThreadGroup::new(0).is_err());
    }

    #[test]
    fn one_rank_alone_keeps_its_values() {
        let g = ThreadGroup::new(1).unwrap().pop().unwrap();
        let mut b = [1.5f32, -2.0];
        g.all_reduce(&mut b, Reduce::Mean).unwrap();
        g.barrier().unwrap();
        assert_eq!(b, [1.5, -2.0]);
    }
}
