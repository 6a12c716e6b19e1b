//! Trains an image classifier and reports how well it does.
//!
//! ```text
//! cargo run --release --example train                      # Fashion-MNIST, the default network
//! cargo run --release --example train -- --model resnet18-small --dataset cifar10 --data DIR
//! cargo run --release --example train -- --resume runs/NAME/checkpoint.safetensors
//! cargo run --release --example train -- --help
//! ```
//!
//! With no arguments it trains the default network (a small VGG, see `args::DEFAULT_MODEL`) on
//! Fashion-MNIST from `/usr/share/datasets/fashion-mnist` (`apt-get install -y
//! dataset-fashion-mnist`), `$FASHION_MNIST_DIR` or `--data`; without it, on the 7,000 real
//! images of the subset in `assets/fashion-mnist-subset`, and then every line printed starts
//! with `[subset]`. `--validation N` evaluates on the last N training images instead of the
//! test set, to choose a recipe without looking at it.
//!
//! Each epoch: a progress bar (loss, accuracy, images/s), an evaluation on the test split, a
//! checkpoint (`best.safetensors` for the best test accuracy, then `checkpoint.safetensors`),
//! then `metrics.csv`, `metrics.json` and `curves.png` in the output folder, each replaced
//! atomically (see `tapegrad::train::write_epoch_files`). A step that leaves a weight
//! infinite or NaN stops the run, naming it, before anything is written. At the end: top-1 and
//! top-5 error, per-class accuracy and the confusion matrix (also in `report.txt`).
//! A run is deterministic for a given seed, replica count and thread count, and `--resume`
//! continues it exactly where the checkpoint left it (`--max-steps` stops a run early, as an
//! interruption).
//!
//! Data-parallel training (see `docs/distributed.md`): by default on two replicas, threads of
//! this program, each taking 16 images of every batch (`--replicas N`, `--batch-size B`); or
//! over MPI, one process per rank:
//!
//! ```text
//! cargo build --release --example train --features mpi
//! mpirun -np 2 target/release/examples/train --distributed       # global batch 2 x 16
//! ```
//!
//! Every rank trains on its shard of each batch and evaluates its shard of the test set; only
//! rank 0 prints and writes files. A rank that fails prints its error and ends the whole job.

mod args;
mod data;
mod distributed;
mod prepared;
mod setup;

use clap::{CommandFactory, FromArgMatches};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use tapegrad::autograd::{Error, Result};
use tapegrad::data::{DataLoader, LoaderOptions, Shard, ShardTail};
use tapegrad::distributed::{Communicator, DataParallel, ThreadGroup};
use tapegrad::nn::checkpoint::{write_atomic, Checkpoint};
use tapegrad::nn::{summary, Module};
use tapegrad::train::{
    format_grad_stats, save_training_checkpoint, write_epoch_files, Console, PlotText, Progress,
    Report, TestTime, Trainer, CHECKPOINT_FILE,
};

use args::{json_err, name_of, Args};
use prepared::{prepare, settings, Prepared};
use setup::{
    augmentation, now_timestamp, optimizer_by_name, schedule_by_name, OptimizerSettings,
    ScheduleSettings,
};

fn main() {
    let start = Instant::now();
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let fail = |e: Error| -> ! {
        Console::new(None).error(format!("error: {e}"));
        std::process::exit(1);
    };
    let replicas = args.thread_replicas().unwrap_or_else(|e| fail(e));
    if replicas == 1 {
        let world = distributed::world(args.distributed).unwrap_or_else(|e| fail(e));
        let ranks = world.as_ref().map_or(1, |w| w.size());
        let rank = world.as_ref().map_or(0, |w| w.rank());
        let mut console = Console::new(None).quiet(rank != 0);
        // The pool is set before anything runs on it (loading the data does).
        let prepared = settings(args, &matches, ranks).and_then(|(args, resume)| {
            let threads = args
                .threads
                .unwrap_or_else(|| distributed::default_threads(world.as_deref()));
            distributed::set_global_threads(threads)?;
            prepare((args, resume), &mut console)
        });
        rank_main(prepared, console, start, world);
        return;
    }
    // Replicas on threads share one reading of the checkpoint and the data; each builds its
    // own pool of threads.
    let mut console = Console::new(None);
    let prepared = settings(args, &matches, replicas)
        .and_then(|s| prepare(s, &mut console))
        .unwrap_or_else(|e| fail(e));
    let group = ThreadGroup::new(replicas).unwrap_or_else(|e| fail(e));
    std::thread::scope(|s| {
        for rank in group {
            let (prepared, tag) = (&prepared, console.tag());
            let console = Console::new(tag).quiet(rank.rank() != 0);
            // As much stack as the main thread's.
            let spawned = std::thread::Builder::new()
                .name(format!("replica {}", rank.rank()))
                .stack_size(8 << 20)
                .spawn_scoped(s, move || {
                    rank_main(Ok(prepared), console, start, Some(Rc::new(rank)))
                });
            if let Err(e) = spawned {
                fail(Error::invalid("train", format!("starting a replica: {e}")));
            }
        }
    });
}

/// One rank's run, or the whole run without data parallelism; on an error, ends the process,
/// and with it every rank. `prepared` is the rank's own or, for replicas on threads, shared.
fn rank_main<P: std::borrow::Borrow<Prepared>>(
    prepared: Result<P>,
    mut console: Console,
    start: Instant,
    world: Option<Rc<dyn Communicator>>,
) {
    let result = prepared.and_then(|p| run(p.borrow(), &mut console, start, world.clone()));
    if let Err(e) = result {
        match &world {
            // The other ranks may be waiting for this one in a collective: end them all.
            Some(w) if w.size() > 1 => {
                console.error(format!("error on rank {} of {}: {e}", w.rank(), w.size()));
                w.abort(1);
            }
            _ => {
                console.error(format!("error: {e}"));
                std::process::exit(1);
            }
        }
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, "", e)
}

/// The network `model` for `classes` classes and `shape` inputs. When resuming, the name comes
/// from the checkpoint's metadata: its sizes are checked against the checkpoint's tensors
/// before anything is built, so a crafted name (absurd widths) is an error naming the weights
/// that differ, not an allocation of petabytes.
pub fn build_model(
    model: &str,
    classes: usize,
    shape: [usize; 3],
    seed: u64,
    resume: Option<(&Path, &Checkpoint)>,
) -> Result<Box<dyn Module>> {
    if let Some((path, ckpt)) = resume {
        let what = path.display().to_string();
        tapegrad::models::check_file(model, classes, shape, &ckpt.model, &what)?;
    }
    tapegrad::models::build(model, classes, shape, seed)
}

fn run(
    prepared: &Prepared,
    console: &mut Console,
    start: Instant,
    world: Option<Rc<dyn Communicator>>,
) -> Result<()> {
    let (rank, ranks) = world.as_ref().map_or((0, 1), |w| (w.rank(), w.size()));
    let lead = rank == 0;
    let Prepared {
        args,
        resume,
        train,
        test,
        data_name,
        eval_name,
        mean,
        std,
    } = prepared;
    let threads = args
        .threads
        .unwrap_or_else(|| distributed::default_threads(world.as_deref()));
    // A replica's own pool, of which its thread is a worker, kept until the run ends; other
    // ranks set the global pool before loading the data.
    let replica = args.thread_replicas()? > 1;
    let _pool = if replica {
        Some(distributed::replica_threads(threads)?)
    } else {
        None
    };
    let shape = train.sample_shape();
    let classes = train.classes().to_vec();
    // Crops are padded with the value a black pixel has after normalisation (grey images), or
    // with the mean colour (RGB).
    let fill = if shape[0] == 1 {
        -mean[0] / std[0]
    } else {
        0.0
    };
    let transform = augmentation(&args.augment, train, fill)?;
    // Each rank its shard: equal lengths for training (every rank takes the same number of
    // steps), each sample once for testing.
    let shard = |tail| world.as_ref().map(|_| Shard { rank, ranks, tail });
    let loader_opts = LoaderOptions {
        seed: args.seed,
        transform,
        shard: shard(ShardTail::Wrap),
        ..Default::default()
    };
    let (n_train, n_test) = (train.len(), test.len());
    let train_loader = DataLoader::new(train.clone(), args.batch_size, loader_opts)?;
    let test_opts = LoaderOptions {
        shuffle: false,
        shard: shard(ShardTail::Uneven),
        ..Default::default()
    };
    // Batches of 32: inference on larger ones was slower here (28x28 images, two cores).
    let test_loader = DataLoader::new(test.clone(), 32, test_opts)?;
    let load_secs = start.elapsed().as_secs_f64();

    let mut model = build_model(
        &args.model,
        classes.len(),
        shape,
        args.seed,
        resume.as_ref().map(|(p, c)| (p.as_path(), c)),
    )?;
    let input = [1, shape[0], shape[1], shape[2]];
    let s = summary(model.as_mut(), &input)?;
    let optimizer = optimizer_by_name(
        &name_of(args.optimizer),
        &OptimizerSettings {
            lr: args.lr,
            momentum: args.momentum,
            weight_decay: args.weight_decay,
            nesterov: args.nesterov,
        },
    )?;
    let schedule = schedule_by_name(
        &name_of(args.schedule),
        &ScheduleSettings {
            epochs: args.epochs,
            step_size: args.step_size,
            milestones: args.milestones.clone(),
            gamma: args.gamma,
            patience: args.patience,
        },
        optimizer.as_ref(),
    )?;
    let mut trainer = Trainer::new(model, optimizer, schedule);
    trainer.loss = trainer.loss.label_smoothing(args.label_smoothing);
    trainer.clip_grad_norm = args.clip_grad;
    if args.test_time_flip() {
        trainer.test_time = TestTime::Flip;
    }
    trainer.collect_grad_stats(args.grad_stats);

    let out = match (&args.out, &resume) {
        (Some(o), _) => o.clone(),
        (None, Some((p, _))) => p
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        (None, None) => {
            // A fallback to the subset names itself, whatever was asked for.
            let d = match console.tag() {
                Some(tag) => tag.trim_matches(['[', ']']).to_string(),
                None => name_of(args.dataset),
            };
            PathBuf::from("runs").join(format!("{}-{d}-{}", args.model, now_timestamp()))
        }
    };
    if lead {
        std::fs::create_dir_all(&out).map_err(|e| io(&out, e))?;
    }
    if let Some((p, ckpt)) = &resume {
        trainer.restore(ckpt)?;
        console.line(format!(
            "resumed {} at epoch {}, batch {} (step {})",
            p.display(),
            trainer.position.epoch + 1,
            trainer.position.batch,
            trainer.position.step
        ));
    }
    if let Some(w) = &world {
        // After restoring: every rank starts from rank 0's state.
        trainer.distribute(DataParallel::new(w.clone()))?;
    }
    let args_json = serde_json::to_string(&args).map_err(json_err)?;
    let config = serde_json::to_string_pretty(&args).map_err(json_err)?;
    if lead {
        write_atomic(&out.join("config.json"), config.as_bytes())?;
    }
    let json = |v: &[f32]| serde_json::to_string(v).expect("numbers serialise");
    let meta = vec![
        ("run.args".to_string(), args_json),
        ("model.name".into(), args.model.clone()),
        (
            "model.input".into(),
            serde_json::to_string(&shape).expect("numbers serialise"),
        ),
        ("data.name".into(), data_name.clone()),
        (
            "data.classes".into(),
            serde_json::to_string(&classes).expect("strings serialise"),
        ),
        ("data.mean".into(), json(mean)),
        ("data.std".into(), json(std)),
        (distributed::RANKS_KEY.into(), ranks.to_string()),
    ];

    console.line(format!("data      {data_name}: {n_train} training and {n_test} {eval_name} images of {shape:?}, {} classes", classes.len()));
    console.line(format!(
        "model     {}: {} parameters, {:.2} M multiply-adds per image",
        args.model,
        s.total_params,
        s.total_macs as f64 / 1e6
    ));
    // Ranks on threads of this process are replicas; over MPI, ranks.
    let rank_is = if replica { "replica" } else { "rank" };
    let per_batch = if world.is_some() {
        format!("{ranks} {rank_is}s x {}", args.batch_size)
    } else {
        args.batch_size.to_string()
    };
    console.line(format!(
        "training  {} epochs of {} batches of {per_batch}, {:?} lr {}, schedule {:?}, augment {}, seed {}, {threads} threads{}",
        args.epochs, train_loader.len(), args.optimizer, trainer.optimizer.lr(),
        args.schedule, args.augment, args.seed,
        if world.is_some() { format!(" per {rank_is}") } else { String::new() }
    ));
    console.line(format!("output    {}", out.display()));

    let mut last_eval = None;
    let mut train_secs = 0.0;
    let mut eval_secs = 0.0;
    while trainer.position.epoch < args.epochs {
        let epoch_start = Instant::now();
        let label = format!("epoch {}/{}", trainer.position.epoch + 1, args.epochs);
        let mut bar = Progress::new(console, &label, train_loader.len(), trainer.position.batch);
        let done = trainer.train_epoch(&train_loader, args.max_steps, |s| bar.step(s))?;
        bar.finish();
        train_secs += epoch_start.elapsed().as_secs_f64();
        if !done {
            let path = out.join(CHECKPOINT_FILE);
            // The epoch's running sums of all ranks, saved once (see Trainer::distribute).
            trainer.gather_totals()?;
            if lead {
                save_training_checkpoint(&path, &mut trainer, &meta)?;
            }
            console.line(format!(
                "stopped after step {} (--max-steps), in epoch {} at batch {}/{}; resume with --resume {}",
                trainer.position.step, trainer.position.epoch + 1, trainer.position.batch,
                train_loader.len(), path.display()
            ));
            return Ok(());
        }
        let eval_start = Instant::now();
        let eval = trainer.evaluate(&test_loader)?;
        eval_secs += eval_start.elapsed().as_secs_f64();
        let grad_table = trainer
            .grad_stats
            .as_ref()
            .map(|g| format_grad_stats(&g.summary()));
        let r = trainer.finish_epoch(Some(&eval), epoch_start.elapsed().as_secs_f64())?;
        console.line(format!(
            "epoch {:>2}/{}  lr {:.2e}  train loss {:.4} acc {:6.2}%  {eval_name} loss {:.4} acc {:6.2}%{}  top-5 err {}  {:6.1} s  {:6.0} img/s",
            r.epoch, args.epochs, r.lr, r.train_loss, 100.0 * r.train_accuracy, eval.loss(),
            100.0 * eval.accuracy(),
            // With test-time flips, the accuracy of the images alone too.
            eval.single_view_accuracy().map_or(String::new(), |a| format!(" (alone {:.2}%)", 100.0 * a)),
            eval.top5_error().map_or("-".into(), |e| format!("{:.2}%", 100.0 * e)),
            r.seconds, r.images_per_second
        ));
        if let Some(t) = grad_table {
            console.line(format!("gradients over epoch {}:\n{t}", r.epoch));
        }
        if lead {
            let title = format!("{} on {}", args.model, data_name);
            let files = write_epoch_files(&out, &mut trainer, &meta, &title)?;
            if let (PlotText::NoFont, 1) = (files.plot, r.epoch) {
                console.line("curves.png has no text: no TrueType font found (apt-get install fonts-dejavu-core, or set TAPEGRAD_FONT)");
            }
        }
        last_eval = Some(eval);
    }
    let eval = match last_eval {
        Some(e) => e,
        None => trainer.evaluate(&test_loader)?,
    };
    let report = Report::new(
        format!(
            "{} on {} after {} epoch{}",
            args.model,
            data_name,
            trainer.position.epoch,
            if trainer.position.epoch == 1 { "" } else { "s" }
        ),
        &eval,
    );
    let text = console.tagged(&report);
    if lead {
        write_atomic(&out.join("report.txt"), format!("{text}\n").as_bytes())?;
    }
    console.line("");
    console.line(&report);
    console.line("");
    console.line(format!(
        "total wall time {:.1} s (loading {load_secs:.1} s, training {train_secs:.1} s, {eval_name} {eval_secs:.1} s); results in {}",
        start.elapsed().as_secs_f64(), out.display()
    ));
    if let Some(p) = trainer.parallel() {
        let s = p.stats();
        console.line(format!(
            "data parallel: {ranks} {rank_is}s, {} gradient all-reduces of {:.2} MB in {} buckets, {:.1} ms each on average; buffer broadcasts {:.1} s in all",
            s.steps, s.bytes as f64 / s.steps.max(1) as f64 / 1e6, s.buckets, 1e3 * s.all_reduce_per_step(), s.broadcast_seconds
        ));
    }
    Ok(())
}
