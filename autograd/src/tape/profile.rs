//! Where the time of a step goes, op by op (PyTorch's `profiler.key_averages()`, in small).
//!
//! With profiling on, the tape notes the wall-clock time at every node it records. An op's value
//! is computed just before it is recorded, so the time since the previous node is that op's
//! forward time (with whatever model code ran between the two). Backward times each node's chain
//! rule, including the summing of its gradients into its inputs' (fan-out). Times are wall-clock:
//! the kernels inside an op run on every core.

use super::Op;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Calls and time of one op over the profiled steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpTime {
    pub op: &'static str,
    /// Forward calls recorded (leaves included: `input`, `param`).
    pub calls: usize,
    pub forward: Duration,
    /// Chain rules run.
    pub backward_calls: usize,
    pub backward: Duration,
}

impl OpTime {
    pub fn total(&self) -> Duration {
        self.forward + self.backward
    }
}

/// Per-op times, slowest total first. `Display` prints a table with each op's share.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub ops: Vec<OpTime>,
}

impl Profile {
    /// Forward and backward time of every op together.
    pub fn total(&self) -> Duration {
        self.ops.iter().map(OpTime::total).sum()
    }

    /// Adds another profile's calls and times (steps are profiled one tape each).
    pub fn merge(&mut self, other: &Profile) {
        for o in &other.ops {
            match self.ops.iter_mut().find(|m| m.op == o.op) {
                Some(m) => {
                    m.calls += o.calls;
                    m.forward += o.forward;
                    m.backward_calls += o.backward_calls;
                    m.backward += o.backward;
                }
                None => self.ops.push(o.clone()),
            }
        }
        self.ops
            .sort_by(|a, b| b.total().cmp(&a.total()).then(a.op.cmp(b.op)));
    }

    /// Calls and times divided by `steps` (rounded down for calls): the mean of one step.
    pub fn per_step(&self, steps: usize) -> Profile {
        let k = steps.max(1);
        let ops = self
            .ops
            .iter()
            .map(|o| OpTime {
                op: o.op,
                calls: o.calls / k,
                forward: o.forward / k as u32,
                backward_calls: o.backward_calls / k,
                backward: o.backward / k as u32,
            })
            .collect();
        Profile { ops }
    }

    /// The row of one op, if it ran.
    pub fn op(&self, name: &str) -> Option<&OpTime> {
        self.ops.iter().find(|o| o.op == name)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total().as_secs_f64().max(f64::MIN_POSITIVE);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "{:<16} {:>7} {:>11} {:>11} {:>11} {:>7}",
            "op", "calls", "forward ms", "backward ms", "total ms", "share"
        )?;
        for o in &self.ops {
            writeln!(
                f,
                "{:<16} {:>7} {:>11.3} {:>11.3} {:>11.3} {:>6.1}%",
                o.op,
                o.calls,
                ms(o.forward),
                ms(o.backward),
                ms(o.total()),
                100.0 * o.total().as_secs_f64() / total
            )?;
        }
        write!(
            f,
            "{:<16} {:>7} {:>11.3} {:>11.3} {:>11.3}",
            "all",
            self.ops.iter().map(|o| o.calls).sum::<usize>(),
            ms(self.ops.iter().map(|o| o.forward).sum()),
            ms(self.ops.iter().map(|o| o.backward).sum()),
            ms(self.total())
        )
    }
}

/// The running tallies of a profiling tape.
pub(crate) struct Profiler {
    /// When the last node was recorded (or profiling began, or backward ended).
    last: Instant,
    ops: HashMap<&'static str, OpTime>,
}

impl Profiler {
    pub(crate) fn new() -> Profiler {
        Profiler {
            last: Instant::now(),
            ops: HashMap::new(),
        }
    }

    fn row(&mut self, op: Op) -> &mut OpTime {
        self.ops.entry(op.name).or_insert_with(|| OpTime {
            op: op.name,
            ..OpTime::default()
        })
    }

    /// A node of `op` was recorded now: the time since the previous one is its forward time.
    pub(crate) fn recorded(&mut self, op: Op) {
        let now = Instant::now();
        let spent = now - self.last;
        self.last = now;
        let row = self.row(op);
        row.calls += 1;
        row.forward += spent;
    }

    /// The chain rule of `op` ran for `spent`.
    pub(crate) fn backward(&mut self, op: Op, spent: Duration) {
        let row = self.row(op);
        row.backward_calls += 1;
        row.backward += spent;
    }

    /// Backward has ended: the next node's forward time starts now.
    pub(crate) fn restart(&mut self) {
        self.last = Instant::now();
    }

    pub(crate) fn profile(&self) -> Profile {
        let mut p = Profile::default();
        p.merge(&Profile {
            ops: self.ops.values().cloned().collect(),
        });
        p
    }
}
