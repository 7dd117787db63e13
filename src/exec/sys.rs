//! The few system calls std does not offer: per-child resource usage, process groups, pidfds
//! and poll. Every `unsafe` block of the program lives here, each a thin wrapper over libc.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// How a reaped child ended, with its peak resident set size (its waited-for descendants
/// included, as the kernel reports in `ru_maxrss`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub status: libc::c_int,
    pub max_rss_bytes: u64,
}

impl Reaped {
    pub(crate) fn exit_code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }
    pub(crate) fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }
}

/// Reaps `pid` with `wait4`; `None` when `nohang` and it is still running.
pub(crate) fn wait4(pid: i32, nohang: bool) -> io::Result<Option<Reaped>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, so all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: valid pointers to locals for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            return Ok(Some(Reaped {
                status,
                max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
            }));
        }
        if r == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends `sig` to every process of group `pgid`. `Ok(false)` when the group is empty.
pub(crate) fn kill_group(pgid: i32, sig: i32) -> io::Result<bool> {
    // SAFETY: kill has no memory-safety preconditions; a negative pid names a process group.
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        _ => Err(err),
    }
}

/// A pidfd for `pid` (Linux 5.3+): readable once the process has exited.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: the syscall takes two integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until one of `fds` is readable (or hung up) or `timeout_ms` passes (-1: forever).
/// Returns, per fd, whether it is ready.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout_ms: i32,
    ready: &mut Vec<bool>,
) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: pfds is a valid, correctly sized array for the duration of the call.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    ready.clear();
    ready.extend(pfds.iter().map(|p| p.revents != 0));
    Ok(())
}

/// Whether the reader of `fd` (a pipe we write to) has gone away.
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents & libc::POLLERR != 0
}

/// Puts `fd` in non-blocking mode, so a read drains a pipe without waiting.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on an fd we borrow; no pointers involved.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes fanout the reaper of orphaned descendants, so a job's background processes that
/// outlive their parent stay visible (and reapable) in the job's process group.
pub(crate) fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Reaps exited orphans of process group `pgid` that were reparented to fanout.
pub(crate) fn reap_group_orphans(pgid: i32) {
    loop {
        let mut status = 0;
        // SAFETY: pointer to a local.
        let r = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        if r <= 0 {
            return;
        }
    }
}

/// Whether fanout runs as root (then in-place outputs also get the input's owner).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The size of a memory page, for /proc's page counts.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// Makes the OOM killer prefer `pid` (a job) over fanout and the rest of the system.
pub(crate) fn prefer_oom_victim(pid: i32) {
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), "500");
}

/// Asks the OOM killer to spare fanout itself (allowed when privileged; ignored otherwise).
pub(crate) fn protect_from_oom() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "-500");
}

/// CPU time (user + system) fanout itself has used so far, without its children.
pub(crate) fn own_cpu() -> std::time::Duration {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::new(t.tv_sec as u64, (t.tv_usec as u32).saturating_mul(1000))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
