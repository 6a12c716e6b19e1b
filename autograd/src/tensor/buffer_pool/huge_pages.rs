//! Transparent huge pages for large tensor storage.
//!
//! An im2col matrix or a batch of activations is tens to hundreds of MiB streamed through by
//! every kernel. In 4 KiB pages that is one TLB entry per 1,024 values; Linux can back it with
//! 2 MiB pages instead, but where transparent huge pages are set to `madvise` (the common
//! default) only for memory that asks. Allocators such as mimalloc ask for their whole heap;
//! the system allocator does not. So a fresh buffer of at least [`HUGE_MIN`] bytes asks for
//! itself, before its pages are first touched: the 2 MiB-aligned part of its capacity is
//! advised `MADV_HUGEPAGE`. Nothing else changes: the advice neither reads nor writes the
//! memory, and where the kernel has no huge page to give it falls back to small ones.

/// Huge pages are this large on x86-64 and on most AArch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Buffers below this many bytes are left as they are: at most one huge page of theirs could
/// be aligned, and the system allocator serves them from its heap.
pub(super) const HUGE_MIN: usize = 8 << 20;

/// The 2 MiB-aligned interior `[start, end)` of the `len` bytes at address `addr`, if the
/// buffer is at least [`HUGE_MIN`] bytes long and the interior is not empty.
pub(super) fn aligned_interior(addr: usize, len: usize) -> Option<(usize, usize)> {
    if len < HUGE_MIN {
        return None;
    }
    let start = addr.checked_next_multiple_of(HUGE_PAGE)?;
    let end = addr.checked_add(len)? / HUGE_PAGE * HUGE_PAGE;
    (end > start).then_some((start, end))
}

/// Advises the huge pages of `v`'s capacity (see the module's documentation). Call it before
/// the buffer's pages are first written, else they are already small pages.
pub(super) fn advise(v: &mut Vec<f32>) {
    let bytes = v.capacity() * std::mem::size_of::<f32>();
    if let Some((start, end)) = aligned_interior(v.as_mut_ptr() as usize, bytes) {
        advise_range(start, end - start);
    }
}

#[cfg(target_os = "linux")]
fn advise_range(start: usize, len: usize) {
    // SAFETY: `madvise` takes any page-aligned range of the process's address space; with
    // MADV_HUGEPAGE it only marks how the kernel may back the range later, and never reads,
    // writes, frees or moves memory, so no reference anywhere can observe it. The range is
    // 2 MiB-aligned and lies inside the capacity of a live `Vec` the caller holds exclusively
    // (see `aligned_interior`). Its result is ignored: it is advice (EINVAL where the kernel
    // has no transparent huge pages).
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_range(_start: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interior_is_aligned_and_inside() {
        let mb = 1 << 20;
        // Too small, however aligned.
        assert_eq!(aligned_interior(0, HUGE_MIN - 1), None);
        assert_eq!(aligned_interior(HUGE_PAGE, HUGE_MIN - 4), None);
        // Aligned at both ends: all of it.
        assert_eq!(
            aligned_interior(HUGE_PAGE, HUGE_MIN),
            Some((HUGE_PAGE, HUGE_PAGE + HUGE_MIN))
        );
        // glibc's large blocks start 16 bytes into a page: the first and last partial huge
        // pages are left out.
        let addr = 7 * HUGE_PAGE + 4096 + 16;
        let (s, e) = aligned_interior(addr, 20 * mb).unwrap();
        assert_eq!((s, e), (8 * HUGE_PAGE, 17 * HUGE_PAGE));
        assert!(s >= addr && e <= addr + 20 * mb);
        // Ending at the top of the address space: the interior ends below it.
        let (s, e) = aligned_interior(usize::MAX - HUGE_MIN, HUGE_MIN).unwrap();
        assert!(s > usize::MAX - HUGE_MIN && e - s == HUGE_MIN - HUGE_PAGE);
        // Past it: no overflow, no interior.
        assert_eq!(aligned_interior(usize::MAX - HUGE_MIN + 2, HUGE_MIN), None);
        assert_eq!(aligned_interior(usize::MAX - 3 * mb, HUGE_MIN), None);
    }

    #[test]
    fn advised_buffers_keep_their_values() {
        let n = (3 * HUGE_MIN) / 4 + 123;
        let mut v: Vec<f32> = Vec::with_capacity(n);
        advise(&mut v);
        v.extend((0..n).map(|i| i as f32));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        // An empty vector has no capacity to advise.
        advise(&mut Vec::new());
    }
}
