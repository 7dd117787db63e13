//! What Linux and macOS share: spawning a job, waiting for it, signalling its process group,
//! polling descriptors, and reaping what jobs leave behind.
//!
//! A job is spawned with `posix_spawn` in a session of its own (`POSIX_SPAWN_SETSID`): it is
//! the leader of a new session and of a new process group whose id is its pid, and it has no
//! controlling terminal. A job that opens /dev/tty (an ssh or gpg prompt) gets ENXIO and fails
//! at once, where a job in a background process group of fanout's terminal would stop on
//! SIGTTIN and never finish (#13). `posix_spawn` rather than `Command::pre_exec(setsid)`: a
//! pre-exec hook makes std fork the whole of fanout for each job, twice the cost of a spawn
//! for a small fanout and far more for one holding much output.
//!
//! fanout waits for each job's leader by pid (`wait4`, for its peak memory). Everything else
//! that becomes fanout's child (a job's processes that outlive their parent, reparented to
//! fanout as subreaper) is reaped by `reap_orphans`, which must never take a leader's status
//! from its supervisor: leaders are recorded when spawned, under a lock that keeps the reaper
//! out while a spawn is under way.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::spawn::{
    posix_spawn, posix_spawnp, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags,
};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{killpg, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::platform;

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

/// Reaps `pid` with `wait4`; `None` when `nohang` and it is still running. (Neither nix nor
/// rustix offers `wait4`, the one call that gives a child's status with its resource usage.)
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
                max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * platform::MAXRSS_UNIT,
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
pub(crate) fn signal_group(pgid: i32, sig: Signal) -> io::Result<bool> {
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether any process of group `pgid` is alive, after reaping its members that were
/// reparented to fanout and have exited (a zombie still counts as a member). An empty group,
/// the common case once a job ended, costs one call.
pub(crate) fn group_alive(pgid: i32) -> bool {
    if killpg(Pid::from_raw(pgid), None).is_err() {
        return false;
    }
    reap_group_orphans(pgid);
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Reaps exited orphans of process group `pgid` that were reparented to fanout.
fn reap_group_orphans(pgid: i32) {
    while let Ok(status) = waitpid(Pid::from_raw(-pgid), Some(WaitPidFlag::WNOHANG)) {
        if status.pid().is_none() {
            return;
        }
    }
}

/// Waits until one of `fds` is readable (or hung up) or `timeout_ms` passes (-1: forever).
/// Returns, per fd, whether it is ready.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout_ms: i32,
    ready: &mut Vec<bool>,
) -> io::Result<()> {
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    loop {
        match poll(&mut pfds, timeout) {
            Ok(_) => break,
            // Interrupted by a signal: poll again.
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ready.clear();
    ready.extend(
        pfds.iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty())),
    );
    Ok(())
}

/// Whether the reader of `fd` (a pipe we write to) has gone away.
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut pfd = [PollFd::new(fd, PollFlags::empty())];
    matches!(poll(&mut pfd, PollTimeout::ZERO), Ok(n) if n > 0)
        && pfd[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR))
}

/// The system's limit on the bytes of a new program's arguments and environment together
/// (`sysconf(_SC_ARG_MAX)`, on Linux a quarter of the stack limit), as xargs reads it.
pub(crate) fn arg_max() -> usize {
    // SAFETY: sysconf has no preconditions and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    // POSIX guarantees at least 4096; an unknown limit is taken as that.
    usize::try_from(n).unwrap_or(0).max(4096)
}

/// Whether fanout runs as root (then in-place outputs also get the input's owner).
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// CPU time (user + system) fanout itself has used so far, without its children.
pub(crate) fn own_cpu() -> Duration {
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::new(
            t.tv_sec().max(0) as u64,
            (t.tv_usec().max(0) as u32).saturating_mul(1000),
        )
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// A job's process as spawned: its pid (also its process group and session), and the read
/// ends of its stdout and stderr when they are captured.
pub(crate) struct Spawned {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Held shared while a job is spawned and recorded, exclusively while orphans are reaped.
static SPAWNING: RwLock<()> = RwLock::new(());
/// Pids of job leaders not yet waited for: the orphan reaper leaves them to their supervisor.
static LEADERS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn leaders() -> std::sync::MutexGuard<'static, Option<HashSet<i32>>> {
    LEADERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a job: `program` (a path, or a name looked up on PATH) with `argv` (`argv[0]`
/// included), stdin on /dev/null, in a new session with no controlling terminal. With
/// `capture`, stdout and stderr are pipes; otherwise they are fanout's own. Signals are as a
/// fresh process expects them: none blocked, SIGPIPE at its default (Rust ignores it).
///
/// The job's pid is recorded as a leader until `waited(pid)`.
pub(crate) fn spawn_job(program: &OsStr, argv: &[OsString], capture: bool) -> io::Result<Spawned> {
    let cstring = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "an argument contains a NUL byte",
            )
        })
    };
    let path = cstring(program)?;
    let args = argv
        .iter()
        .map(|a| cstring(a))
        .collect::<io::Result<Vec<_>>>()?;
    let env = job_environment();
    let null = dev_null()?;
    // Every descriptor fanout opens is close-on-exec; dup2 gives the child its own 0, 1, 2.
    // (std opens /dev/null on 0, 1 and 2 at start-up when they are closed, so none of the
    // descriptors here can be one of them.)
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(null.as_raw_fd(), 0)?;
    let pipes = if capture {
        let (out_r, out_w) = io::pipe()?;
        let (err_r, err_w) = io::pipe()?;
        actions.add_dup2(out_w.as_raw_fd(), 1)?;
        actions.add_dup2(err_w.as_raw_fd(), 2)?;
        // The write ends close in fanout when this returns: only the job holds them then.
        Some((out_r, out_w, err_r, err_w))
    } else {
        None
    };
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(
        PosixSpawnFlags::from_bits_retain(platform::SPAWN_SETSID)
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    attr.set_sigmask(&SigSet::empty())?;
    let mut defaults = SigSet::empty();
    defaults.add(Signal::SIGPIPE);
    attr.set_sigdefault(&defaults)?;

    let spawning = SPAWNING.read().unwrap_or_else(PoisonError::into_inner);
    let pid = if program.as_bytes().contains(&b'/') {
        posix_spawn(path.as_c_str(), &actions, &attr, &args, env)
    } else {
        posix_spawnp(&path, &actions, &attr, &args, env)
    }
    .map_err(io::Error::from)?
    .as_raw();
    leaders().get_or_insert_with(HashSet::new).insert(pid);
    drop(spawning);

    Ok(match pipes {
        Some((out_r, _, err_r, _)) => Spawned {
            pid,
            stdout: Some(out_r.into()),
            stderr: Some(err_r.into()),
        },
        None => Spawned {
            pid,
            stdout: None,
            stderr: None,
        },
    })
}

/// Every job's environment: fanout's own, as `KEY=value` strings. fanout never changes its
/// environment, so it is built once for every job.
fn job_environment() -> &'static [CString] {
    static ENV: OnceLock<Vec<CString>> = OnceLock::new();
    ENV.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect()
    })
}

/// /dev/null, opened once: every job's stdin.
fn dev_null() -> io::Result<&'static File> {
    static DEV_NULL: OnceLock<File> = OnceLock::new();
    Ok(match DEV_NULL.get() {
        Some(f) => f,
        None => {
            let f = File::open("/dev/null")?;
            DEV_NULL.get_or_init(|| f)
        }
    })
}

/// The job leader `pid` has been reaped (or its status is lost): it is no longer waited for.
pub(crate) fn waited(pid: i32) {
    if let Some(set) = leaders().as_mut() {
        set.remove(&pid);
    }
}

/// Reaps every exited child of fanout that is not a job leader: the processes a job leaves
/// behind outside its process group (`setsid` children, daemons) that were reparented to
/// fanout as subreaper. Without this they stay zombies until fanout exits (#13). Returns how
/// many were reaped.
pub(crate) fn reap_orphans() -> usize {
    let _spawning = SPAWNING.write().unwrap_or_else(PoisonError::into_inner);
    let mut reaped = 0;
    // Each look names one exited child without reaping it; a leader ends the round, since
    // the same child would be named again (its supervisor reaps it within moments).
    while let Some(pid) = platform::exited_child() {
        if leaders().as_ref().is_some_and(|set| set.contains(&pid)) {
            break;
        }
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) if status.pid().is_some() => reaped += 1,
            _ => break,
        }
    }
    reaped
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Instant;

    fn is_zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn the_orphan_reaper_leaves_job_leaders_to_their_supervisor() {
        // reap_orphans reaps any child that is not a job leader, so it runs in a process of its
        // own (this test binary again, this test alone): other tests' children are safe.
        const NAME: &str =
            "os::posix::tests::the_orphan_reaper_leaves_job_leaders_to_their_supervisor";
        if std::env::var_os("FANOUT_REAPER_TEST").is_none() {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
                .env("FANOUT_REAPER_TEST", "1")
                .status()
                .unwrap();
            assert!(status.success());
            return;
        }
        // A child that is not a job (first, so that it comes first among exited children),
        // then a job leader; both exit at once and stay zombies until reaped.
        // The point is a zombie that the reaper, not this handle, reaps.
        #[allow(clippy::zombie_processes)]
        let other = std::process::Command::new("true").spawn().unwrap();
        let other = other.id() as i32;
        let job = spawn_job(
            OsStr::new("sh"),
            &["sh".into(), "-c".into(), "exit 3".into()],
            false,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(is_zombie(other) && is_zombie(job.pid)) {
            assert!(Instant::now() < deadline, "the children never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(reap_orphans(), 1, "the child that is not a job is reaped");
        assert!(!is_zombie(other));
        let reaped = wait4(job.pid, false)
            .unwrap()
            .expect("the leader's status is still there");
        assert_eq!(reaped.exit_code(), Some(3));
        waited(job.pid);
        assert_eq!(reap_orphans(), 0);
    }

    /// A stat by the directory's descriptor answers what a stat by path answers: for files
    /// in several directories, through a link, a name without a directory, `..`, and none for
    /// a file that is not there.
    #[test]
    fn stat_at_answers_as_a_stat_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/one"), "1").unwrap();
        std::fs::write(d.join("a/b/two"), "22").unwrap();
        std::fs::write(d.join("a/b/three"), "333").unwrap();
        std::os::unix::fs::symlink("b/three", d.join("a/link")).unwrap();
        let mut stat = StatAt::default();
        for rel in [
            "a/one",
            "a/b/two",
            "a/b/three",
            "a/link",
            "a/b/../one",
            "a/one",
        ] {
            let path = d.join(rel);
            assert_eq!(stat.size_and_mtime(&path), by_path(&path), "{rel}");
            assert!(stat.size_and_mtime(&path).is_some(), "{rel}");
        }
        assert_eq!(stat.size_and_mtime(&d.join("a/link")).unwrap().0, 3);
        assert_eq!(stat.size_and_mtime(&d.join("a/b/none")), None);
        assert_eq!(stat.size_and_mtime(&d.join("gone/x")), None);
        assert_eq!(
            stat.size_and_mtime(&d.join("a/b/..")),
            by_path(&d.join("a"))
        );
        // A bare name is looked up in the working directory.
        let here = std::env::current_dir().unwrap();
        let name = std::fs::read_dir(&here)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name());
        if let Some(name) = name {
            let p = std::path::Path::new(&name);
            assert_eq!(stat.size_and_mtime(p), by_path(p));
        }
    }
}

/// Reads the size and modification time of many files, most of them in few directories (a
/// batch's files): each is looked up from its directory's descriptor, opened once for a run of
/// files in it, so only the last component of each path is resolved (a full path lookup per
/// file costs about a third more on a deep tree). Links are followed, as `metadata` follows
/// them; the answers are those of a stat by path.
#[derive(Default)]
pub(crate) struct StatAt {
    /// The directory of the last file asked about, and its descriptor (`None`: it could not
    /// be opened, and its files are asked about by path).
    dir: Option<(std::path::PathBuf, Option<OwnedFd>)>,
}

impl StatAt {
    /// The size and modification time (ns since the epoch) of the file at `path`.
    pub(crate) fn size_and_mtime(&mut self, path: &std::path::Path) -> Option<(u64, i64)> {
        use rustix::fs::{AtFlags, Mode, OFlags};
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return by_path(path);
        };
        let parent = if parent.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            parent
        };
        if self.dir.as_ref().is_none_or(|(d, _)| d != parent) {
            // Only to look names up from: no read permission needed where O_PATH exists.
            #[cfg(target_os = "linux")]
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            #[cfg(not(target_os = "linux"))]
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::open(parent, flags, Mode::empty()).ok();
            self.dir = Some((parent.to_path_buf(), fd));
        }
        let Some((_, Some(fd))) = &self.dir else {
            return by_path(path);
        };
        let st = rustix::fs::statat(fd, name, AtFlags::empty()).ok()?;
        #[allow(
            clippy::useless_conversion,
            reason = "the field's type differs by platform"
        )]
        let nsec = i64::try_from(st.st_mtime_nsec).unwrap_or(0);
        let secs: i64 = st.st_mtime;
        Some((
            u64::try_from(st.st_size).unwrap_or(0),
            secs * 1_000_000_000 + nsec,
        ))
    }
}

/// What `StatAt` answers, by path.
fn by_path(path: &std::path::Path) -> Option<(u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some((md.len(), md.mtime() * 1_000_000_000 + md.mtime_nsec()))
}
