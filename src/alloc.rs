//! The allocator and its tuning, shared by the `reconciler` binary and the benchmark
//! (whose in-process full runs must allocate as the binary does, or its figures would
//! measure another program).
//!
//! mimalloc (v3): flat memory whatever the number of goods (glibc's per-thread arenas
//! grew with the run) and less CPU per allocation. Three options differ from its defaults:
//! arena memory is committed on demand (committed eagerly in transparent huge pages, the
//! peak RSS of a full run was 80-230 MB), freed pages go back to the OS after
//! [`PURGE_DELAY_MS`] instead of a second, and no transparent huge pages (see
//! [`tune`]). mimalloc's own environment variables (`MIMALLOC_PURGE_DELAY`,
//! `MIMALLOC_ARENA_EAGER_COMMIT`, `MIMALLOC_ALLOW_THP`) win over these.

use std::os::raw::c_long;

/// How long a freed page stays committed before it is returned. At 0 a full run spent a
/// fifth of its CPU re-faulting the pages it had just returned (page faults and kernel
/// zeroing, `perf record --call-graph dwarf`). Measured on the benchmark's data (200,000
/// goods, `full`, three runs each): 0 ms 6.8-7.0 s, peak RSS 65-68 MB; 10 ms 6.0-6.3 s,
/// 68-75 MB; 100 ms 5.8-6.2 s, 88-96 MB (and 83-94 MB with a target wiped); mimalloc's
/// default, 1 s, 113-129 MB. Batches live ~10-50 ms, so 100 ms keeps a worker's pages
/// between two batches.
pub const PURGE_DELAY_MS: c_long = 100;

// mimalloc's option numbers (`mi_option_t` in mimalloc.h, v3).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Sets the options; call first thing in `main`, before any thread starts.
pub fn tune() {
    let unset = |name: &str| std::env::var_os(name).is_none();
    // SAFETY: mimalloc's documented option setter, called before any thread allocates.
    unsafe {
        if unset("MIMALLOC_ARENA_EAGER_COMMIT") {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
        if unset("MIMALLOC_PURGE_DELAY") {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
        }
        // Transparent huge pages: every page purged and used again was faulted back as a
        // 2 MB page, zeroed whole (`perf` of a full run with 1% drift: `clear_page_erms`
        // under `do_huge_pmd_anonymous_page`, 6% of the process). mimalloc reads its
        // option when it starts, before `main`, so the process-wide switch it would have
        // set is set here too; the kernel checks it at every fault. 200,000 goods, `full`,
        // three pairs alternating (`MIMALLOC_ALLOW_THP=1` for the old behaviour): CPU
        // 3.46 -> 3.31 s clean, 3.83 -> 3.69 s with 2,000 goods drifted, peak RSS 87-98 ->
        // 59-64 MB.
        if unset("MIMALLOC_ALLOW_THP") {
            libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options read back from mimalloc are the tuning's, unless mimalloc's own
    /// environment set them.
    #[test]
    fn tune_sets_the_options_unless_mimallocs_environment_does() {
        tune();
        // SAFETY: mimalloc's documented option getter.
        let (purge, eager) = unsafe {
            (libmimalloc_sys::mi_option_get(PURGE_DELAY), libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT))
        };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(v) => assert_eq!(purge.to_string(), v),
            Err(_) => assert_eq!(purge, PURGE_DELAY_MS),
        }
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            assert_eq!(eager, 0);
        }
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            // SAFETY: mimalloc's option getter; prctl reads a flag of this process.
            let (thp, disabled) = unsafe {
                (libmimalloc_sys::mi_option_get(ALLOW_THP), libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0))
            };
            assert_eq!((thp, disabled), (0, 1), "transparent huge pages stay off");
        }
    }
}
