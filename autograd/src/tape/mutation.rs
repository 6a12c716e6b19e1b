//! Mutation testing of derivative rules (feature `rule-mutation`, for tests only): backward
//! multiplies the gradients that the chosen ops' rules send to their inputs by a factor, as if
//! those rules were wrong by that much. A test then checks that `gradcheck` notices a rule off
//! by 0.1% while passing the true one. Without the feature none of this is compiled.

use super::{InputGrads, Var};
use std::cell::{Cell, RefCell};

/// Which rules are scaled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every rule backward runs.
    All,
    /// The rules of the ops with this name (`Op::name`).
    Op(&'static str),
}

thread_local! {
    static ACTIVE: RefCell<Option<(Selection, f32)>> = const { RefCell::new(None) };
    static HITS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` with the rules `selection` names scaled by `factor` on this thread, and returns its
/// result with the number of rule runs that were scaled (0: the op never ran a rule, so the
/// mutation could not have been seen). The previous selection is restored afterwards, also if
/// `f` panics.
pub fn with_scaled_rules<R>(
    selection: Selection,
    factor: f32,
    f: impl FnOnce() -> R,
) -> (R, usize) {
    struct Restore(Option<(Selection, f32)>, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.with(|a| *a.borrow_mut() = self.0.take());
            HITS.with(|h| h.set(self.1));
        }
    }
    let previous = ACTIVE.with(|a| a.borrow_mut().replace((selection, factor)));
    let restore = Restore(previous, HITS.with(|h| h.replace(0)));
    let result = f();
    let hits = HITS.with(Cell::get);
    drop(restore);
    (result, hits)
}

/// Called by backward with each rule's output: scales it if the op is selected.
pub(crate) fn apply<'a>(op: &'static str, grads: InputGrads<'a>) -> InputGrads<'a> {
    let factor = ACTIVE.with(|a| match &*a.borrow() {
        Some((Selection::All, f)) => Some(*f),
        Some((Selection::Op(name), f)) if *name == op => Some(*f),
        _ => None,
    });
    let Some(factor) = factor else {
        return grads;
    };
    HITS.with(|h| h.set(h.get() + 1));
    grads
        .into_iter()
        .map(|g| g.map(|g: Var<'a>| g.mul_scalar(factor)))
        .collect()
}
