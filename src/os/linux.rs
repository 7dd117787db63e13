//! Linux: pidfds, the child subreaper, the OOM killer's preferences, cgroup (v1 and v2)
//! memory limits and /proc. `macos.rs` has the same functions.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::wait::{waitid, Id, WaitPidFlag};

use super::{CapReading, Usage};

/// `ru_maxrss` is in KiB on Linux.
pub(super) const MAXRSS_UNIT: u64 = 1024;

/// `posix_spawn`'s flag for a new session (glibc 2.26+, musl).
pub(super) const SPAWN_SETSID: libc::c_int = libc::POSIX_SPAWN_SETSID as libc::c_int;

/// A descriptor that becomes readable once `pid` has exited: a pidfd (Linux 5.3+). `None`
/// when the kernel has none; callers then poll for the exit.
pub(crate) fn exit_watch(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// A pidfd is exact: no need to look again before it says the process exited.
pub(crate) const EXIT_WATCH_RECHECK: Option<Duration> = None;

/// Makes fanout the reaper of orphaned descendants, so a job's background processes that
/// outlive their parent stay visible (and reapable) in the job's process group.
pub(crate) fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// One exited child of fanout, left waitable (`WNOWAIT`), if there is one.
pub(super) fn exited_child() -> Option<i32> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    waitid(Id::All, flags)
        .ok()?
        .pid()
        .map(nix::unistd::Pid::as_raw)
}

/// How often the calling thread has given up its core to wait so far (voluntary context
/// switches: a read the disk or a server had to answer), to tell a wait for the file system
/// from a wait for a CPU (a preemption is not counted).
pub(crate) fn thread_waits() -> Option<u64> {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD)
        .ok()
        .map(|u| u.voluntary_context_switches().max(0) as u64)
}

/// Makes the OOM killer prefer `pid` (a job) over fanout and the rest of the system.
pub(crate) fn prefer_oom_victim(pid: i32) {
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), "500");
}

/// Asks the OOM killer to spare fanout itself (allowed when privileged; ignored otherwise).
pub(crate) fn protect_from_oom() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "-500");
}

/// The name the kernel gives process `pid` (its `comm`), if it exists.
pub(crate) fn process_name(pid: u32) -> Option<Vec<u8>> {
    let mut comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    comm.truncate(comm.trim_ascii_end().len());
    Some(comm)
}

/// Resident bytes and CPU time per process group, for the groups asked about: one pass over
/// /proc.
pub(crate) fn group_usage(pgids: &[i32]) -> HashMap<i32, Usage> {
    let mut sums: HashMap<i32, Usage> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return sums;
    };
    let page = page_size();
    let tick = clock_tick();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(s) = parse_stat(&stat).filter(|s| pgids.contains(&s.pgrp)) {
            let sum = sums.entry(s.pgrp).or_default();
            sum.rss += s.rss_pages * page;
            sum.cpu += tick * u32::try_from(s.cpu_ticks).unwrap_or(u32::MAX);
            sum.runnable |= s.runnable;
        }
    }
    sums
}

/// The size of a memory page, for /proc's page counts.
fn page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 4096,
    }
}

/// The length of a clock tick, for /proc's CPU times.
fn clock_tick() -> Duration {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => Duration::from_secs(1) / n as u32,
        _ => Duration::from_millis(10),
    }
}

/// What fanout reads of a /proc/PID/stat line.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    /// Running or waiting for a CPU (state R), or in an uninterruptible wait (D).
    runnable: bool,
    pgrp: i32,
    /// User and system time, its own and its waited-for children's, clock ticks.
    cpu_ticks: u64,
    rss_pages: u64,
}

fn parse_stat(stat: &str) -> Option<Stat> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n)?.parse().ok() };
    // After the name: state(3) ppid(4) pgrp(5) … utime(14) stime(15) cutime(16) cstime(17) …
    // rss(24), so pgrp is [2], the times [11..=14] and rss [21].
    Some(Stat {
        runnable: matches!(*fields.first()?, "R" | "D"),
        pgrp: fields.get(2)?.parse().ok()?,
        cpu_ticks: (11..=14).map(field).sum::<Option<u64>>()?,
        rss_pages: field(21)?,
    })
}

/// The memory cgroups fanout is in, from its own up to the hierarchy's root.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    cgroups: Vec<CgroupDir>,
}

impl MemoryCap {
    /// Finds fanout's memory cgroups (none outside a cgroup or without /proc).
    pub(crate) fn discover() -> MemoryCap {
        MemoryCap {
            cgroups: own_cgroups(),
        }
    }

    /// The tightest limit of those cgroups and the least room left under any of them, now;
    /// `None` when no cgroup sets a limit.
    pub(crate) fn read(&self) -> Option<CapReading> {
        self.cgroups
            .iter()
            .filter_map(CgroupDir::read)
            .map(|(max, used)| CapReading {
                limit: max,
                headroom: max.saturating_sub(used),
            })
            .reduce(|a, b| CapReading {
                limit: a.limit.min(b.limit),
                headroom: a.headroom.min(b.headroom),
            })
    }
}

/// One memory cgroup directory: v2 (`memory.max`) or v1 (`memory.limit_in_bytes`).
#[derive(Debug)]
struct CgroupDir {
    dir: PathBuf,
    v2: bool,
}

impl CgroupDir {
    /// (limit, usage without reclaimable page cache), when a limit is set.
    fn read(&self) -> Option<(u64, u64)> {
        let (max_file, cur_file, inactive_key) = if self.v2 {
            ("memory.max", "memory.current", "inactive_file")
        } else {
            (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        };
        let max = read_u64(&self.dir.join(max_file))?;
        // v1 reports "no limit" as a huge page-aligned number.
        if max >= 1 << 60 {
            return None;
        }
        let current = read_u64(&self.dir.join(cur_file)).unwrap_or(0);
        // Inactive page cache is reclaimed before anything is killed: do not count it as used.
        let inactive = std::fs::read_to_string(self.dir.join("memory.stat"))
            .ok()
            .and_then(|stat| {
                stat.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == inactive_key).then(|| v.trim().parse::<u64>().ok())?
                })
            })
            .unwrap_or(0);
        Some((max, current.saturating_sub(inactive)))
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The memory cgroups fanout is in, from its own directory up to the hierarchy's root.
fn own_cgroups() -> Vec<CgroupDir> {
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (root, v2) = if controllers.is_empty() {
            (PathBuf::from("/sys/fs/cgroup"), true)
        } else if controllers.split(',').any(|c| c == "memory") {
            (PathBuf::from("/sys/fs/cgroup/memory"), false)
        } else {
            continue;
        };
        if v2 && !root.join("cgroup.controllers").exists() {
            // A v2 line on a v1 machine: the unified hierarchy carries no memory controller.
            continue;
        }
        let mut dir = root.join(path.trim_start_matches('/'));
        loop {
            found.push(CgroupDir {
                dir: dir.clone(),
                v2,
            });
            if dir == root || !dir.pop() || !dir.starts_with(&root) {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let line = "1234 (a (b) c) S 1 1200 1200 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 500 10000000 2500 18446744073709551615";
        let stat = Stat {
            runnable: false,
            pgrp: 1200,
            cpu_ticks: 3,
            rss_pages: 2500,
        };
        assert_eq!(parse_stat(line), Some(stat));
        for busy in [") R ", ") D "] {
            let line = line.replacen(") S ", busy, 1);
            assert!(parse_stat(&line).is_some_and(|s| s.runnable), "{line}");
        }
    }

    #[test]
    fn sees_this_process_group() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let pgrp = parse_stat(&own).unwrap().pgrp;
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(busy.elapsed());
        }
        let sums = group_usage(&[pgrp]);
        assert!(sums[&pgrp].rss > 1 << 20);
        assert!(sums[&pgrp].cpu > Duration::ZERO, "{:?}", sums[&pgrp]);
    }

    #[test]
    fn names_this_process() {
        let name = process_name(std::process::id()).unwrap();
        assert!(!name.is_empty() && !name.ends_with(b"\n"), "{name:?}");
        assert_eq!(process_name(u32::MAX), None);
    }
}
