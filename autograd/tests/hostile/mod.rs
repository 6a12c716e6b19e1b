//! What the hostile-input suites share: dimensions drawn from the edges of `usize`, tensors
//! built from them where they can exist, and a check that a call returns rather than crashes.
//!
//! Each suite's binary runs under [`Capped`], an allocator that refuses any single allocation
//! above [`CAP`]: a valid but huge result (a pad of 2^31 cells, an unfold with a kernel of 2^31)
//! then takes the same path as an allocation the operating system refuses, fast and without
//! using the memory. An infallible allocation left on such a path would abort the binary, so
//! the suite also finds those.

#![allow(dead_code)]

use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tapegrad_autograd::{rng, Result, Tensor};

/// The largest single allocation granted: 256 MiB.
pub const CAP: usize = 256 << 20;

/// The system allocator, refusing (returning null for) any block above [`CAP`].
pub struct Capped;

// SAFETY: every call forwards to `System` with the caller's layout and pointer unchanged, or
// returns null, which `GlobalAlloc` allows for a failed allocation; `dealloc` only ever sees
// blocks `System` allocated.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` and `layout` are the caller's, from this allocator, which is `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Dimensions at the edges: empty, one, small, odd, and 2^31, 2^62 and `usize::MAX`.
pub const DIMS: [usize; 7] = [0, 1, 2, 7, 1 << 31, 1 << 62, usize::MAX];

/// Proptest cases per property: enough to meet each edge several times, few enough to run
/// in seconds in the debug profile.
pub const CASES: u32 = 48;

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

pub fn dim() -> impl Strategy<Value = usize> {
    proptest::sample::select(DIMS.to_vec())
}

/// A shape of rank up to `max_rank` from [`DIMS`].
pub fn dims(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 0..=max_rank)
}

/// A small count or an edge: what options (strides, paddings, kernels, k) are drawn from.
pub fn option() -> impl Strategy<Value = usize> {
    prop_oneof![2 => 0usize..4, 1 => dim()]
}

/// Mostly a value of `usual` (so that calls get past their first check and reach the
/// kernels), one time in ten an edge from [`DIMS`].
pub fn usually(usual: std::ops::Range<usize>) -> impl Strategy<Value = usize> + Clone {
    prop_oneof![9 => usual, 1 => dim()]
}

/// A shape of rank up to 4 whose dimensions are mostly small (0 to 4), now and then an edge.
pub fn shape() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(usually(0..5), 0..=4)
}

/// A shape and another related to it, as operands that broadcast or multiply usually are:
/// each dimension kept, set to 1 or to an edge, and leading ones maybe dropped.
pub fn related() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|d| {
        let n = d.len();
        let each = d
            .iter()
            .map(|&x| prop_oneof![6 => Just(x), 2 => Just(1usize), 1 => dim()].boxed())
            .collect::<Vec<_>>();
        (Just(d), each, 0..=n).prop_map(|(d, e, drop)| {
            let e = e[drop.min(e.len())..].to_vec();
            (d, e)
        })
    })
}

/// An axis, in range or not, negative or not.
pub fn axis() -> impl Strategy<Value = isize> {
    prop_oneof![4 => -5isize..5, 1 => Just(isize::MIN), 1 => Just(isize::MAX)]
}

/// A tensor of `dims` if one can exist (within [`CAP`]), with values from `seed`; otherwise a
/// small one of the same rank, so that every call still gets a tensor.
pub fn tensor(dims: &[usize], seed: u64) -> Tensor {
    Tensor::try_randn(dims, &mut rng(seed)).unwrap_or_else(|_| {
        let small: Vec<usize> = dims.iter().map(|&d| d.min(2)).collect();
        Tensor::randn(small, &mut rng(seed))
    })
}

/// Runs `f`, which must return (`Ok` or `Err`): a panic fails the property with its message.
pub fn returns<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Checked {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let msg = e.to_string();
            if msg.is_empty() {
                return Err(fail(format!("{what}: an error without a message")));
            }
            Ok(())
        }
        Err(p) => Err(fail(format!("{what} panicked: {}", message(&p)))),
    }
}

/// Runs an infallible `f`: it may panic, but only with a message naming what went wrong.
pub fn returns_or_explains<T>(what: &str, f: impl FnOnce() -> T) -> Checked {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => Ok(()),
        Err(p) if !message(&p).is_empty() => Ok(()),
        Err(_) => Err(fail(format!("{what} panicked without a message"))),
    }
}

/// What a check gives a property: nothing, or why it failed.
pub type Checked = std::result::Result<(), TestCaseError>;

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

fn message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
