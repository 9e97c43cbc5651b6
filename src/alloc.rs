//! The memory allocator: jemalloc, its settings, the size it really gives
//! a request, and what it holds.
//!
//! Chosen by measurement (docs/memory.md): under `-m 64`, with glibc's
//! malloc the patterns where threads free what others allocated peaked at
//! 1.5-1.9x the limit, because each thread's arena kept what it had freed
//! (mimalloc: 1.5-1.6x); jemalloc with one arena and a short decay stays
//! within 1.01x.

use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its settings from this symbol before `main` (measured in
/// docs/memory.md):
/// - `narenas:1`: one arena, so that a block freed by one thread is reused
///   by the next allocation of any thread. With its default of four arenas
///   per core, or even two, a thread kept allocating fresh pages while the
///   ones another thread had freed waited for the decay: 80-104 MiB peak
///   RSS for 600 MiB of 100 KiB writes under `-m 64`, 64-65 MiB with one;
/// - `dirty_decay_ms:1000,muzzy_decay_ms:0`: freed pages go back to the
///   system within about a second (default: ten), and at once, not
///   through a second "muzzy" stage;
/// - `background_thread:true`: a jemalloc thread does that purging, so
///   memory is returned even when the server is idle.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&'static std::ffi::c_char> = Some(
    // SAFETY: a pointer to a static, NUL-terminated string.
    unsafe { &*c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true".as_ptr() },
);

/// The bytes the allocator really takes for a request of `len` bytes: its
/// size class (0 for 0, which allocates nothing).
pub fn size_class(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    // SAFETY: nallocx only computes; 0 flags ask for default alignment.
    unsafe { tikv_jemalloc_sys::nallocx(len, 0) }
}

/// What the allocator holds, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Heap {
    /// In live allocations.
    pub allocated: usize,
    /// In pages the allocator keeps resident: live allocations, freed
    /// blocks not yet returned, and its own metadata.
    pub resident: usize,
}

/// The allocator's current figures (refreshed by this call).
pub fn heap() -> Heap {
    // Reading stats.* refreshes nothing until the epoch moves.
    let _ = epoch::advance();
    Heap {
        allocated: stats::allocated::read().unwrap_or(0),
        resident: stats::resident::read().unwrap_or(0),
    }
}

/// Returns every arena's freed pages to the system now, instead of after
/// the decay time (after `cache_memlimit` lowers the limit).
pub fn purge() {
    // SAFETY: a write-only control that takes no value.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            // MALLCTL_ARENAS_ALL (4096) names every arena.
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap_or(4096)
}
