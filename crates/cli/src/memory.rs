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

/// glibc's own initial threshold, kept from then on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Serve large allocations from `mmap` at a fixed threshold, so freed
/// buffers are returned to the kernel at once. Call before any thread
/// starts. An explicit `MALLOC_MMAP_THRESHOLD_` in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_large_buffers() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    // SAFETY: `mallopt` only changes glibc's tuning parameters, which it
    // reads under its own locks; it takes no pointer and no memory is
    // handed out or freed by the call.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Other allocators and C libraries: their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers() {}
