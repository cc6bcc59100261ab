//! How the server's heap sits in memory.

/// Keeps the process out of transparent huge pages.
///
/// mimalloc asks the kernel for huge pages on its arena (`MADV_HUGEPAGE`, its
/// `allow_thp` default), and a 2 MiB huge page is resident as a whole however
/// little of it is in use: after start-up and 64 sign-ups, 14 of the server's
/// 30 MB of heap was such padding (`AnonHugePages` in `/proc/PID/smaps`; the
/// same run with `MIMALLOC_ALLOW_THP=0` peaked at 56.7 MB instead of 71.5 MB,
/// issue 23). mimalloc reads that switch from the environment before `main`
/// runs, so the server sets the kernel's per-process flag itself, which also
/// covers the arena mimalloc has already marked. A heap this size gains little
/// from huge pages' fewer TLB misses (the page loads measured the same).
pub fn keep_heap_in_small_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integers only and writes no memory.
        let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_leaves_transparent_huge_pages() {
        super::keep_heap_in_small_pages().unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        // The field is there since Linux 6.5; older kernels only get the call.
        if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
        }
    }
}
