//! Images per second of data-parallel training steps, and the time spent averaging gradients.
//!
//! ```text
//! cargo build --release --features mpi --example distributed_bench
//! target/release/examples/distributed_bench --model lenet5-modern --batch 64 --threads 2
//! mpirun -np 2 target/release/examples/distributed_bench --model lenet5-modern --batch 32 --threads 1
//! ```
//!
//! `--no-overlap` averages the gradients after backward instead of during it.
//!
//! Each rank runs `--steps` training steps (forward, backward, gradient all-reduce, SGD) on a
//! fixed random batch of `--batch` images, after one warm-up step. Rank 0 prints the median
//! step time of the slowest rank, the global images per second (ranks x batch / step time),
//! and the all-reduce time per step (after a barrier, so that waiting for a slower rank is
//! not counted in it; rank 0's wait is printed beside it). Run alone, it is a world of one (no all-reduce).

use std::rc::Rc;
use std::time::Instant;
use tapegrad::autograd::{rng, Error, Result, Tape, Tensor};
use tapegrad::distributed::{Communicator, DataParallel, MpiWorld, Reduce};
use tapegrad::models::{build, default_input};
use tapegrad::nn::loss::VarLosses;
use tapegrad::nn::optim::{GradMap, Optimizer, Sgd, SgdConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(comm: Rc<dyn Communicator>, args: &[String]) -> Result<()> {
    let value = |flag: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let number = |flag: &str, default: &str| -> Result<usize> {
        value(flag, default)
            .parse()
            .map_err(|e| Error::invalid("distributed_bench", format!("{flag}: {e}")))
    };
    let name = value("--model", "lenet5-modern");
    let batch = number("--batch", "32")?;
    let steps = number("--steps", "10")?;
    let threads = number("--threads", "1")?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::invalid("distributed_bench", e.to_string()))?;
    let [_, c, h, w] = default_input(&name);
    let mut model = build(&name, 10, [c, h, w], 1)?;
    let params = model.num_parameters();
    let x = Tensor::randn([batch, c, h, w], &mut rng(comm.rank() as u64));
    let labels: Vec<usize> = (0..batch).map(|i| (i + comm.rank()) % 10).collect();
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        ..Default::default()
    })?;
    let overlap = !args.iter().any(|a| a == "--no-overlap");
    let mut ddp = DataParallel::new(comm.clone()).with_overlap(overlap);
    ddp.broadcast_model(model.as_mut())?;
    let mut times = Vec::new();
    let mut reduce_before = 0.0;
    let mut reduce_times = Vec::new();
    let mut wait_times = Vec::new();
    for step in 0..=steps {
        comm.barrier()?;
        let t = Instant::now();
        ddp.sync_buffers(model.as_mut())?;
        let mut grads = {
            let tape = Tape::new();
            ddp.attach(&tape, model.as_mut());
            let loss = model
                .forward(tape.input(x.clone()))?
                .cross_entropy(&labels)?;
            GradMap::from_grads(model.as_mut(), &loss.backward()?)
        };
        // Waiting here for the slowest rank is kept out of the all-reduce time (with overlap,
        // the ranks may still be exchanging buckets during it).
        let waited = Instant::now();
        comm.barrier()?;
        let waited = waited.elapsed().as_secs_f64();
        ddp.average_gradients(model.as_mut(), &mut grads)?;
        opt.step_with(model.as_mut(), &grads)?;
        let mut secs = [t.elapsed().as_secs_f64()];
        comm.all_reduce_f64(&mut secs, Reduce::Max)?;
        let reduced = ddp.stats().all_reduce_seconds;
        if step > 0 {
            times.push(secs[0]);
            reduce_times.push(reduced - reduce_before);
            wait_times.push(waited);
        }
        reduce_before = reduced;
    }
    // The same number of floats all-reduced as one plain buffer, for comparison.
    let mut raw_times = Vec::new();
    let mut buf = vec![1.0f32; params];
    for _ in 0..3 {
        comm.barrier()?;
        let t = Instant::now();
        comm.all_reduce(&mut buf, Reduce::Mean)?;
        raw_times.push(t.elapsed().as_secs_f64());
    }
    let raw = median(raw_times);
    let step = median(times);
    let reduce = median(reduce_times);
    let wait = median(wait_times);
    if comm.rank() == 0 {
        println!(
            "{name:<16} {} rank(s) x {threads} thread(s) x batch {batch:<4} {} step {:8.1} ms  {:8.1} img/s  all-reduce {:7.2} ms/step ({:.2} MB of gradients, {params} parameters; rank {} waited {:.1} ms for the others; one buffer of as many floats: {:.2} ms)",
            comm.size(),
            if overlap { "overlap   " } else { "no overlap" },
            1e3 * step,
            (comm.size() * batch) as f64 / step,
            1e3 * reduce,
            (params * 4) as f64 / 1e6,
            comm.rank(),
            1e3 * wait,
            1e3 * raw,
        );
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let comm: Rc<dyn Communicator> = match MpiWorld::init() {
        Ok(w) => Rc::new(w),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = run(comm.clone(), &args) {
        eprintln!("error on rank {} of {}: {e}", comm.rank(), comm.size());
        comm.abort(1);
    }
}
