//! The platform layer: every call into the operating system that std does not offer.
//!
//! `posix.rs` holds what Linux and macOS share (spawning a job in a session of its own, reaping
//! it with its peak memory, signalling its process group, `poll`). `linux.rs` and `macos.rs`
//! hold what differs, with the same functions on each side: how a process's exit is watched
//! (a pidfd; a kqueue), orphan reaping (a subreaper; none on macOS, where orphans go to
//! launchd), the OOM killer's preferences (Linux only), the memory limit of the cgroup fanout
//! runs in (Linux only), the resident memory of a process group (/proc; libproc) and the unit
//! of `ru_maxrss` (KiB; bytes). Nothing above this module names a platform.
//!
//! Every `unsafe` block of the program lives in this module, each with a `// SAFETY:` line.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("fanout runs on Linux and macOS");

pub(crate) mod meta;
mod posix;
pub(crate) mod trust;

use std::time::Duration;

pub(crate) use nix::sys::signal::Signal;
pub(crate) use platform::{
    become_subreaper, exit_watch, group_usage, prefer_oom_victim, process_name, protect_from_oom,
    thread_waits, MemoryCap, EXIT_WATCH_RECHECK,
};
pub(crate) use posix::{
    arg_max, group_alive, is_root, own_cpu, peer_closed, poll_readable, reap_orphans, signal_group,
    spawn_job, wait4, waited, Reaped, StatAt,
};

/// What the processes of one process group use now, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Resident memory, bytes.
    pub rss: u64,
    /// CPU time used so far (user and system) by the processes alive now. On macOS in the
    /// kernel's task time units, which are nanoseconds on Intel and larger on Apple silicon:
    /// comparable between two readings, not exact.
    pub cpu: Duration,
    /// Some process of it is busy: running, waiting for a CPU, or (Linux) in an uninterruptible
    /// wait in the kernel, such as a page fault. Memory that does not grow meanwhile may only
    /// be waiting for its turn.
    pub runnable: bool,
}

/// The tightest memory limit fanout runs under and the room left below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CapReading {
    /// The limit, bytes.
    pub limit: u64,
    /// The limit minus what is in use (reclaimable page cache not counted), bytes.
    pub headroom: u64,
}
