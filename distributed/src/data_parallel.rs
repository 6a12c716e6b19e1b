//! `DataParallel`: one model replica per rank kept identical, as PyTorch's
//! `DistributedDataParallel` does it.
//!
//! - At start, every parameter, buffer and counter is broadcast from rank 0
//!   ([`DataParallel::broadcast_model`]), so ranks seeded differently still start equal.
//! - Before each step, buffers (batch norm's running statistics) and counters are broadcast
//!   from rank 0 ([`DataParallel::sync_buffers`]), DDP's default: the statistics are rank 0's.
//! - After backward, gradients are averaged across ranks ([`DataParallel::average_gradients`])
//!   in buckets of about [`DEFAULT_BUCKET_BYTES`], filled in reverse registration order (the
//!   order in which backward finishes the parameters). Every rank then holds the gradient of
//!   the mean loss over the global batch, and the same optimiser applied to the same
//!   parameters and gradients makes the same step everywhere.
//!
//! With [`DataParallel::attach`] called on the step's tape before backward, a bucket's
//! all-reduce starts as soon as backward has produced all its gradients, and runs (on MPI's
//! communication thread) while backward goes on with earlier layers, as DDP's overlap does.
//! A parameter that got no gradient on a rank contributes zeros, so after averaging every
//! trainable parameter has a gradient.

use crate::buckets::Buckets;
use crate::communicator::{Communicator, Reduce};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;
use tapegrad_autograd::{Error, Result, Tape};
use tapegrad_nn::optim::GradMap;
use tapegrad_nn::{Entry, EntryRef, Module};

/// PyTorch DDP's default bucket size, 25 MiB of gradients.
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Time and volume of the synchronisation so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncStats {
    /// Gradient averagings done.
    pub steps: u64,
    /// Buckets all-reduced.
    pub buckets: u64,
    /// Gradient bytes all-reduced (per rank).
    pub bytes: u64,
    /// Buckets whose all-reduce started while backward was still running.
    pub started_during_backward: u64,
    /// Seconds spent in [`DataParallel::average_gradients`]: packing what backward did not
    /// hand over, and waiting for the all-reduces (with overlap, the part backward did not
    /// hide).
    pub all_reduce_seconds: f64,
    /// Seconds in broadcasts of parameters and buffers.
    pub broadcast_seconds: f64,
}

impl SyncStats {
    /// Mean all-reduce seconds per step.
    pub fn all_reduce_per_step(&self) -> f64 {
        self.all_reduce_seconds / self.steps.max(1) as f64
    }
}

/// Synchronises a model's replicas over a [`Communicator`]; see the module documentation.
pub struct DataParallel {
    comm: Rc<dyn Communicator>,
    bucket_bytes: usize,
    overlap: bool,
    stats: SyncStats,
    /// The buckets of the step under way, after [`DataParallel::attach`].
    filling: Option<Rc<RefCell<Buckets>>>,
}

/// What a rank's model holds: compared across ranks before anything is exchanged, since
/// collectives over buffers of different lengths would fail or hang.
fn census(model: &dyn Module) -> [f64; 5] {
    let mut c = [0.0; 5];
    model.visit("", &mut |_, e| match e {
        EntryRef::Param(p) => {
            c[0] += 1.0;
            c[1] += p.value().numel() as f64;
        }
        EntryRef::Buffer(b) => {
            c[2] += 1.0;
            c[3] += b.numel() as f64;
        }
        EntryRef::Counter(_) => c[4] += 1.0,
        EntryRef::Rng(_) => {}
    });
    c
}

/// Fails unless every gradient in `grads` of a trainable parameter of `model` has its shape.
fn check_shapes(model: &dyn Module, grads: &GradMap) -> Result<()> {
    let mut bad = None;
    model.visit("", &mut |name, e| {
        if let (EntryRef::Param(p), None) = (e, &bad) {
            if let Some(g) = grads.get(name) {
                if p.requires_grad() && g.dims() != p.value().dims() {
                    bad = Some(Error::shape(
                        "DataParallel::average_gradients",
                        &[p.value().shape(), g.shape()],
                        format!("the gradient of {name} to have its parameter's shape"),
                    ));
                }
            }
        }
    });
    bad.map_or(Ok(()), Err)
}

impl DataParallel {
    /// Synchronises over `comm` (shared: the program keeps it too, to abort on an error).
    pub fn new(comm: Rc<dyn Communicator>) -> DataParallel {
        DataParallel {
            comm,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
            overlap: true,
            stats: SyncStats::default(),
            filling: None,
        }
    }

    /// Whether [`DataParallel::attach`] overlaps the all-reduces with backward (the default).
    pub fn with_overlap(mut self, on: bool) -> DataParallel {
        self.overlap = on;
        self
    }

    /// Gradients per all-reduce, in bytes (at least one parameter goes in each bucket).
    pub fn with_bucket_bytes(mut self, bytes: usize) -> Result<DataParallel> {
        if bytes == 0 {
            return Err(Error::invalid(
                "DataParallel::with_bucket_bytes",
                "the bucket size must be positive",
            ));
        }
        self.bucket_bytes = bytes;
        Ok(self)
    }

    pub fn comm(&self) -> &dyn Communicator {
        self.comm.as_ref()
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn size(&self) -> usize {
        self.comm.size()
    }

    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Fails, on every rank alike, unless every rank's model has the same number and sizes
    /// of parameters, buffers and counters.
    fn check_same_model(&self, model: &mut dyn Module) -> Result<()> {
        let mine = census(model);
        let mut max = mine;
        let mut neg_min = mine.map(|v| -v);
        self.comm.all_reduce_f64(&mut max, Reduce::Max)?;
        self.comm.all_reduce_f64(&mut neg_min, Reduce::Max)?;
        let min = neg_min.map(|v| -v);
        if max != min {
            return Err(Error::invalid(
                "DataParallel",
                format!(
                    "the ranks hold different models: [parameters, their elements, buffers, \
                     their elements, counters] range from {min:?} to {max:?} (this rank, {}: \
                     {mine:?})",
                    self.rank()
                ),
            ));
        }
        Ok(())
    }

    /// Copies rank 0's parameters, buffers and counters to every rank (after checking that
    /// the models have the same structure).
    pub fn broadcast_model(&mut self, model: &mut dyn Module) -> Result<()> {
        self.check_same_model(model)?;
        self.broadcast_entries(model, true)
    }

    /// Copies rank 0's buffers and counters (batch norm's running statistics) to every rank.
    pub fn sync_buffers(&mut self, model: &mut dyn Module) -> Result<()> {
        self.broadcast_entries(model, false)
    }

    fn broadcast_entries(&mut self, model: &mut dyn Module, params: bool) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let started = Instant::now();
        let mut flat = Vec::new();
        let mut counters = Vec::new();
        model.visit_mut("", &mut |_, e| match e {
            Entry::Param(p) if params => flat.extend_from_slice(p.value().data()),
            Entry::Buffer(b) => flat.extend_from_slice(b.data()),
            Entry::Counter(c) => counters.push(*c as f64),
            _ => {}
        });
        if flat.is_empty() && counters.is_empty() {
            return Ok(());
        }
        self.comm.broadcast(&mut flat, 0)?;
        self.comm.broadcast_f64(&mut counters, 0)?;
        let (mut at, mut next_counter) = (0, 0);
        model.visit_mut("", &mut |_, e| match e {
            Entry::Param(p) if params => {
                let n = p.value().numel();
                p.data_mut().copy_from_slice(&flat[at..at + n]);
                at += n;
            }
            Entry::Buffer(b) => {
                let n = b.numel();
                b.data_mut().copy_from_slice(&flat[at..at + n]);
                at += n;
            }
            Entry::Counter(c) => {
                *c = counters[next_counter] as u64;
                next_counter += 1;
            }
            _ => {}
        });
        self.stats.broadcast_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Prepares this step's averaging on `tape`, before backward runs on it: backward then
    /// hands each parameter's gradient over as soon as it is final, and a bucket's all-reduce
    /// starts (on the communicator's own thread, when it has one) as soon as the bucket is
    /// full, while backward goes on with earlier layers. [`DataParallel::average_gradients`]
    /// then waits for them. Does nothing with overlap off, a single rank or a single bucket
    /// (which is only full when backward ends).
    pub fn attach(&mut self, tape: &Tape, model: &mut dyn Module) {
        if !self.overlap || self.size() == 1 {
            return;
        }
        let buckets = Buckets::new(self.comm.clone(), model, self.bucket_bytes, false);
        if buckets.len() < 2 {
            // One bucket fills when backward ends: nothing to overlap, and a hand-over to
            // the communication thread would only add its latency.
            return;
        }
        let buckets = Rc::new(RefCell::new(buckets));
        let hook = buckets.clone();
        tape.on_param_grad(move |id, g| hook.borrow_mut().add_by_id(id, g));
        self.filling = Some(buckets);
    }

    /// Replaces each trainable parameter's gradient in `grads` with its mean over the ranks,
    /// all-reduced bucket by bucket in reverse registration order; after
    /// [`DataParallel::attach`], finishes the all-reduces that backward started.
    pub fn average_gradients(&mut self, model: &mut dyn Module, grads: &mut GradMap) -> Result<()> {
        let filling = self.filling.take();
        if self.size() == 1 {
            self.stats.steps += 1;
            return check_shapes(model, grads);
        }
        let started = Instant::now();
        let buckets = match &filling {
            Some(b) => b.clone(),
            None => Rc::new(RefCell::new(Buckets::new(
                self.comm.clone(),
                model,
                self.bucket_bytes,
                true,
            ))),
        };
        let mut b = buckets.borrow_mut();
        b.add_missing(grads)?;
        self.stats.steps += 1;
        let bytes = b.finish(grads)?;
        self.stats.buckets += b.len() as u64;
        self.stats.started_during_backward += b.started_early as u64;
        self.stats.bytes += bytes as u64;
        self.stats.all_reduce_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Sums `values` over the ranks (metrics of the shards of an epoch).
    pub fn sum(&self, values: &mut [f64]) -> Result<()> {
        self.comm.all_reduce_f64(values, Reduce::Sum)
    }

    /// The largest of `values` over the ranks, element by element (the slowest rank's time).
    pub fn max(&self, values: &mut [f64]) -> Result<()> {
        self.comm.all_reduce_f64(values, Reduce::Max)
    }
}
