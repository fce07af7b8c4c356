//! Allocator settings for training. Each step frees and re-allocates the same
//! activation buffers (hundreds of MB per layer at batch 1,024). glibc returns each one
//! to the kernel and mimalloc by default purges them after a delay, so every step paid
//! for fresh zeroed pages: 10-14 % of a training profile was `clear_page`. Keeping freed
//! memory mapped costs a few percent of peak RSS (1.51 -> 1.58 GB on the default net).

use std::os::raw::c_long;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (libmimalloc-sys names only
/// some options); the test below pins it by its documented default of 1,000 ms.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never purge freed memory back to the OS. Call first thing in `main`. Returns false,
/// having changed nothing that matters, when the binary's global allocator is not
/// mimalloc: the option is mimalloc's, and a binary that forgot its `#[global_allocator]`
/// trains about a third slower on page faults (train-bench did, for a week).
#[must_use]
pub fn keep_freed_memory() -> bool {
    // SAFETY: sets an integer option; mimalloc reads it on each purge decision.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
    global_allocator_is_mimalloc()
}

/// Whether a fresh heap allocation lands in mimalloc's heap.
pub fn global_allocator_is_mimalloc() -> bool {
    let probe = std::hint::black_box(Box::new([0u8; 64]));
    // SAFETY: only asks whether the address lies in a mimalloc region.
    unsafe { libmimalloc_sys::mi_is_in_heap_region(probe.as_ptr().cast()) }
}

/// The current purge delay in ms (-1: never).
pub fn purge_delay_ms() -> c_long {
    // SAFETY: reads an integer option.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }
}

/// Peak resident memory of this process in MiB (`VmHWM`), where Linux reports it.
pub fn peak_rss_mib() -> Option<f64> {
    scoring::proc_status_kib("self", "VmHWM:").map(|kib| kib as f64 / 1024.0)
}

/// Restart the peak-RSS count (Linux: `clear_refs` 5), so one measurement's peak is not
/// an earlier one's. Where it is unsupported the peak stays cumulative.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 1000, "index 15 is not mimalloc 3's purge_delay");
        }
        // This test binary keeps the system allocator, so the call says it did not matter.
        assert!(!keep_freed_memory(), "the test binary's allocator is not mimalloc");
        assert_eq!(purge_delay_ms(), -1);
    }

    #[test]
    fn peak_rss_sees_a_large_allocation() {
        reset_peak_rss();
        let before = peak_rss_mib().expect("Linux reports VmHWM");
        // Larger than any earlier peak, so the check holds even where the reset is refused.
        let mib = before as usize + 128;
        let big = vec![1u8; mib << 20];
        std::hint::black_box(&big);
        let after = peak_rss_mib().unwrap();
        assert!(after >= mib as f64, "peak {after} MiB after touching {mib} MiB");
    }
}
