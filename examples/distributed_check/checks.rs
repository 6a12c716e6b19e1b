//! The checks of data-parallel training that every rank runs, over any communicator: MPI's
//! processes (`main.rs`) or threads of one process (`tests/thread_replicas.rs`).

use std::rc::Rc;
use std::sync::Arc;
use tapegrad::autograd::{Error, Result};
use tapegrad::data::{synthetic, DataLoader, Dataset, LoaderOptions, Shard, ShardTail};
use tapegrad::distributed::{Communicator, DataParallel, Reduce};
use tapegrad::nn::optim::{Sgd, SgdConfig};
use tapegrad::nn::{Entry, Module};
use tapegrad::train::{load_training_checkpoint, save_training_checkpoint, Schedule, Trainer};

/// A small convolutional network without batch norm (LeNet-5 with ReLU and max pooling).
const NET: &str = "lenet5-modern";
const STEPS: u64 = 20;
const GLOBAL_BATCH: usize = 64;
const TOLERANCE: f32 = 1e-4;

pub fn fail(msg: impl Into<String>) -> Error {
    Error::invalid("distributed_check", msg)
}

fn params(model: &mut dyn Module) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    model.visit_mut("", &mut |name, e| {
        if let Entry::Param(p) = e {
            out.push((name.to_string(), p.value().to_vec()));
        }
    });
    out
}

/// Whether every rank holds exactly `values` (the element-wise max and min agree with it).
fn same_on_every_rank(comm: &dyn Communicator, values: &[f32]) -> Result<bool> {
    let mut max = values.to_vec();
    let mut neg_min: Vec<f32> = values.iter().map(|v| -v).collect();
    comm.all_reduce(&mut max, Reduce::Max)?;
    comm.all_reduce(&mut neg_min, Reduce::Max)?;
    Ok(max == values && neg_min.iter().zip(values).all(|(n, v)| -n == *v))
}

pub fn trainer(seed: u64) -> Result<Trainer> {
    let model = tapegrad::models::build(NET, 10, [1, 28, 28], seed)?;
    let sgd = Sgd::new(SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        ..Default::default()
    })?;
    Ok(Trainer::new(model, Box::new(sgd), Schedule::None))
}

fn loader(ds: &Arc<Dataset>, batch: usize, shard: Option<Shard>) -> Result<DataLoader> {
    let opts = LoaderOptions {
        seed: 3,
        shard,
        ..Default::default()
    };
    DataLoader::new(ds.clone(), batch, opts)
}

/// Ranks started from different seeds hold rank 0's model after the first broadcast.
fn check_broadcast(comm: &Rc<dyn Communicator>) -> Result<String> {
    let mut t = trainer(100 + comm.rank() as u64)?;
    let before: Vec<f32> = params(t.model.as_mut())
        .into_iter()
        .flat_map(|p| p.1)
        .collect();
    if comm.size() > 1 && same_on_every_rank(comm.as_ref(), &before)? {
        return Err(fail("models built from different seeds are already equal"));
    }
    t.distribute(DataParallel::new(comm.clone()))?;
    let after: Vec<f32> = params(t.model.as_mut())
        .into_iter()
        .flat_map(|p| p.1)
        .collect();
    if !same_on_every_rank(comm.as_ref(), &after)? {
        return Err(fail(
            "the parameters differ across ranks after the broadcast",
        ));
    }
    if comm.rank() == 0 && after != before {
        return Err(fail("the broadcast changed rank 0's parameters"));
    }
    Ok(format!(
        "{} ranks seeded differently hold rank 0's {} parameters after the broadcast",
        comm.size(),
        after.len()
    ))
}

/// N ranks with batch 64 / N each train as one process with batch 64.
fn check_equivalence(comm: &Rc<dyn Communicator>, ds: &Arc<Dataset>) -> Result<String> {
    let (rank, ranks) = (comm.rank(), comm.size());
    if !GLOBAL_BATCH.is_multiple_of(ranks) {
        return Err(fail(format!(
            "{ranks} ranks do not divide the batch of {GLOBAL_BATCH}"
        )));
    }
    let shard = Shard::new(rank, ranks, ShardTail::Wrap)?;
    let mut parallel = trainer(7 + rank as u64)?;
    // Buckets of 64 KiB: LeNet-5's 247 KB of gradients in 4, started during backward on MPI's
    // communication thread.
    let ddp = DataParallel::new(comm.clone()).with_bucket_bytes(64 * 1024)?;
    parallel.distribute(ddp)?;
    parallel.train_epoch(
        &loader(ds, GLOBAL_BATCH / ranks, Some(shard))?,
        Some(STEPS),
        |_| {},
    )?;
    // The reference: one process (this one, alone) with the whole batch, from rank 0's seed.
    let mut alone = trainer(7)?;
    alone.train_epoch(&loader(ds, GLOBAL_BATCH, None)?, Some(STEPS), |_| {})?;
    if parallel.position.step != STEPS || alone.position.step != STEPS {
        return Err(fail(format!(
            "took {} and {} steps, expected {STEPS}",
            parallel.position.step, alone.position.step
        )));
    }
    // Per tensor: max |a - b| / max |b|.
    let mut worst = (0.0f32, String::new());
    let (p, a) = (
        params(parallel.model.as_mut()),
        params(alone.model.as_mut()),
    );
    for ((name, x), (_, y)) in p.iter().zip(&a) {
        let diff = x
            .iter()
            .zip(y)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f32::max);
        let scale = y.iter().map(|v| v.abs()).fold(0.0, f32::max).max(1e-12);
        if diff / scale > worst.0 || diff.is_nan() {
            worst = (diff / scale, name.clone());
        }
    }
    let flat: Vec<f32> = p.into_iter().flat_map(|p| p.1).collect();
    if !same_on_every_rank(comm.as_ref(), &flat)? {
        return Err(fail("the ranks' parameters differ after training"));
    }
    if worst.0.is_nan() || worst.0 > TOLERANCE {
        return Err(fail(format!(
            "after {STEPS} SGD steps, {ranks} ranks x batch {} differ from 1 process x batch {GLOBAL_BATCH}: max relative difference {:.3e} in {} (tolerance {TOLERANCE:e})",
            GLOBAL_BATCH / ranks, worst.0, worst.1
        )));
    }
    // The evaluation of the shards, added up, is the evaluation of the whole.
    let test_opts = |shard| LoaderOptions {
        shuffle: false,
        shard,
        ..Default::default()
    };
    let tail = Shard::new(rank, ranks, ShardTail::Uneven)?;
    let whole = alone.evaluate(&DataLoader::new(ds.clone(), 100, test_opts(None))?)?;
    let split = parallel.evaluate(&DataLoader::new(ds.clone(), 100, test_opts(Some(tail)))?)?;
    if split.count() != ds.len() as u64 || (split.accuracy() - whole.accuracy()).abs() > 1e-3 {
        return Err(fail(format!(
            "sharded evaluation: {} samples at accuracy {}, whole: {} at {}",
            split.count(),
            split.accuracy(),
            whole.count(),
            whole.accuracy()
        )));
    }
    let stats = parallel.parallel().map(|p| p.stats()).unwrap_or_default();
    Ok(format!(
        "{ranks} ranks x batch {} = 1 process x batch {GLOBAL_BATCH} after {STEPS} SGD steps of {NET} (max relative difference {:.2e} in {}; {} buckets, {} started during backward); sharded evaluation {:.2}% = whole {:.2}%",
        GLOBAL_BATCH / ranks, worst.0, worst.1, stats.buckets, stats.started_during_backward,
        100.0 * split.accuracy(), 100.0 * whole.accuracy()
    ))
}

/// A distributed run stopped after 10 steps and resumed from rank 0's checkpoint ends where an
/// uninterrupted one does: the same parameters, bit for bit, and the same epoch totals.
fn check_resume(comm: &Rc<dyn Communicator>, ds: &Arc<Dataset>) -> Result<String> {
    let (rank, ranks) = (comm.rank(), comm.size());
    let batch = GLOBAL_BATCH / ranks;
    let shard = Some(Shard::new(rank, ranks, ShardTail::Wrap)?);
    let train = loader(ds, batch, shard)?;
    // Every rank needs the path rank 0 writes: named by rank 0's process id and clock (groups
    // of threads in one process run these checks at the same time).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut id = [f64::from(std::process::id()), f64::from(nanos)];
    comm.broadcast_f64(&mut id, 0)?;
    let path = std::env::temp_dir().join(format!(
        "tapegrad-distributed-check-{}-{}.safetensors",
        id[0], id[1]
    ));
    let mut whole = trainer(7)?;
    whole.distribute(DataParallel::new(comm.clone()))?;
    whole.train_epoch(&train, Some(STEPS), |_| {})?;
    let mut first = trainer(7)?;
    first.distribute(DataParallel::new(comm.clone()))?;
    first.train_epoch(&train, Some(STEPS / 2), |_| {})?;
    first.gather_totals()?;
    if rank == 0 {
        save_training_checkpoint(&path, &mut first, &[])?;
    }
    comm.barrier()?;
    // Resumed from another seed: everything comes from the checkpoint.
    let mut resumed = trainer(1000 + rank as u64)?;
    let loaded = load_training_checkpoint(&path, &mut resumed);
    comm.barrier()?;
    if rank == 0 {
        let _ = std::fs::remove_file(&path);
    }
    loaded?;
    resumed.distribute(DataParallel::new(comm.clone()))?;
    resumed.train_epoch(&train, Some(STEPS), |_| {})?;
    let (a, b) = (params(whole.model.as_mut()), params(resumed.model.as_mut()));
    if let Some(((name, _), _)) = a.iter().zip(&b).find(|(x, y)| x.1 != y.1) {
        return Err(fail(format!(
            "the resumed run's {name} differs from the uninterrupted run's"
        )));
    }
    let (tw, tr) = (whole.global_totals()?, resumed.global_totals()?);
    let close = (tw.loss_sum - tr.loss_sum).abs() <= 1e-9 * tw.loss_sum.abs();
    if !close || tw.correct != tr.correct || tw.seen != tr.seen {
        return Err(fail(format!(
            "epoch totals after resuming {tr:?}, uninterrupted {tw:?}"
        )));
    }
    Ok(format!(
        "{ranks} ranks stopped after {} steps and resumed from rank 0's checkpoint end with the uninterrupted run's parameters (bit for bit) and epoch totals ({} images)",
        STEPS / 2, tw.seen
    ))
}

/// The ranks' shards of an epoch are disjoint and cover it (uneven sizes wrapped).
fn check_sampler(comm: &Rc<dyn Communicator>, ds: &Arc<Dataset>) -> Result<String> {
    let (rank, ranks) = (comm.rank(), comm.size());
    // 1,299 samples: an odd number, so two ranks need one repeated.
    let n = ds.len() - 1;
    let sub = Arc::new(ds.subset(&(0..n).collect::<Vec<_>>())?);
    let mut lines = Vec::new();
    for (tail, epoch) in [(ShardTail::Wrap, 4), (ShardTail::Uneven, 5)] {
        let shard = Shard::new(rank, ranks, tail)?;
        let order = loader(&sub, 10, Some(shard))?.order(epoch);
        let mut counts = vec![0f32; n];
        order.iter().for_each(|&i| counts[i] += 1.0);
        comm.all_reduce(&mut counts, Reduce::Sum)?;
        let mut lens = [order.len() as f32];
        comm.all_reduce(&mut lens, Reduce::Max)?;
        let padded = counts.iter().map(|&c| c as usize).sum::<usize>() - n;
        let expected_pad = match tail {
            ShardTail::Wrap => n.div_ceil(ranks) * ranks - n,
            _ => 0,
        };
        if counts.iter().any(|c| !(1.0..=2.0).contains(c)) || padded != expected_pad {
            return Err(fail(format!("{tail:?} shards of {n} samples over {ranks} ranks: counts from {} to {}, {padded} repeated (expected {expected_pad})",
                counts.iter().fold(f32::MAX, |a, &b| a.min(b)), counts.iter().fold(0.0f32, |a, &b| a.max(b)))));
        }
        if tail == ShardTail::Wrap && lens[0] as usize != order.len() {
            return Err(fail("wrapped shards of different lengths"));
        }
        lines.push(format!("{tail:?}: {expected_pad} repeated"));
    }
    Ok(format!(
        "the shards of {n} samples over {ranks} ranks are disjoint and cover the epoch ({})",
        lines.join(", ")
    ))
}

/// Every check, in order, on 1,300 synthetic images; a line for each that passed.
pub fn run_checks(comm: &Rc<dyn Communicator>) -> Result<Vec<String>> {
    let ds = Arc::new(synthetic::shapes(130, 5)?);
    Ok(vec![
        check_broadcast(comm)?,
        check_equivalence(comm, &ds)?,
        check_resume(comm, &ds)?,
        check_sampler(comm, &ds)?,
    ])
}
