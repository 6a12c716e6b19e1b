//! Checks of data-parallel training over MPI, run by many processes at once.
//!
//! ```text
//! cargo build --release --features mpi --example distributed_check
//! mpirun --allow-run-as-root --oversubscribe -np 2 target/release/examples/distributed_check
//! target/release/examples/distributed_check --failure-test
//! ```
//!
//! Under `mpirun` every rank runs the same checks (broadcast, N ranks = one process with an N
//! times larger batch, resume, shards); rank 0 prints one line per check and the
//! count. A check that fails on any rank ends the job with a non-zero status (and that rank's
//! message). `--failure-test` is not started by `mpirun`: it starts
//! `mpirun -np 2 <itself> --fail-rank 1` and checks that the job ends within 30 s, with a
//! non-zero status and rank 1's error, while rank 0 waits for it in a collective.

mod checks;

use checks::{fail, run_checks, trainer};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tapegrad::autograd::Result;
use tapegrad::distributed::{Communicator, DataParallel, MpiWorld};

fn worker(comm: &Rc<dyn Communicator>, fail_rank: Option<usize>) -> Result<usize> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .map_err(|e| fail(format!("thread pool: {e}")))?;
    if let Some(r) = fail_rank {
        let mut t = trainer(1)?;
        t.distribute(DataParallel::new(comm.clone()))?;
        if comm.rank() == r {
            return Err(fail(format!("rank {r} failed on purpose")));
        }
        // The others wait for it, as they would for a rank that died in a training step.
        comm.barrier()?;
        return Err(fail("the barrier returned although a rank had failed"));
    }
    let checks = run_checks(comm)?;
    if comm.rank() == 0 {
        checks.iter().for_each(|c| println!("ok: {c}"));
    }
    Ok(checks.len())
}

/// Starts a job whose rank 1 fails and checks how it ends.
fn failure_test() -> Result<()> {
    let me = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let started = Instant::now();
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(&me)
        .args(["--fail-rank", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("mpirun: {e}")))?;
    let limit = Duration::from_secs(30);
    while child.try_wait().map_err(|e| fail(e.to_string()))?.is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("the job with a failing rank still ran after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let secs = started.elapsed().as_secs_f64();
    if out.status.success() {
        return Err(fail(format!(
            "the job with a failing rank exited 0:\n{text}"
        )));
    }
    if !text.contains("error on rank 1 of 2") || !text.contains("rank 1 failed on purpose") {
        return Err(fail(format!(
            "the job's output does not name rank 1's error:\n{text}"
        )));
    }
    println!(
        "ok: a rank that fails ends the job in {secs:.1} s with {} and its message",
        out.status
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--failure-test") {
        match failure_test() {
            Ok(()) => println!("1 passed, 0 failed"),
            Err(e) => {
                eprintln!("error: {e}");
                println!("0 passed, 1 failed");
                std::process::exit(1);
            }
        }
        return;
    }
    let fail_rank = args
        .iter()
        .position(|a| a == "--fail-rank")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let comm: Rc<dyn Communicator> = match MpiWorld::init() {
        Ok(w) => Rc::new(w),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    match worker(&comm, fail_rank) {
        Ok(n) if comm.rank() == 0 => println!("{n} passed, 0 failed"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("error on rank {} of {}: {e}", comm.rank(), comm.size());
            comm.abort(1);
        }
    }
}
