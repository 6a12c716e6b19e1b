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
//! The all-reduce runs after backward has finished, not overlapped with it (see
//! `docs/distributed.md` for what overlap would gain). A parameter that got no gradient on a
//! rank contributes zeros, so after averaging every trainable parameter has a gradient.

use crate::communicator::{Communicator, Reduce};
use std::rc::Rc;
use std::time::Instant;
use tapegrad_autograd::{Error, Result, Tensor};
use tapegrad_nn::optim::GradMap;
use tapegrad_nn::{Entry, Module};

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
    /// Seconds in gradient all-reduces (packing included).
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
    stats: SyncStats,
}

/// What a rank's model holds: compared across ranks before anything is exchanged, since
/// collectives over buffers of different lengths would fail or hang.
fn census(model: &mut dyn Module) -> [f64; 5] {
    let mut c = [0.0; 5];
    model.visit("", &mut |_, e| match e {
        Entry::Param(p) => {
            c[0] += 1.0;
            c[1] += p.value().numel() as f64;
        }
        Entry::Buffer(b) => {
            c[2] += 1.0;
            c[3] += b.numel() as f64;
        }
        Entry::Counter(_) => c[4] += 1.0,
        Entry::Rng(_) => {}
    });
    c
}

impl DataParallel {
    /// Synchronises over `comm` (shared: the program keeps it too, to abort on an error).
    pub fn new(comm: Rc<dyn Communicator>) -> DataParallel {
        DataParallel {
            comm,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
            stats: SyncStats::default(),
        }
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
        model.visit("", &mut |_, e| match e {
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
        model.visit("", &mut |_, e| match e {
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

    /// Replaces each trainable parameter's gradient in `grads` with its mean over the ranks,
    /// all-reduced bucket by bucket in reverse registration order.
    pub fn average_gradients(&mut self, model: &mut dyn Module, grads: &mut GradMap) -> Result<()> {
        let mut order: Vec<(String, Vec<usize>)> = Vec::new();
        model.visit("", &mut |name, e| {
            if let Entry::Param(p) = e {
                if p.requires_grad() {
                    order.push((name.to_string(), p.value().dims().to_vec()));
                }
            }
        });
        order.reverse();
        for (name, dims) in &order {
            if let Some(g) = grads.get(name) {
                if g.dims() != dims.as_slice() {
                    return Err(Error::shape(
                        "DataParallel::average_gradients",
                        &[&dims.as_slice().into(), g.shape()],
                        format!("the gradient of {name} to have its parameter's shape"),
                    ));
                }
            }
        }
        self.stats.steps += 1;
        if self.size() == 1 {
            return Ok(());
        }
        let started = Instant::now();
        let per_bucket = (self.bucket_bytes / std::mem::size_of::<f32>()).max(1);
        let mut start = 0;
        while start < order.len() {
            // Parameters up to the bucket's size; always at least one.
            let mut end = start;
            let mut numel = 0;
            while end < order.len() && (end == start || numel < per_bucket) {
                numel += order[end].1.iter().product::<usize>();
                end += 1;
            }
            let mut flat = Vec::with_capacity(numel);
            for (name, dims) in &order[start..end] {
                match grads.get(name) {
                    Some(g) => flat.extend_from_slice(g.data()),
                    None => flat.resize(flat.len() + dims.iter().product::<usize>(), 0.0),
                }
            }
            self.comm.all_reduce(&mut flat, Reduce::Mean)?;
            let mut at = 0;
            for (name, dims) in &order[start..end] {
                let n = dims.iter().product::<usize>();
                let g = Tensor::from_vec(flat[at..at + n].to_vec(), dims.as_slice())?;
                grads.insert(name.clone(), g);
                at += n;
            }
            self.stats.buckets += 1;
            self.stats.bytes += (numel * std::mem::size_of::<f32>()) as u64;
            start = end;
        }
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
