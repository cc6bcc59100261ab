//! How the server's heap sits in memory: the allocator's and the kernel's
//! settings `main` applies before anything else runs.

/// `mi_option_purge_delay` in mimalloc.h (the same in its v2 and v3); the Rust
/// bindings name the options around it but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc give freed memory back to the OS at once. By default it purges
/// later, on further activity of the thread that freed it: a password hash
/// (argon2id, then 19 MiB) on a blocking thread that then idled kept its memory, and
/// page load on top of that doubled the server's peak RSS (issue 7: ~60 → ~125 MB).
pub fn release_freed_memory_promptly() {
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Keeps the process out of transparent huge pages.
///
/// mimalloc asks the kernel for huge pages on its arena (`MADV_HUGEPAGE`, its
/// `allow_thp` default), and a 2 MiB huge page is resident as a whole however
/// little of it is in use: after start-up and 64 sign-ups the heap was 29 MB
/// with huge pages and 15 MB without (`RssAnon`; `AnonHugePages` in
/// `/proc/PID/smaps`), and the peak RSS 69.8 MB against 55.4 MB (issue 23,
/// docs/performance.md). mimalloc reads its own switch (`MIMALLOC_ALLOW_THP`)
/// from the environment before `main` runs, so the server sets the kernel's
/// per-process flag itself, which also covers the arena mimalloc has already
/// marked. What huge pages would save in TLB misses was not measured apart.
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
