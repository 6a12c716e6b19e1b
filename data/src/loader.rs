//! `DataLoader`: shuffled batches of a [`Dataset`] as NCHW tensors, augmented in parallel and
//! prepared ahead on a background thread so that the next batch is ready when a training step
//! ends.
//!
//! Reproducibility: the order of epoch `e` is a permutation drawn from a generator seeded by
//! `(seed, e)`, and sample `i` of epoch `e` is transformed with a generator seeded by
//! `(seed, e, i)`. No generator is shared between samples, so the batches are the same whatever
//! the number of threads, the prefetch depth or the order in which the work happens to run.
//!
//! Data-parallel training: with [`LoaderOptions::shard`], each of `ranks` processes iterates its
//! own part of every epoch, as PyTorch's `DistributedSampler`. Every rank draws the same
//! permutation (same seed and epoch), and rank `r` takes its elements `r, r + ranks,
//! r + 2 ranks, ...`. So batch `b` of the ranks together is batch `b` of one process whose
//! batch is `ranks` times larger, and augmentation (seeded by sample index) is the same too.
//! [`ShardTail`] says what happens when the set does not divide evenly: `Wrap` (PyTorch's
//! default) repeats the permutation's first samples so that every rank gets the same number,
//! `Drop` leaves out the last `n mod ranks` samples of the permutation, and `Uneven` gives the
//! first `n mod ranks` ranks one sample more (for evaluation, where each sample must count
//! once and ranks need not take the same number of steps).
//!
//! The prefetch thread prepares batches in a pool of its own (the one `LoaderOptions::threads`
//! sizes, else one shared by every loader, as large as rayon's global pool), never in rayon's
//! global pool. A loader iterated inside a rayon worker (two trainings in a `par_iter`) blocks
//! that worker until the next batch arrives; were the batch prepared in the global pool, every
//! worker could be blocked waiting for work that only they can run: a deadlock.

use super::dataset::Dataset;
use super::transform::Transform;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use tapegrad_autograd::{rng, Error, Result, Tensor};

/// How a [`DataLoader`] orders, groups and prepares samples.
#[derive(Clone)]
pub struct LoaderOptions {
    /// A fresh random order every epoch (else dataset order).
    pub shuffle: bool,
    /// Seeds the order and the augmentation.
    pub seed: u64,
    /// Drop the last batch when it would be smaller than the batch size.
    pub drop_last: bool,
    /// Applied to every sample, in parallel.
    pub transform: Option<Arc<dyn Transform>>,
    /// Batches prepared ahead on a background thread; 0 prepares each batch on the caller's
    /// thread when it is asked for.
    pub prefetch: usize,
    /// Threads for preparing a batch. `None` prepares it in rayon's current pool when
    /// `prefetch` is 0 (on the caller's thread), and in a pool shared by all loaders, as large
    /// as rayon's global pool, when prefetching (see the module documentation).
    pub threads: Option<usize>,
    /// This process's shard of every epoch in data-parallel training (see the module
    /// documentation); `None`: the whole epoch.
    pub shard: Option<Shard>,
}

/// What a rank does with the samples left over when the set does not divide evenly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardTail {
    /// Repeat the start of the permutation until every rank has `ceil(n / ranks)` samples.
    Wrap,
    /// Leave out the permutation's last `n mod ranks` samples: `floor(n / ranks)` each.
    Drop,
    /// No padding: ranks below `n mod ranks` have one sample more than the others.
    Uneven,
}

/// Rank `rank` of `ranks` processes, each iterating its own part of every epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub ranks: usize,
    pub tail: ShardTail,
}

impl Shard {
    /// Fails unless `rank < ranks`.
    pub fn new(rank: usize, ranks: usize, tail: ShardTail) -> Result<Shard> {
        if rank >= ranks {
            return Err(Error::invalid(
                "Shard",
                format!("rank {rank} is not among {ranks} ranks"),
            ));
        }
        Ok(Shard { rank, ranks, tail })
    }

    /// This rank's samples out of `n`.
    pub fn len(&self, n: usize) -> usize {
        match self.tail {
            ShardTail::Wrap => n.div_ceil(self.ranks),
            ShardTail::Drop => n / self.ranks,
            ShardTail::Uneven => n / self.ranks + usize::from(self.rank < n % self.ranks),
        }
    }

    /// This rank's part of an epoch's `order` (the same on every rank).
    pub fn select(&self, order: &[usize]) -> Vec<usize> {
        let n = order.len();
        let total = match self.tail {
            ShardTail::Wrap => self.len(n) * self.ranks,
            ShardTail::Drop => self.len(n) * self.ranks,
            ShardTail::Uneven => n,
        };
        if n == 0 {
            return Vec::new();
        }
        (self.rank..total)
            .step_by(self.ranks)
            .map(|i| order[i % n])
            .collect()
    }
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            shuffle: true,
            seed: 0,
            drop_last: false,
            transform: None,
            prefetch: 2,
            threads: None,
            shard: None,
        }
    }
}

/// One batch: images `[N, C, H, W]`, their labels, and which dataset samples they are.
#[derive(Clone, Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Vec<usize>,
    pub indices: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// SplitMix64's finaliser: a bijection on u64 that scatters nearby inputs far apart, so seeds
/// (s, e, i) and (s, e, i + 1) give unrelated generators.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed, |h, &p| splitmix(h ^ splitmix(p)))
}

/// Everything needed to build any batch of one epoch; shared with the prefetch thread.
struct EpochJob {
    dataset: Arc<Dataset>,
    order: Vec<usize>,
    batch_size: usize,
    batches: usize,
    transform: Option<Arc<dyn Transform>>,
    seed: u64,
    epoch: u64,
    pool: Option<Arc<rayon::ThreadPool>>,
}

/// The pool in which prefetch threads prepare batches when a loader has none of its own: built
/// on first use, as large as rayon's global pool, shared by every loader.
fn prefetch_pool() -> Result<&'static rayon::ThreadPool> {
    static POOL: OnceLock<std::result::Result<rayon::ThreadPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("tapegrad-prefetch-{i}"))
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::invalid("DataLoader", format!("prefetch thread pool: {e}")))
}

impl EpochJob {
    /// Batch `b`, prepared in the loader's pool, else in `fallback`, else in the current one.
    fn batch(&self, b: usize, fallback: Option<&rayon::ThreadPool>) -> Result<Batch> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let work = || self.assemble(&indices);
        let (images, labels) = match (&self.pool, fallback) {
            (Some(pool), _) => pool.install(work),
            (None, Some(pool)) => pool.install(work),
            (None, None) => work(),
        }?;
        Ok(Batch {
            images,
            labels,
            indices,
        })
    }

    fn assemble(&self, indices: &[usize]) -> Result<(Tensor, Vec<usize>)> {
        let ds = &self.dataset;
        let labels = indices
            .iter()
            .map(|&i| ds.label(i))
            .collect::<Result<Vec<_>>>()?;
        let Some(t) = &self.transform else {
            let mut data = Vec::with_capacity(indices.len() * ds.sample_numel());
            for &i in indices {
                data.extend_from_slice(ds.sample(i)?);
            }
            let [c, h, w] = ds.sample_shape();
            return Ok((Tensor::from_vec(data, [indices.len(), c, h, w])?, labels));
        };
        let samples: Vec<Tensor> = indices
            .par_iter()
            .map(|&i| {
                let mut r = rng(mix(&[self.seed, self.epoch, i as u64]));
                t.apply(&ds.image(i)?, &mut r)
            })
            .collect::<Result<_>>()?;
        if let Some(odd) = samples.iter().find(|s| s.shape() != samples[0].shape()) {
            return Err(Error::shape(
                "DataLoader",
                &[samples[0].shape(), odd.shape()],
                "the transform to give every sample of a batch the same shape",
            ));
        }
        let refs: Vec<&Tensor> = samples.iter().collect();
        Ok((Tensor::stack(&refs, 0)?, labels))
    }
}

/// Batches over a shared dataset; see the module documentation.
pub struct DataLoader {
    dataset: Arc<Dataset>,
    batch_size: usize,
    opts: LoaderOptions,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl DataLoader {
    /// Fails on a zero batch size or a thread pool that cannot be built.
    pub fn new(dataset: Arc<Dataset>, batch_size: usize, opts: LoaderOptions) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid(
                "DataLoader",
                "the batch size must be positive",
            ));
        }
        if let Some(s) = &opts.shard {
            Shard::new(s.rank, s.ranks, s.tail).map_err(|e| match e {
                Error::Invalid { msg, .. } => Error::invalid("DataLoader", msg),
                other => other,
            })?;
        }
        let pool = match opts.threads {
            Some(n) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::invalid("DataLoader", format!("thread pool: {e}")))?,
            )),
            None => None,
        };
        Ok(DataLoader {
            dataset,
            batch_size,
            opts,
            pool,
        })
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Samples per epoch (of this rank's shard, when sharded).
    pub fn samples(&self) -> usize {
        let n = self.dataset.len();
        self.opts.shard.map_or(n, |s| s.len(n))
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.samples();
        if self.opts.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sample order of `epoch`: a seeded permutation, or `0..n` without shuffling; of
    /// this rank's shard when sharded.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.opts.shuffle {
            // u64::MAX in place of a sample index keeps this generator apart from the samples'.
            order.shuffle(&mut rng(mix(&[self.opts.seed, epoch, u64::MAX])));
        }
        match &self.opts.shard {
            Some(s) => s.select(&order),
            None => order,
        }
    }

    /// The batches of `epoch`, prepared ahead when `prefetch > 0`. Dropping the iterator early
    /// stops the background thread after the batch it is working on.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let job = Arc::new(EpochJob {
            dataset: self.dataset.clone(),
            order: self.order(epoch),
            batch_size: self.batch_size,
            batches: self.len(),
            transform: self.opts.transform.clone(),
            seed: self.opts.seed,
            epoch,
            pool: self.pool.clone(),
        });
        let source = if self.opts.prefetch == 0 {
            Source::Inline(job.clone())
        } else {
            // A rendezvous channel (bound 0) already lets one batch be built ahead.
            let (tx, rx) = sync_channel(self.opts.prefetch - 1);
            let worker = job.clone();
            let handle = std::thread::spawn(move || {
                for b in 0..worker.batches {
                    // Never rayon's global pool: see the module documentation.
                    let batch = match &worker.pool {
                        Some(_) => worker.batch(b, None),
                        None => prefetch_pool().and_then(|pool| worker.batch(b, Some(pool))),
                    };
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            });
            Source::Prefetch {
                rx: Some(rx),
                handle: Some(handle),
            }
        };
        Epoch {
            batches: job.batches,
            next: 0,
            done: false,
            source,
        }
    }
}

enum Source {
    Inline(Arc<EpochJob>),
    Prefetch {
        rx: Option<Receiver<Result<Batch>>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// The batches of one epoch, in order; stops after the first error.
pub struct Epoch {
    batches: usize,
    next: usize,
    done: bool,
    source: Source,
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.done || self.next >= self.batches {
            return None;
        }
        let item = match &mut self.source {
            Source::Inline(job) => job.batch(self.next, None),
            Source::Prefetch { rx, handle } => {
                match rx.as_ref().map(|r| r.recv()) {
                    Some(Ok(batch)) => batch,
                    // The worker hung up early: it can only have panicked.
                    _ => {
                        let _ = handle.take().map(|h| h.join());
                        Err(Error::invalid(
                            "DataLoader",
                            format!("the prefetch thread stopped before batch {}", self.next),
                        ))
                    }
                }
            }
        };
        self.next += 1;
        self.done = item.is_err();
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.done {
            0
        } else {
            self.batches - self.next
        };
        (0, Some(left))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Source::Prefetch { rx, handle } = &mut self.source {
            // Hang up first so that a worker blocked on a full channel wakes and stops.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
