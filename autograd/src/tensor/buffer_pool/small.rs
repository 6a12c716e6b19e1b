//! Small idle buffers, kept per thread.
//!
//! Buffers of [`SMALL_MIN`] to [`super::POOL_MIN`] values are many and short-lived, so they are
//! kept where they are dropped, in a cache of the dropping thread: no lock, and the thread that
//! allocates a training step's tensors (the one recording the tape) is the one that drops them.
//! Each thread keeps at most [`THREAD_LIMIT`] bytes; a thread's cache is freed when it exits.
//! [`set_enabled`]`(false)` stops the caching on every thread and, through a generation count,
//! makes each thread free what it kept the next time it comes here.

use super::{SMALL_HELD, SMALL_REUSED};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Buffers shorter than this (4 KiB of f32) are left to the allocator, whose small-size bins
/// are fast and keep their memory.
pub const SMALL_MIN: usize = 1 << 10;

/// Idle bytes a thread keeps: 16 MiB, more than a LeNet-5 step's small buffers.
const THREAD_LIMIT: usize = 16 << 20;

static ENABLED: AtomicBool = AtomicBool::new(true);
/// Bumped by [`set_enabled`]: a cache of an older generation is emptied before use.
static GENERATION: AtomicU64 = AtomicU64::new(0);

struct Cache {
    /// Idle buffers by capacity.
    free: BTreeMap<usize, Vec<Vec<f32>>>,
    /// Bytes held in `free`.
    held: usize,
    generation: u64,
}

impl Cache {
    /// Frees what a cache of an older generation kept.
    fn refresh(&mut self) {
        let now = GENERATION.load(Ordering::Relaxed);
        if self.generation != now {
            self.clear();
            self.generation = now;
        }
    }

    fn clear(&mut self) {
        SMALL_HELD.fetch_sub(self.held, Ordering::Relaxed);
        self.held = 0;
        self.free.clear();
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.clear();
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { free: BTreeMap::new(), held: 0, generation: 0 })
    };
}

/// Turns caching on or off on every thread (off frees each thread's buffers on its next visit).
pub(super) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// An idle buffer of this thread for `len` values (contents stale), if one of capacity `len` to
/// `2 len` is kept.
pub(super) fn take(len: usize) -> Option<Vec<f32>> {
    if len < SMALL_MIN || !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    // `try_with` fails only while the thread is exiting: then the allocator serves.
    CACHE
        .try_with(|c| {
            let mut c = c.borrow_mut();
            c.refresh();
            let cap = *c.free.range(len..=2 * len).next()?.0;
            let list = c.free.get_mut(&cap)?;
            let mut v = list.pop()?;
            if list.is_empty() {
                c.free.remove(&cap);
            }
            c.held -= cap * 4;
            SMALL_HELD.fetch_sub(cap * 4, Ordering::Relaxed);
            SMALL_REUSED.fetch_add(1, Ordering::Relaxed);
            // Within its capacity: no reallocation.
            if v.len() >= len {
                v.truncate(len);
            } else {
                v.resize(len, 0.0);
            }
            Some(v)
        })
        .ok()
        .flatten()
}

/// Keeps `v` in this thread's cache if it is of a cached size and the cache has room; otherwise
/// frees it.
pub(super) fn give_back(v: Vec<f32>) {
    let cap = v.capacity();
    if cap < SMALL_MIN || !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    // A buffer the cache does not take (full, or the thread exiting) is dropped here.
    let _ = CACHE.try_with(move |c| {
        let mut c = c.borrow_mut();
        c.refresh();
        if c.held + cap * 4 > THREAD_LIMIT {
            return;
        }
        c.held += cap * 4;
        SMALL_HELD.fetch_add(cap * 4, Ordering::Relaxed);
        c.free.entry(cap).or_default().push(v);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_reused_on_their_thread_within_the_limit() {
        // Lengths no other test uses, on a thread of its own, so parallel tests do not interfere.
        std::thread::spawn(|| {
            let len = 4 * SMALL_MIN + 321;
            let v = vec![3.0f32; len];
            let ptr = v.as_ptr();
            give_back(v);
            let again = take(len).expect("the kept buffer");
            assert_eq!(again.as_ptr(), ptr);
            assert_eq!(again.len(), len);
            // Up to twice the length asked for is reused, no more.
            give_back(again);
            assert!(take(len / 2 - 1).is_none());
            let shorter = take(len / 2 + 1).expect("half of it is wasted at most");
            assert_eq!(shorter.as_ptr(), ptr);
            // Beyond the thread's limit, buffers are freed.
            let many = THREAD_LIMIT / ((SMALL_MIN + 7) * 4) + 2;
            for _ in 0..many {
                give_back(vec![0.0f32; SMALL_MIN + 7]);
            }
            let kept = CACHE.with(|c| c.borrow().held);
            assert!(kept <= THREAD_LIMIT, "{kept}");
            assert!(kept > THREAD_LIMIT - (SMALL_MIN + 7) * 8, "{kept}");
            // Another thread does not see this thread's buffers.
            let other = std::thread::spawn(move || take(SMALL_MIN + 7).is_none());
            assert!(other.join().unwrap());
            // Turned off (from any thread), caching stops and what this thread kept is freed
            // on its next visit.
            std::thread::spawn(|| set_enabled(false)).join().unwrap();
            assert!(take(SMALL_MIN + 7).is_none());
            give_back(vec![0.0f32; SMALL_MIN + 7]);
            ENABLED.store(true, Ordering::Relaxed);
            assert!(
                take(SMALL_MIN + 7).is_none(),
                "the old generation's buffers are gone"
            );
            assert_eq!(CACHE.with(|c| c.borrow().held), 0);
        })
        .join()
        .unwrap();
    }
}
