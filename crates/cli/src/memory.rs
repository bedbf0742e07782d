//! The allocator's policy for this process, set once at start.
//!
//! glibc serves an allocation of at least `M_MMAP_THRESHOLD` bytes with its
//! own `mmap` and unmaps it when it is freed, but by default it raises that
//! threshold to the size of every such block freed (up to 32 MiB). After the
//! first 8 MiB pack or read window is freed, every later pack, fragment,
//! read window and sealed chunk comes from the per-thread arenas, which keep
//! the pages of freed blocks: the process's resident memory becomes the sum
//! of each arena's high-water mark, not what is in use. A fixed threshold
//! gives large buffers back to the kernel as soon as they are freed.
//!
//! Measured on a backup of a 1 GB tree and its restore (docs/performance.md,
//! fourth round): peak RSS 243 → 173 MiB (backup) and 214–236 → 136–140 MiB
//! (restore), with the same setting as the environment variable
//! `MALLOC_MMAP_THRESHOLD_=131072`.
//!
//! Each such block comes fresh from the kernel, which maps it one 4 KiB page
//! at a time as it is first written: an 8 MiB pack costs 2,048 page faults.
//! Blocks of 2 MiB or more are marked for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`, which Linux honours when THP is `always` or
//! `madvise`), so the aligned 2 MiB parts of a pack fault in once each
//! (docs/performance.md, tenth round).

/// glibc's own initial threshold, kept from then on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Set glibc's policy: serve large allocations from `mmap` at a fixed
/// threshold, so freed buffers are returned to the kernel at once, and keep
/// at most two arenas per core. Call before any thread starts. An explicit
/// `MALLOC_MMAP_THRESHOLD_` or `MALLOC_ARENA_MAX` in the environment wins.
///
/// glibc gives threads up to eight arenas per core; each keeps the pages of
/// the small blocks freed in it, so a backup's dozen threads (workers,
/// helpers, packer, uploader, peer writers) held about 20 MiB of arenas.
/// Two per core, as many as a backup's workers: on a 1 GB first backup,
/// peak RSS 90-93 → 85-87 MiB, no slower (one per core held as little but
/// cost more CPU; docs/performance.md, thirteenth round).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn set_policy() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = libc::c_int::try_from(2 * cores).unwrap_or(libc::c_int::MAX);
    for (variable, param, value) in [
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, arenas),
    ] {
        if std::env::var_os(variable).is_some() {
            continue;
        }
        // SAFETY: `mallopt` only changes glibc's tuning parameters, which it
        // reads under its own locks; it takes no pointer and no memory is
        // handed out or freed by the call.
        unsafe {
            libc::mallopt(param, value);
        }
    }
}

/// Other allocators and C libraries: their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn set_policy() {}

/// Blocks this large or larger are backed by huge pages where they can be.
#[cfg(target_os = "linux")]
const HUGE: usize = 2 << 20;

/// The system allocator, asking for transparent huge pages for blocks of
/// [`HUGE`] bytes or more. Everything else is the system allocator's.
#[derive(Debug)]
pub struct Allocator;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
// SAFETY: every block is the system allocator's, allocated, resized and
// freed by it with the caller's layout; `advise_huge` only changes the
// kernel's paging policy for pages the block occupies.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `GlobalAlloc::alloc`.
        let p = unsafe { std::alloc::System.alloc(layout) };
        advise_huge(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `GlobalAlloc::alloc_zeroed`.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        advise_huge(p, layout.size());
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `GlobalAlloc::realloc`.
        let p = unsafe { std::alloc::System.realloc(p, layout, size) };
        advise_huge(p, size);
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract for `GlobalAlloc::dealloc`.
        unsafe { std::alloc::System.dealloc(p, layout) }
    }
}

/// Mark the pages of a block of `len` bytes at `p` for huge pages, if it is
/// that large: the whole pages it spans, which for a block glibc mapped on
/// its own is exactly its mapping (so the mapping is not split, and glibc
/// can still `mremap` it). A hint: a kernel without THP ignores it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge(p: *mut u8, len: usize) {
    if p.is_null() || len < HUGE {
        return;
    }
    let page = rustix::param::page_size();
    let start = p as usize & !(page - 1);
    let end = (p as usize + len + page - 1) & !(page - 1);
    // SAFETY: the range covers only pages of the block just allocated (and
    // of its allocator's header on the first page); MADV_HUGEPAGE changes
    // no contents and no mapping, only how the kernel backs it.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    /// The `VmFlags` line of the mapping that holds `addr`, from
    /// /proc/self/smaps.
    fn vm_flags_at(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside && line.starts_with("VmFlags:") {
                return line.to_string();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    #[allow(unsafe_code)]
    fn large_blocks_ask_for_huge_pages_and_small_ones_do_not() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("SKIPPED: this kernel has no transparent huge pages");
            return;
        }
        let big = Layout::from_size_align(8 << 20, 8).unwrap();
        let small = Layout::from_size_align(64 << 10, 8).unwrap();
        // SAFETY: valid non-zero layouts; each block is freed once with its
        // own layout below.
        let (b, s) = unsafe { (Allocator.alloc(big), Allocator.alloc(small)) };
        assert!(!b.is_null() && !s.is_null());
        let (b_flags, s_flags) = (vm_flags_at(b as usize), vm_flags_at(s as usize));
        // SAFETY: allocated above with these layouts.
        unsafe {
            Allocator.dealloc(b, big);
            Allocator.dealloc(s, small);
        }
        assert!(
            b_flags.split_whitespace().any(|f| f == "hg"),
            "an 8 MiB block is marked for huge pages: {b_flags}"
        );
        assert!(
            !s_flags.split_whitespace().any(|f| f == "hg"),
            "a 64 KiB block is left alone: {s_flags}"
        );
    }
}
