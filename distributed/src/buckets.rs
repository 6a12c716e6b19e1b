//! Gradient buckets: the parameters in reverse registration order (roughly the order in which
//! backward finishes them), cut into runs of about the bucket size, each all-reduced as one
//! buffer. A bucket is started as soon as it is full and every bucket before it has been
//! started, so that every rank starts the same all-reduces in the same order.

use crate::communicator::{Communicator, PendingReduce, Reduce};
use std::collections::HashMap;
use std::rc::Rc;
use tapegrad_autograd::{Error, ParamId, Result, Tensor};
use tapegrad_nn::optim::GradMap;
use tapegrad_nn::{Entry, Module};

/// A trainable parameter's place in the buckets.
struct Slot {
    name: String,
    dims: Vec<usize>,
    bucket: usize,
    /// Where its gradient starts in the bucket's buffer.
    offset: usize,
}

impl Slot {
    fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Buckets being filled with one step's gradients, and the all-reduces started on them.
pub(crate) struct Buckets {
    comm: Rc<dyn Communicator>,
    slots: Vec<Slot>,
    by_id: HashMap<ParamId, usize>,
    by_name: HashMap<String, usize>,
    /// Each bucket's buffer until its all-reduce starts.
    buffers: Vec<Option<Vec<f32>>>,
    /// Gradients each bucket still waits for.
    missing: Vec<usize>,
    /// Which slots have their gradient.
    done: Vec<bool>,
    /// The first bucket not started yet.
    next: usize,
    pending: Vec<PendingReduce>,
    /// Buckets started before [`Buckets::finish`] (while backward was running).
    pub(crate) started_early: usize,
    /// All-reduce on the caller's thread (after backward, nothing to overlap with) rather than
    /// through [`Communicator::start_all_reduce`].
    blocking: bool,
}

impl Buckets {
    /// Empty buckets of about `bucket_bytes` for `model`'s trainable parameters.
    pub(crate) fn new(
        comm: Rc<dyn Communicator>,
        model: &mut dyn Module,
        bucket_bytes: usize,
        blocking: bool,
    ) -> Buckets {
        let mut params = Vec::new();
        model.visit_mut("", &mut |name, e| {
            if let Entry::Param(p) = e {
                if p.requires_grad() {
                    params.push((name.to_string(), p.id(), p.value().dims().to_vec()));
                }
            }
        });
        params.reverse();
        let per_bucket = (bucket_bytes / std::mem::size_of::<f32>()).max(1);
        let mut slots = Vec::with_capacity(params.len());
        let mut sizes: Vec<usize> = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        let (mut by_id, mut by_name) = (HashMap::new(), HashMap::new());
        for (name, id, dims) in params {
            let numel: usize = dims.iter().product();
            // A bucket takes parameters until it reaches the size; always at least one.
            if sizes.last().is_none_or(|&s| s >= per_bucket) {
                sizes.push(0);
                counts.push(0);
            }
            let bucket = sizes.len() - 1;
            by_id.insert(id, slots.len());
            by_name.insert(name.clone(), slots.len());
            slots.push(Slot {
                name,
                dims,
                bucket,
                offset: sizes[bucket],
            });
            sizes[bucket] += numel;
            counts[bucket] += 1;
        }
        Buckets {
            comm,
            done: vec![false; slots.len()],
            slots,
            by_id,
            by_name,
            buffers: sizes.iter().map(|&n| Some(vec![0.0; n])).collect(),
            missing: counts,
            next: 0,
            pending: Vec::new(),
            started_early: 0,
            blocking,
        }
    }

    /// Number of buckets.
    pub(crate) fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Backward's hook: the final gradient of parameter `id` (ignored if not trainable here).
    pub(crate) fn add_by_id(&mut self, id: ParamId, grad: &Tensor) -> Result<()> {
        match self.by_id.get(&id) {
            Some(&i) => {
                self.put(i, grad)?;
                self.start_ready(true);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn put(&mut self, i: usize, grad: &Tensor) -> Result<()> {
        let s = &self.slots[i];
        if grad.dims() != s.dims.as_slice() {
            return Err(Error::shape(
                "DataParallel::average_gradients",
                &[&s.dims.as_slice().into(), grad.shape()],
                format!("the gradient of {} to have its parameter's shape", s.name),
            ));
        }
        let (Some(buf), false) = (self.buffers[s.bucket].as_mut(), self.done[i]) else {
            return Err(Error::invalid(
                "DataParallel::average_gradients",
                format!(
                    "a second gradient of {} in one step (one backward per step)",
                    s.name
                ),
            ));
        };
        buf[s.offset..s.offset + s.numel()].copy_from_slice(grad.data());
        self.missing[s.bucket] -= 1;
        self.done[i] = true;
        Ok(())
    }

    /// Starts, in order, the buckets that have all their gradients.
    fn start_ready(&mut self, early: bool) {
        while self.next < self.buffers.len() && self.missing[self.next] == 0 {
            self.start_next(early);
        }
    }

    fn start_next(&mut self, early: bool) {
        if let Some(mut buf) = self.buffers[self.next].take() {
            let pending = if self.blocking {
                let result = self.comm.all_reduce(&mut buf, Reduce::Mean).map(|()| buf);
                PendingReduce::done(result)
            } else {
                self.comm.start_all_reduce(buf, Reduce::Mean)
            };
            self.pending.push(pending);
            self.started_early += usize::from(early);
        }
        self.next += 1;
    }

    /// Puts into the buckets the gradients of `grads` that backward's hook did not bring
    /// (all of them without overlap), checking every shape.
    pub(crate) fn add_missing(&mut self, grads: &GradMap) -> Result<()> {
        for (name, g) in grads.iter() {
            let Some(&i) = self.by_name.get(name) else {
                continue;
            };
            if !self.done[i] || g.dims() != self.slots[i].dims.as_slice() {
                self.put(i, g)?;
            }
        }
        Ok(())
    }

    /// Starts every bucket left (a gradient never seen counts as zeros), waits for all, and
    /// writes the means into `grads`; returns the bytes all-reduced.
    pub(crate) fn finish(&mut self, grads: &mut GradMap) -> Result<usize> {
        while self.next < self.buffers.len() {
            self.start_next(false);
        }
        let mut bytes = 0;
        let pending = std::mem::take(&mut self.pending);
        let results = pending
            .into_iter()
            .map(PendingReduce::wait)
            .collect::<Result<Vec<_>>>()?;
        for s in &self.slots {
            let flat = &results[s.bucket];
            let g = Tensor::from_vec(
                flat[s.offset..s.offset + s.numel()].to_vec(),
                s.dims.as_slice(),
            )?;
            grads.insert(s.name.clone(), g);
        }
        for r in &results {
            bytes += r.len() * std::mem::size_of::<f32>();
        }
        Ok(bytes)
    }
}
