//! macOS: the same functions as `linux.rs`, from kqueue and libproc.
//!
//! What macOS does not have, and what fanout does instead:
//! - no pidfd: a kqueue watching the job's pid for `NOTE_EXIT` is the descriptor that wakes the
//!   supervisor's `poll`;
//! - no child subreaper: a job's processes that outlive their parent are reparented to launchd,
//!   not to fanout. fanout still stops a job's whole process group when the job ends, but a
//!   process that left the group (setsid, a daemon) is neither seen nor reaped by fanout;
//! - no OOM score: fanout cannot ask the kernel to kill a job before itself;
//! - no cgroups: the memory budget is what sysinfo calls available memory;
//! - no /proc: a process group's resident memory and CPU time come from `proc_listpids` and
//!   `proc_pidinfo` (CPU time of the processes alive now only, without their waited-for
//!   children's), and `ru_maxrss` is in bytes, not KiB.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::event::{EvFlags, EventFilter, FilterFlag, KEvent, Kqueue};

use super::{CapReading, Usage};

/// `ru_maxrss` is in bytes on macOS.
pub(super) const MAXRSS_UNIT: u64 = 1;

/// `POSIX_SPAWN_SETSID` from <spawn.h> (macOS 10.15+; the libc crate does not define it).
pub(super) const SPAWN_SETSID: libc::c_int = 0x0400;

/// `PROC_PGRP_ONLY` from <libproc.h>: list the processes of one process group.
const PROC_PGRP_ONLY: u32 = 2;

/// A descriptor that becomes readable once `pid` has exited: a kqueue with a one-shot
/// `EVFILT_PROC`/`NOTE_EXIT` filter on it. `None` when it cannot be set up (the process has
/// already exited, for one); callers then poll for the exit.
pub(crate) fn exit_watch(pid: i32) -> Option<OwnedFd> {
    let kq = Kqueue::new().ok()?;
    let exit = KEvent::new(
        usize::try_from(pid).ok()?,
        EventFilter::EVFILT_PROC,
        EvFlags::EV_ADD | EvFlags::EV_ONESHOT,
        FilterFlag::NOTE_EXIT,
        0,
        0,
    );
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    kq.kevent(&[exit], &mut [], Some(now)).ok()?;
    Some(kq.into())
}

/// How often the supervisor looks for the exit even though the kqueue has not woken it: a
/// safety net, in case a kqueue inside `poll` is ever less reliable than a pidfd.
pub(crate) const EXIT_WATCH_RECHECK: Option<Duration> = Some(Duration::from_millis(250));

/// macOS has no child subreaper: orphans go to launchd, which reaps them.
pub(crate) fn become_subreaper() {}

/// Orphans are never fanout's children on macOS, so there is nothing to find.
pub(super) fn exited_child() -> Option<i32> {
    None
}

/// macOS has no OOM score to adjust.
pub(crate) fn prefer_oom_victim(_pid: i32) {}

/// macOS has no per-thread usage counts: a slow directory read is taken as the file
/// system's.
pub(crate) fn thread_waits() -> Option<u64> {
    None
}

/// macOS has no OOM score to adjust.
pub(crate) fn protect_from_oom() {}

/// The name of process `pid` (`p_comm`), if it exists.
pub(crate) fn process_name(pid: u32) -> Option<Vec<u8>> {
    let pid = libc::c_int::try_from(pid).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: proc_name writes at most `buffersize` bytes into `buf`, which outlives the call.
    let n = unsafe { libc::proc_name(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    (n > 0).then(|| buf[..n as usize].to_vec())
}

/// Resident bytes and CPU time per process group, for the groups asked about.
pub(crate) fn group_usage(pgids: &[i32]) -> HashMap<i32, Usage> {
    let mut pids: Vec<libc::c_int> = Vec::new();
    pgids
        .iter()
        .map(|&pgid| {
            let usage = group_members(pgid, &mut pids)
                .iter()
                .filter_map(|&pid| task_usage(pid))
                .fold(Usage::default(), |sum, u| Usage {
                    rss: sum.rss + u.rss,
                    cpu: sum.cpu + u.cpu,
                    runnable: sum.runnable || u.runnable,
                });
            (pgid, usage)
        })
        .collect()
}

/// The pids of process group `pgid`, in `buf`.
fn group_members(pgid: i32, buf: &mut Vec<libc::c_int>) -> &[libc::c_int] {
    let Ok(group) = u32::try_from(pgid) else {
        return &[];
    };
    let mut capacity = 256;
    loop {
        buf.clear();
        buf.resize(capacity, 0);
        let bytes = (capacity * size_of::<libc::c_int>()) as libc::c_int;
        // SAFETY: the buffer holds `bytes` bytes and outlives the call, which writes at most
        // that many and returns how many it wrote.
        let n =
            unsafe { libc::proc_listpids(PROC_PGRP_ONLY, group, buf.as_mut_ptr().cast(), bytes) };
        if n <= 0 {
            return &[];
        }
        if n < bytes {
            buf.truncate(n as usize / size_of::<libc::c_int>());
            return buf;
        }
        // Full: the group may have more members than fit; look again with more room.
        capacity *= 4;
    }
}

/// The resident memory and CPU time of one process, if they can be read. The task times are
/// in Mach time units (nanoseconds on Intel, larger on Apple silicon): they are taken as
/// nanoseconds, which is enough to tell whether a job is using CPU at all.
fn task_usage(pid: libc::c_int) -> Option<Usage> {
    // SAFETY: proc_taskinfo is plain old data, so all-zero is a valid value.
    let mut info: libc::proc_taskinfo = unsafe { std::mem::zeroed() };
    let size = size_of::<libc::proc_taskinfo>() as libc::c_int;
    // SAFETY: `info` is a valid, correctly sized proc_taskinfo for the duration of the call.
    let n =
        unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDTASKINFO, 0, (&raw mut info).cast(), size) };
    (n == size).then(|| Usage {
        rss: info.pti_resident_size,
        cpu: Duration::from_nanos(info.pti_total_user.saturating_add(info.pti_total_system)),
        runnable: info.pti_numrunning > 0,
    })
}

/// macOS has no cgroups: nothing limits fanout below the machine's memory.
#[derive(Debug)]
pub(crate) struct MemoryCap;

impl MemoryCap {
    pub(crate) fn discover() -> MemoryCap {
        MemoryCap
    }

    #[expect(
        clippy::unused_self,
        reason = "the same call as on Linux, where the cap is a cgroup to read"
    )]
    pub(crate) fn read(&self) -> Option<CapReading> {
        None
    }
}
