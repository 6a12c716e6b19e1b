//! Which module is running, as a summary sees it: every module's `forward` goes through
//! [`scoped`] (the derived ones, the layers, `Sequential`), which reports its entry and exit to
//! the recorder of the tape it runs on, if a summary is recording that tape. A module is known
//! by its address and type ([`ModuleId`]); the summary names it from a walk over the model
//! ([`Module::visit_modules`]), so a child called directly (`self.conv1.forward(x)`) is seen
//! and named as in the state dict. (A derived module whose inherent `forward` is called from
//! its own Rust module bypasses the derived `Module::forward`: its layers are still seen and
//! named, but it has no row of its own; keeping the inherent method private avoids that.)
//!
//! The recorders live in a process-wide list keyed by tape, not in a thread-local: a forward
//! on another tape (another thread's, or a nested one) is not recorded into a summary, and one
//! on the summary's tape is recorded whichever thread runs it. While no summary is being taken
//! the cost of `scoped` is one atomic load.

use super::Recorder;
use crate::module::Module;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tapegrad_autograd::{Result, Tape, Var};

/// A module's identity while a summary runs: its address and type name. Parent and first
/// child may share an address, never a type; zero-sized layers (`ReLU`) may share both, and are
/// told apart by the order in which they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleId {
    addr: usize,
    type_name: &'static str,
}

impl ModuleId {
    /// The identity of `m` (what [`Module::module_id`] returns unless a wrapper forwards it).
    pub fn of<M: Module + ?Sized>(m: &M) -> ModuleId {
        ModuleId {
            addr: m as *const M as *const () as usize,
            type_name: m.type_name(),
        }
    }
}

/// How many summaries are recording (the fast path when 0).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The recorders, by tape address.
static RECORDERS: Mutex<Vec<(usize, Recorder)>> = Mutex::new(Vec::new());

fn tape_key(tape: &Tape) -> usize {
    tape as *const Tape as usize
}

/// Runs `f` with the recorder of `tape`, if a summary is recording it.
fn with_recorder<R>(tape: &Tape, f: impl FnOnce(&mut Recorder) -> R) -> Option<R> {
    let mut all = RECORDERS.lock().unwrap_or_else(|e| e.into_inner());
    all.iter_mut()
        .find(|(t, _)| *t == tape_key(tape))
        .map(|(_, r)| f(r))
}

/// Records `tape` into `rec` until dropped (also when the model's forward panics).
pub(super) struct Recording<'a> {
    tape: &'a Tape,
}

impl<'a> Recording<'a> {
    pub(super) fn start(tape: &'a Tape, rec: Recorder) -> Recording<'a> {
        let mut all = RECORDERS.lock().unwrap_or_else(|e| e.into_inner());
        all.push((tape_key(tape), rec));
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Recording { tape }
    }

    pub(super) fn finish(self) -> Recorder {
        let rec = take(self.tape);
        std::mem::forget(self);
        rec.unwrap_or_default()
    }
}

fn take(tape: &Tape) -> Option<Recorder> {
    let mut all = RECORDERS.lock().unwrap_or_else(|e| e.into_inner());
    let i = all.iter().position(|(t, _)| *t == tape_key(tape))?;
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    Some(all.swap_remove(i).1)
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        take(self.tape);
    }
}

/// Runs `f(m, x)` (the module's own computation) as module `m`: while a summary records `x`'s
/// tape, its entry and exit are recorded. Every `Module::forward` that composes or computes
/// calls it once, around its body; the derived `forward` does.
pub fn scoped<'t, M: Module + ?Sized>(
    m: &mut M,
    x: Var<'t>,
    f: impl FnOnce(&mut M, Var<'t>) -> Result<Var<'t>>,
) -> Result<Var<'t>> {
    scoped_as(None, m, x, f)
}

/// [`scoped`], with a name to use when the walk over the model does not name `m` (a child
/// of a hand-written module that lists no children).
pub(super) fn scoped_as<'t, M: Module + ?Sized>(
    hint: Option<&str>,
    m: &mut M,
    x: Var<'t>,
    f: impl FnOnce(&mut M, Var<'t>) -> Result<Var<'t>>,
) -> Result<Var<'t>> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return f(m, x);
    }
    let id = m.module_id();
    let tape = x.tape();
    let opened = with_recorder(tape, |r| r.enter(id, hint, m.type_name())).unwrap_or(false);
    if !opened {
        return f(m, x);
    }
    let y = f(m, x);
    let params = m.num_parameters();
    let info = m.describe();
    with_recorder(tape, |r| r.exit(x, y.as_ref().ok().copied(), params, info));
    y
}
