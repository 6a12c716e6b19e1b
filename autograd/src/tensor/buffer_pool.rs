//! Recycled storage for tensors.
//!
//! A training step allocates the same activations, im2col matrices and gradients every step, and
//! frees them all by its end. Fresh memory costs twice: large blocks come straight from the
//! operating system, which zeroes every page on first touch (in a ResNet-18 step that took a
//! third of the time), and smaller ones are zero-filled by the allocator even when the kernel
//! overwrites every element anyway. So the storage of a tensor of at least [`POOL_MIN`] elements
//! is not freed when the last tensor using it is dropped but kept here, by length, and the next
//! kernel asking for that length (or up to half less) reuses it, zeroing it only if it needs
//! zeros. What is kept is bounded (see [`set_buffer_pool_limit`]); beyond the bound, buffers are
//! freed as usual.
//!
//! Idle buffers count in the process's resident memory. So that they do not make its peak, the
//! tensors' storage, alive and idle, stays within the most ever alive at once plus
//! [`HEADROOM`]: a request it cannot serve first frees idle buffers (the largest first) beyond
//! that, and so does a buffer from elsewhere when it becomes a tensor's storage. Measured on GoogLeNet inference (batch 8), keeping every size a pass asks for made the
//! peak 940 MiB, where the pass holds 150 MiB at once.
//!
//! Smaller buffers, from [`small::SMALL_MIN`] values up, are kept too, but per thread and without a
//! lock (see [`small`]): a LeNet-5 step makes dozens of them (weight gradients, fully
//! connected activations), and the system allocator hands each back to the operating system
//! and faults its pages in again.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

mod huge_pages;
mod small;

/// Buffers shorter than this (256 KiB of f32) are left to the allocator. Measured on LeNet-5
/// training steps (batch 64), recycling from this size on rather than from 4 MiB was 12% faster.
pub const POOL_MIN: usize = 1 << 16;

/// Idle bytes kept by default: 1 GiB. A training step frees nearly everything by its end, and
/// what the pool cannot keep then is faulted in again by the next step: with 512 MiB, ResNet-50
/// training at batch 16 ran at 4.9 img/s, with 1 GiB at 5.9 (peak 1,825 against 1,879 MiB), and
/// VGG-16 inference at 3.8 against 5.0 img/s (1,429 MiB either way); at batch 8, 5.7-5.9
/// against 6.3-6.4 and VGG-16 training 1.3-1.6 against 1.6-1.7 img/s, peaks within 16 MiB.
/// With 2 GiB, VGG-16 training at batch 8 peaked at 2,555 MiB instead of 1,973.
const DEFAULT_LIMIT: usize = 1 << 30;

struct Pool {
    /// Idle buffers by capacity.
    free: BTreeMap<usize, Vec<Vec<f32>>>,
    /// Bytes held in `free`.
    held: usize,
    /// Bytes of tensor storage of the pool's sizes alive, and their most so far.
    live: usize,
    most_live: usize,
    limit: usize,
    reused: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: BTreeMap::new(),
    held: 0,
    live: 0,
    most_live: 0,
    limit: DEFAULT_LIMIT,
    reused: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // A panic while holding the lock cannot leave the map inconsistent (each operation is one
    // insert or remove), so a poisoned lock is still usable.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets how many bytes of idle tensor storage are kept for reuse (default 1 GiB; 0 turns reuse
/// off). Buffers already kept beyond the new limit are freed.
pub fn set_buffer_pool_limit(bytes: usize) {
    small::set_enabled(bytes > 0);
    let mut p = pool();
    p.limit = bytes;
    while p.held > p.limit {
        let Some(&cap) = p.free.keys().next() else {
            break;
        };
        drop(pop(&mut p, cap));
    }
}

/// What the pool holds now: idle bytes, and how many allocations it has served so far (small
/// buffers kept per thread included).
pub fn buffer_pool_stats() -> (usize, u64) {
    let p = pool();
    (
        p.held + SMALL_HELD.load(Ordering::Relaxed),
        p.reused + SMALL_REUSED.load(Ordering::Relaxed),
    )
}

/// Idle bytes in every thread's small-buffer cache, and the requests they served.
static SMALL_HELD: AtomicUsize = AtomicUsize::new(0);
static SMALL_REUSED: AtomicU64 = AtomicU64::new(0);

fn take(len: usize) -> Option<Vec<f32>> {
    if len < POOL_MIN {
        return small::take(len);
    }
    let mut p = pool();
    // The smallest idle buffer that holds `len` values and wastes at most half of itself.
    let Some(cap) = p.free.range(len..=2 * len).next().map(|(&c, _)| c) else {
        // The caller allocates `len` values.
        let evicted = beyond_bound(&mut p, len.saturating_mul(4));
        drop(p);
        // Freed outside the lock.
        drop(evicted);
        return None;
    };
    let mut v = pop(&mut p, cap);
    p.reused += 1;
    drop(p);
    // Within its capacity: no reallocation. The caller zeroes or overwrites what it needs.
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    Some(v)
}

/// Storage alive and idle stays within the most alive at once plus this many bytes. Measured at
/// batch 8 (peak MiB and images/s, two interleaved rounds): VGG-16 inference peaked at 1,164
/// with twice the most alive as the bound and at 1,098-1,099 with 128 MiB of headroom (4.7-4.9
/// against 5.1-5.2 img/s); its training at 2,082-2,088 against 2,020-2,055 MiB, but at 1.3-1.5
/// against 1.2 img/s; ResNet-50, ResNet-18, GoogLeNet, AlexNet and LeNet-5 within noise.
const HEADROOM: usize = 128 << 20;

/// Takes one idle buffer of capacity `cap` (which must be kept) out of the pool.
fn pop(p: &mut Pool, cap: usize) -> Vec<f32> {
    let list = p.free.get_mut(&cap).expect("a kept capacity");
    let v = list.pop().expect("kept lists are not empty");
    if list.is_empty() {
        p.free.remove(&cap);
    }
    p.held -= cap * 4;
    v
}

/// The idle buffers to free (outside the lock) so that storage alive and idle, with `pending`
/// bytes about to be allocated, stays within the most alive at once plus [`HEADROOM`].
fn beyond_bound(p: &mut Pool, pending: usize) -> Vec<Vec<f32>> {
    let alive = p.live.saturating_add(pending);
    let most = p.most_live.max(alive);
    evict(
        p,
        alive
            .saturating_add(p.held)
            .saturating_sub(most.saturating_add(HEADROOM)),
    )
}

/// Idle buffers of at least `bytes` (all if fewer), the largest first, for the caller to free.
fn evict(p: &mut Pool, bytes: usize) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    let mut freed = 0;
    while freed < bytes {
        let Some(&cap) = p.free.keys().next_back() else {
            break;
        };
        out.push(pop(p, cap));
        freed += cap * 4;
    }
    out
}

/// A fresh buffer of `len` copies of `v`, or an error naming `op` if the allocator refuses it:
/// `try_reserve_exact` reports what `vec!` would abort the process on.
fn try_filled(op: &'static str, len: usize, v: f32) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        op,
        bytes: len.saturating_mul(std::mem::size_of::<f32>()),
    })?;
    huge_pages::advise(&mut out);
    out.resize(len, v);
    Ok(out)
}

/// A buffer of `len` copies of `v` (reused or fresh, written once either way), or an error
/// naming `op` if it cannot be allocated.
pub(crate) fn try_full(op: &'static str, len: usize, v: f32) -> Result<Vec<f32>> {
    match take(len) {
        Some(mut buf) => {
            buf.fill(v);
            Ok(buf)
        }
        None => try_filled(op, len, v),
    }
}

/// A buffer of `len` zeros, or an error naming `op` if it cannot be allocated.
pub(crate) fn try_zeroed(op: &'static str, len: usize) -> Result<Vec<f32>> {
    try_full(op, len, 0.0)
}

/// A buffer of `len` values the caller overwrites entirely: a reused buffer keeps whatever it
/// held (valid numbers, just stale), so only kernels that write every element may use this.
/// An error naming `op` if it cannot be allocated.
pub(crate) fn try_for_overwrite(op: &'static str, len: usize) -> Result<Vec<f32>> {
    match take(len) {
        Some(v) => Ok(v),
        None => try_filled(op, len, 0.0),
    }
}

/// [`try_for_overwrite`] for kernels that cannot fail otherwise (their output is no larger
/// than an input that exists): panics with the error's message rather than aborting.
pub(crate) fn for_overwrite(len: usize) -> Vec<f32> {
    try_for_overwrite("tensor storage", len).unwrap_or_else(|e| panic!("{e}"))
}

fn give_back(v: Vec<f32>) {
    let cap = v.capacity();
    if cap < POOL_MIN {
        small::give_back(v);
        return;
    }
    let mut p = pool();
    if p.held
        .checked_add(cap * 4)
        .is_none_or(|total| total > p.limit)
    {
        return;
    }
    p.held += cap * 4;
    p.free.entry(cap).or_default().push(v);
}

/// A tensor's storage: a `Vec<f32>` that goes back to the pool when dropped.
#[derive(PartialEq)]
pub(crate) struct Storage(Vec<f32>);

impl Storage {
    pub(crate) fn new(v: Vec<f32>) -> Storage {
        if v.capacity() >= POOL_MIN {
            let mut p = pool();
            p.live += v.capacity() * 4;
            p.most_live = p.most_live.max(p.live);
            // A buffer the pool did not hand out (collected by a kernel, or from the caller)
            // comes back to it when dropped: the bound is kept here too, else such buffers
            // pile up idle. GoogLeNet inference (batch 8) gained 40 MB of idle concatenations
            // every pass.
            let evicted = beyond_bound(&mut p, 0);
            drop(p);
            drop(evicted);
        }
        Storage(v)
    }

    /// The vector itself, which then leaves the pool's care.
    pub(crate) fn into_vec(mut self) -> Vec<f32> {
        let v = std::mem::take(&mut self.0);
        forget_live(v.capacity());
        v
    }
}

impl Clone for Storage {
    fn clone(&self) -> Storage {
        let mut v = for_overwrite(self.0.len());
        v.copy_from_slice(&self.0);
        Storage::new(v)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        forget_live(v.capacity());
        give_back(v);
    }
}

/// A storage of `cap` values is alive no more.
fn forget_live(cap: usize) {
    if cap >= POOL_MIN {
        let mut p = pool();
        p.live = p.live.saturating_sub(cap * 4);
    }
}

impl Deref for Storage {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl DerefMut for Storage {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused_zeroed_and_small_ones_are_not_kept() {
        // A length no other test uses, so parallel tests do not take this buffer.
        let len = POOL_MIN + 12_345;
        let mut v = for_overwrite(len);
        v.fill(7.0);
        let ptr = v.as_ptr();
        drop(Storage::new(v));
        let (held, _) = buffer_pool_stats();
        assert!(held >= len * 4);
        let again = try_zeroed("t", len).unwrap();
        assert_eq!(again.as_ptr(), ptr, "the kept buffer is handed out again");
        assert!(again.iter().all(|&x| x == 0.0));
        drop(Storage::new(vec![1.0; 10]));
        assert!(
            take(10).is_none(),
            "below SMALL_MIN, buffers go back to the allocator"
        );
        // A buffer taken out of its storage is the caller's.
        let s = Storage::new(again);
        let out = s.into_vec();
        assert_eq!(out.len(), len);
    }

    /// Buffers the pool never handed out (a kernel's collected output) come back to it when
    /// dropped; storage alive and idle still stays within the most alive plus the headroom,
    /// however many of them pass through.
    #[test]
    fn buffers_from_elsewhere_stay_within_the_bound() {
        // A length no other test uses, so that no kernel takes these buffers meanwhile.
        let len = (1 << 20) + 4_321;
        let most = pool().most_live;
        for _ in 0..(most + HEADROOM) / (len * 4) + 16 {
            drop(Storage::new(vec![1.0; len]));
        }
        let p = pool();
        assert!(
            p.live + p.held <= p.most_live + HEADROOM,
            "alive {} and idle {} bytes, the most alive {}",
            p.live,
            p.held,
            p.most_live
        );
    }
}
