//! Spawning and supervising one job's process.
//!
//! A job runs in a session of its own (so in its own process group, with no controlling
//! terminal: reading the terminal fails instead of stopping the job) with stdin on /dev/null.
//! Its stdout and stderr are drained together through `poll` (a job that fills one pipe before
//! touching the other never deadlocks) into spools that move to a temporary file past a limit.
//! The child is reaped with `wait4` for its peak memory. Whenever the job must stop (interrupt,
//! timeout, processes left behind by a finished job) the whole group gets SIGTERM, then SIGKILL
//! after the grace period.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::sampler::{Eviction, Sampler};
use crate::cancel::Cancel;
use crate::os::{self, Signal};
use crate::output::Spool;

/// How long pipes held open by processes outside the job's group may delay its end.
const ORPHAN_PIPE_WAIT: Duration = Duration::from_millis(500);
/// A job still running after this long is made a preferred OOM victim. Most tiny jobs end
/// sooner and so cost no write to /proc; fanout itself is protected (-500) from the start, so
/// until then a job (at 0) is still chosen before fanout.
const OOM_PREFERENCE_AFTER: Duration = Duration::from_millis(20);
/// Poll interval when the platform offers no descriptor that wakes on a process's exit.
const FALLBACK_POLL_MS: i32 = 10;
/// The most one read of a job's pipe takes (a Linux pipe holds 64 KiB).
const READ_SIZE: usize = 64 * 1024;

thread_local! {
    /// Each worker's buffer for reading its jobs' output.
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A job that writes its output a little at a time (a line per file, as `wc` over a batch
/// does) would wake its worker for each piece: two reads and a poll for a few bytes. After
/// `TRICKLE_WAKES` wakes in a row that found less than `TRICKLE_BYTES`, the worker waits up
/// to `TRICKLE_WAIT_MS` for the job's exit (or a stop) before it reads again, so the pieces
/// arrive together. The job's exit is seen at once all the same; a job that writes once is
/// never kept waiting, nor one that writes a lot (its pieces are a buffer's worth, 4 KiB or
/// more, and a wait would only let its pipe fill).
const TRICKLE_WAKES: u32 = 2;
const TRICKLE_BYTES: usize = 512;
const TRICKLE_WAIT_MS: i32 = 1;

/// What one job needs to run.
pub(crate) struct Launch<'a> {
    pub argv: &'a [OsString],
    /// The program resolved on PATH at start-up, if it was known then.
    pub program: Option<&'a Path>,
    /// Capture output (false: inherit fanout's stdout and stderr, for `-j 1`).
    pub capture: bool,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub cancel: &'a Cancel,
    /// Samples the job's process group for its whole tree's memory.
    pub sampler: Option<&'a Sampler<'a>>,
    /// The worker slot the job runs in.
    pub slot: usize,
    /// Where the latest line the job writes to stderr is shown, if anywhere.
    pub live: Option<&'a crate::live::Board>,
    /// The memory reserved for the job.
    pub reserved: u64,
    /// A step of a Slurm allocation (`--executor srun`): asks Slurm to send SIGTERM to the
    /// step's processes, true if it could. srun itself answers SIGTERM by killing the step at
    /// once, so it gets SIGTERM only when the grace period is over (then SIGKILL if it lingers).
    pub term_step: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// How the process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    Exited(i32),
    Signaled(i32),
    /// It could not be started at all.
    SpawnFailed(String),
    /// It ran, but its exit status could not be read (never taken as success).
    Lost,
}

/// Who ended the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndedBy {
    /// It ended on its own (or could not start).
    Itself,
    /// It ran past `--timeout` and was stopped.
    Timeout,
    /// fanout stopped it because the run is being cancelled.
    Interrupt,
    /// The memory safety net stopped it, to run it again from scratch.
    SafetyNet(Eviction),
}

/// Everything known about a finished job's process.
#[derive(Debug)]
pub(crate) struct Finished {
    pub ending: Ending,
    pub ended_by: EndedBy,
    pub duration: Duration,
    pub peak_rss_bytes: Option<u64>,
    pub stdout: Option<Spool>,
    pub stderr: Option<Spool>,
    /// How long the memory safety net kept it paused.
    pub paused: Duration,
}

/// Where a stop of the job's process group stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    None,
    Termed(Instant),
    /// A srun step's grace is over: srun was told to kill the step (SIGTERM), and gets
    /// SIGKILL if it has not ended by then.
    Aborting(Instant),
    Killed,
}

/// How long srun may take to kill its step and end before it is killed itself (it waits up to
/// the cluster's KillWait for the step).
const SRUN_ABORT_WAIT: Duration = Duration::from_secs(35);

/// Runs one job to its end.
pub(crate) fn run(launch: &Launch) -> Finished {
    let start = Instant::now();
    let program = launch
        .program
        .map_or(launch.argv[0].as_os_str(), Path::as_os_str);
    let spawned = match os::spawn_job(program, launch.argv, launch.capture) {
        Ok(spawned) => spawned,
        Err(err) => return spawn_failed(&err, start),
    };
    let pid = spawned.pid;
    if let Some(s) = launch.sampler {
        s.register(pid, launch.slot, launch.reserved);
    }
    let live = launch.live.map(|board| (board, launch.slot));
    let mut streams: Vec<Stream> = [(spawned.stdout, None), (spawned.stderr, live)]
        .into_iter()
        .filter_map(|(fd, live)| Some((fd?, live)))
        .map(|(fd, live)| Stream {
            fd: Some(File::from(fd)),
            spool: Spool::default(),
            live,
        })
        .collect();
    let mut sup = Supervisor {
        pid,
        term_step: launch.term_step,
        stop: Stop::None,
        timed_out: false,
        interrupted: false,
        saw_cancel: false,
        reaped: None,
        reaped_at: None,
        grace: launch.kill_grace,
        // A limit past the end of the clock is no limit (the parser clamps; a plan may not).
        deadline: launch.timeout.and_then(|t| start.checked_add(t)),
        oom_at: start.checked_add(OOM_PREFERENCE_AFTER),
        paused_counted: Duration::ZERO,
    };
    supervise(launch, &mut sup, &mut streams);
    let reaped = sup.reaped.take().expect("reaped");
    let sampled = launch
        .sampler
        .map(|s| s.unregister(pid))
        .unwrap_or_default();
    let mut outputs = streams.into_iter().map(|s| s.spool);
    Finished {
        ending: match reaped {
            Reap::Waited(r) => match (r.exit_code(), r.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(sig)) => Ending::Signaled(sig),
                _ => Ending::Lost,
            },
            Reap::Lost => Ending::Lost,
        },
        // A stop of the run wins: a job it interrupted is not run again.
        ended_by: match (sup.interrupted, sampled.evicted, sup.timed_out) {
            (true, _, _) => EndedBy::Interrupt,
            (false, Some(why), _) => EndedBy::SafetyNet(why),
            (false, None, true) => EndedBy::Timeout,
            (false, None, false) => EndedBy::Itself,
        },
        duration: start.elapsed(),
        peak_rss_bytes: Some(reaped.max_rss_bytes().max(sampled.peak)),
        stdout: outputs.next(),
        stderr: outputs.next(),
        paused: sampled.paused,
    }
}

/// What is known of a job whose process could not be started.
fn spawn_failed(err: &io::Error, start: Instant) -> Finished {
    Finished {
        ending: Ending::SpawnFailed(crate::error::io_reason(err)),
        ended_by: EndedBy::Itself,
        duration: start.elapsed(),
        peak_rss_bytes: None,
        stdout: None,
        stderr: None,
        paused: Duration::ZERO,
    }
}

/// Drains the job's output and watches its exit, the cancel pipe and the clock until the job
/// is reaped and its pipes are closed (or abandoned to processes that left its group).
fn supervise(launch: &Launch, sup: &mut Supervisor<'_>, streams: &mut [Stream]) {
    let exit_fd = os::exit_watch(sup.pid);
    let mut ready = Vec::new();
    // The worker's read buffer, kept from job to job (not allocated and zeroed for each).
    let mut buf = READ_BUFFER.take();
    buf.resize(READ_SIZE, 0);
    let mut trickles = 0;
    loop {
        let open_pipes = streams.iter().any(|s| s.fd.is_some());
        if sup.reaped.is_some() && !open_pipes {
            READ_BUFFER.set(buf);
            return;
        }
        // Poll set: open pipes, then the exit watch while the child runs, then the cancel pipe.
        let mut fds: Vec<BorrowedFd> = streams
            .iter()
            .filter_map(|s| s.fd.as_ref().map(|f| f.as_fd()))
            .collect();
        let n_pipes = fds.len();
        let mut exit_slot = None;
        if let (None, Some(fd)) = (&sup.reaped, &exit_fd) {
            exit_slot = Some(fds.len());
            fds.push(fd.as_fd());
        }
        if !sup.saw_cancel {
            if let Some(fd) = launch.cancel.wake_fd() {
                fds.push(fd);
            }
        }
        let timeout = sup.poll_timeout(exit_fd.is_some());
        let polled = os::poll_readable(&fds, timeout, &mut ready).is_ok();
        if !polled {
            // poll only fails on resource exhaustion; slow down rather than spin.
            std::thread::sleep(Duration::from_millis(FALLBACK_POLL_MS as u64));
        }
        // An exact exit watch that did not fire means the child runs: no wait4 to ask.
        let may_have_exited = !polled
            || os::EXIT_WATCH_RECHECK.is_some()
            || exit_slot.is_none_or(|i| ready.get(i).copied().unwrap_or(true));
        drop(fds);
        let mut got = 0;
        for (stream, _) in streams
            .iter_mut()
            .filter(|s| s.fd.is_some())
            .zip(ready.iter().take(n_pipes))
            .filter(|(_, r)| **r)
        {
            got += stream.read_once(&mut buf);
        }
        if sup.reaped.is_none() && may_have_exited {
            sup.try_reap();
        }
        trickles = if got > 0 && got < TRICKLE_BYTES {
            trickles + 1
        } else {
            0
        };
        if let (true, None, Some(exit)) = (trickles >= TRICKLE_WAKES, &sup.reaped, &exit_fd) {
            let mut watch = vec![exit.as_fd()];
            watch.extend(launch.cancel.wake_fd().filter(|_| !sup.saw_cancel));
            let _ = os::poll_readable(&watch, TRICKLE_WAIT_MS, &mut ready);
        }
        let now = Instant::now();
        if sup.oom_at.is_some_and(|at| now >= at) {
            sup.oom_at = None;
            if sup.reaped.is_none() {
                os::prefer_oom_victim(sup.pid);
            }
        }
        sup.react(now, launch.cancel, launch.sampler);
        if sup.pipes_abandoned(now) {
            for s in streams.iter_mut() {
                s.drain_now(&mut buf);
                s.fd = None;
            }
        }
    }
}

struct Stream<'a> {
    fd: Option<File>,
    spool: Spool,
    /// stderr with job lines on: what it writes also goes to the board's slot.
    live: Option<(&'a crate::live::Board, usize)>,
}

impl Stream<'_> {
    /// Reads once from a pipe `poll` found ready (it holds data or is closed, so the read does
    /// not wait; the pipe is left blocking, which costs no `fcntl` per job); closes it at end
    /// of file. One read takes what a full pipe holds. Returns the bytes read.
    fn read_once(&mut self, buf: &mut [u8]) -> usize {
        let Some(fd) = &mut self.fd else { return 0 };
        loop {
            return match fd.read(buf) {
                Ok(0) => {
                    self.fd = None;
                    0
                }
                Ok(n) => {
                    self.spool.push(&buf[..n]);
                    if let Some((board, slot)) = self.live {
                        board.stderr(slot, &buf[..n]);
                    }
                    n
                }
                // Interrupted: read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.fd = None;
                    0
                }
            };
        }
    }

    /// Reads whatever the pipe holds now, without waiting for more.
    fn drain_now(&mut self, buf: &mut [u8]) {
        let mut ready = Vec::new();
        while let Some(fd) = &self.fd {
            let readable = os::poll_readable(&[fd.as_fd()], 0, &mut ready).is_ok()
                && ready.first() == Some(&true);
            if !readable {
                return;
            }
            self.read_once(buf);
        }
    }
}

/// What reaping the job's process gave.
#[derive(Debug, Clone, Copy)]
enum Reap {
    Waited(os::Reaped),
    /// Its status could not be read (ECHILD): never taken as a success.
    Lost,
}

impl Reap {
    fn max_rss_bytes(&self) -> u64 {
        match self {
            Reap::Waited(r) => r.max_rss_bytes,
            Reap::Lost => 0,
        }
    }
}

/// The state of one job's process group while it is supervised.
struct Supervisor<'a> {
    pid: i32,
    term_step: Option<&'a (dyn Fn() -> bool + Sync)>,
    stop: Stop,
    timed_out: bool,
    interrupted: bool,
    /// The run's stop has been seen (and acted on) by this job.
    saw_cancel: bool,
    reaped: Option<Reap>,
    reaped_at: Option<Instant>,
    grace: Duration,
    /// When `--timeout` runs out, if it is set.
    deadline: Option<Instant>,
    /// When the job becomes a preferred OOM victim, until it has.
    oom_at: Option<Instant>,
    /// Paused time already added to the deadline.
    paused_counted: Duration,
}

impl Supervisor<'_> {
    /// Acts on what changed: the run began stopping (or stopping hard), the time limit ran
    /// out, a grace period ended.
    fn react(&mut self, now: Instant, cancel: &Cancel, sampler: Option<&Sampler>) {
        if !self.saw_cancel && cancel.stopping() {
            self.saw_cancel = true;
            // A job that had already ended on its own keeps its own status.
            self.interrupted = self.reaped.is_none();
            self.begin_stop(cancel.is_hard());
        } else if self.saw_cancel && cancel.is_hard() && self.stop != Stop::Killed {
            self.kill();
        }
        if let Some(d) = self.deadline {
            if now >= d && !self.timed_out && self.reaped.is_none() {
                // Time the memory safety net kept the job paused does not count.
                let paused = sampler.map_or(Duration::ZERO, |s| s.paused_for(self.pid));
                if paused > self.paused_counted {
                    self.deadline = d.checked_add(paused - self.paused_counted);
                    self.paused_counted = paused;
                } else {
                    self.timed_out = true;
                    self.begin_stop(false);
                }
            }
        }
        self.escalate(now);
    }

    /// Pipes held open by processes that left the job's group must not hold the job forever:
    /// true once the job is reaped and they have had their time.
    fn pipes_abandoned(&self, now: Instant) -> bool {
        let Some(at) = self.reaped_at else {
            return false;
        };
        now.duration_since(at) >= ORPHAN_PIPE_WAIT.saturating_add(self.grace)
            || (self.stop == Stop::None
                && now.duration_since(at) >= ORPHAN_PIPE_WAIT
                && !self.group_alive())
    }

    fn try_reap(&mut self) {
        match os::wait4(self.pid, true) {
            Ok(Some(r)) => {
                os::waited(self.pid);
                self.reaped = Some(Reap::Waited(r));
                self.reaped_at = Some(Instant::now());
                // Processes the job left behind in its group are stopped: no job is orphaned.
                if self.stop == Stop::None && self.group_alive() {
                    self.begin_stop(false);
                }
            }
            Ok(None) => {}
            Err(_) => {
                // ECHILD: the status is gone; mark it unknown, never as a success.
                os::waited(self.pid);
                self.reaped = Some(Reap::Lost);
                self.reaped_at = Some(Instant::now());
            }
        }
    }

    fn group_alive(&self) -> bool {
        os::group_alive(self.pid)
    }

    fn begin_stop(&mut self, hard: bool) {
        if hard || self.grace.is_zero() {
            self.kill();
        } else if self.stop == Stop::None {
            // A srun step still running: its own processes get the SIGTERM, through Slurm.
            if self.reaped.is_none() && self.term_step.is_some_and(|term| term()) {
                self.stop = Stop::Termed(Instant::now());
                return;
            }
            let _ = os::signal_group(self.pid, Signal::SIGTERM);
            // A stopped (SIGSTOP) job would never see the TERM.
            let _ = os::signal_group(self.pid, Signal::SIGCONT);
            self.stop = Stop::Termed(Instant::now());
        }
    }

    fn kill(&mut self) {
        if self.term_step.is_some() && self.reaped.is_none() {
            // srun killed outright would leave its step running: it is told to kill it.
            match self.stop {
                Stop::Aborting(at) if at.elapsed() < SRUN_ABORT_WAIT => return,
                Stop::Aborting(_) | Stop::Killed => {}
                _ => {
                    let _ = os::signal_group(self.pid, Signal::SIGTERM);
                    self.stop = Stop::Aborting(Instant::now());
                    return;
                }
            }
        }
        let _ = os::signal_group(self.pid, Signal::SIGKILL);
        self.stop = Stop::Killed;
    }

    fn escalate(&mut self, now: Instant) {
        if let Stop::Aborting(at) = self.stop {
            if now.duration_since(at) >= SRUN_ABORT_WAIT {
                self.kill();
            }
        }
        if let Stop::Termed(at) = self.stop {
            if now.duration_since(at) >= self.grace {
                if self.reaped.is_none() || self.group_alive() {
                    self.kill();
                } else {
                    self.stop = Stop::Killed;
                }
            }
        }
    }

    /// How long the next poll may block.
    fn poll_timeout(&self, exit_watched: bool) -> i32 {
        let now = Instant::now();
        let mut wait: Option<Duration> = None;
        // `None`: a time past the end of the clock, which never comes.
        let mut at = |t: Option<Instant>| {
            let Some(t) = t else { return };
            let d = t.saturating_duration_since(now);
            wait = Some(wait.map_or(d, |w: Duration| w.min(d)));
        };
        if let (Some(d), None) = (self.deadline, &self.reaped) {
            at(Some(d));
        }
        if self.reaped.is_none() {
            at(self.oom_at);
        }
        if let Stop::Termed(t) = self.stop {
            at(t.checked_add(self.grace));
        }
        if let Stop::Aborting(t) = self.stop {
            at(t.checked_add(SRUN_ABORT_WAIT));
        }
        if let Some(r) = self.reaped_at {
            at(r.checked_add(ORPHAN_PIPE_WAIT));
            if self.stop != Stop::None {
                at(r.checked_add(ORPHAN_PIPE_WAIT.saturating_add(self.grace)));
            }
        }
        if let (true, Stop::Termed(_)) = (self.saw_cancel, self.stop) {
            // A second interrupt may cut the grace period short.
            at(now.checked_add(Duration::from_millis(100)));
        }
        if self.stop == Stop::Killed || (!exit_watched && self.reaped.is_none()) {
            at(now.checked_add(Duration::from_millis(FALLBACK_POLL_MS as u64)));
        }
        if let (Some(every), None) = (os::EXIT_WATCH_RECHECK, &self.reaped) {
            at(now.checked_add(every));
        }
        match wait {
            None => -1,
            // Round up so a deadline is never polled for zero ms in a busy loop.
            Some(d) => d.as_millis().min(i32::MAX as u128 - 1) as i32 + 1,
        }
    }
}
