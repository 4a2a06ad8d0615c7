//! Allocator tuning for training loops on the CPU.
//!
//! candle allocates a fresh buffer for every tensor. With glibc's default malloc, buffers of
//! a few megabytes are `mmap`ped and returned to the kernel when freed, so every step pays
//! page faults again for memory it just released (measured here: about a third of a Conv4
//! training step). [`retain_freed_memory`] keeps such buffers in the heap instead. It changes
//! process-wide malloc settings, so it is a call the application makes, never something the
//! library does by itself.

/// Keeps freed buffers of up to 32 MiB in glibc's heap (`M_MMAP_THRESHOLD` at its 32 MiB
/// maximum, `M_TRIM_THRESHOLD` at 1 GiB). Returns `true` when the settings were applied;
/// `false` on other C libraries, where it does nothing.
///
/// Cost: the process keeps up to 1 GiB of freed memory for reuse instead of returning it.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc and
        // takes plain integers.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
