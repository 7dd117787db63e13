//! Samples the memory of running jobs: every 100 ms, the resident memory of every process in
//! each running job's process group, summed per job. This sees a job's whole process tree
//! (`sh -c`, grandchildren working in parallel), where `wait4` only reports its largest
//! process. Jobs shorter than one interval are left to `wait4`; when no job has been running
//! that long the sampler reads nothing, and the safety net looks at memory only while some job
//! has run for `WATCH_AFTER`: a run of tiny jobs costs the sampler's thread a wake-up every
//! 25 ms and nothing per job.
//!
//! The sampler's thread also reaps, at each interval, the processes jobs left behind that were
//! reparented to fanout (`os::reap_orphans`), so they do not pile up as zombies while it runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

const INTERVAL: Duration = Duration::from_millis(100);
/// How often the safety net looks at available memory (cheap: no process is read).
const WATCH_EVERY: Duration = Duration::from_millis(25);
/// The safety net looks only while some job has run this long: a job that ends sooner cannot
/// take much memory, and a run of such jobs costs no reading of memory at all.
const WATCH_AFTER: Duration = Duration::from_millis(20);
/// A rise of the peak by less than this share of it (and 1 MiB) leaves a job's memory steady.
const STEADY_RISE: u64 = 32;
/// Timeline points kept for the summary (halved when full).
const TIMELINE_POINTS: usize = 4000;

#[derive(Default)]
struct Registry {
    jobs: HashMap<i32, Job>,
    max_total: u64,
    timeline: Vec<[u64; 3]>,
}

struct Job {
    /// The worker slot it runs in (for the board).
    slot: usize,
    started: Instant,
    peak: u64,
    /// The latest sample.
    current: u64,
    /// What admission reserved for it.
    reserved: u64,
    /// What it is expected to reach: its reservation, raised once it outgrew that.
    expect: u64,
    /// Its CPU time at the latest sample.
    cpu: Duration,
    /// When a sample last saw its CPU time grow (or when it started).
    progressed: Instant,
    /// When a sample last saw its peak rise past `level` by more than `STEADY_RISE`, its CPU
    /// time grow, or one of its processes busy (running, waiting for a CPU or in the kernel),
    /// or when it started or was resumed: since then its memory has held while it slept.
    /// `level`: the peak when it last rose.
    active: Instant,
    level: u64,
    /// Since when its process group is stopped (SIGSTOP) by the safety net.
    paused_since: Option<Instant>,
    paused: Duration,
    /// The safety net stopped it for good: it is to be run again.
    evicted: Option<Eviction>,
}

/// Why the safety net stopped a job for good, to run it again from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Pausing could not keep memory below the limit.
    Memory,
    /// It stayed paused while the running jobs used no CPU time: they may have been waiting
    /// for something it held.
    Stalled,
}

/// A running job as the safety net sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JobView {
    pub pgid: i32,
    /// Its worker slot, unique among running jobs.
    pub slot: usize,
    pub started: Instant,
    /// Its highest sampled memory so far.
    pub peak: u64,
    /// When its memory last grew or it last ran (see `Job::active`).
    pub active: Instant,
    /// Its latest sampled memory.
    pub current: u64,
    /// What it is expected to reach.
    pub expect: u64,
    /// Since when the safety net keeps it paused, if it does.
    pub paused_since: Option<Instant>,
    /// When it last used CPU time, as far as the samples saw (its start at first).
    pub progressed: Instant,
}

impl JobView {
    pub(crate) fn paused(&self) -> bool {
        self.paused_since.is_some()
    }
}

/// Where the safety net moves a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Pause,
    Resume,
}

/// What the sampler knew of a job when it ended.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JobMemory {
    /// Its highest sampled total, 0 if never sampled.
    pub peak: u64,
    /// How long it was paused by the safety net.
    pub paused: Duration,
    /// The safety net stopped it to run it again later.
    pub evicted: Option<Eviction>,
}

/// What running jobs hold and may still take, at the latest sample.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Holding {
    /// The reservations of the jobs the sampler knows.
    pub reserved: u64,
    /// How far what jobs are expected to reach exceeds their reservations, in all.
    pub over: u64,
    /// How much jobs are still expected to grow (expected peak minus current use), in all.
    pub growth: u64,
}

pub(crate) struct Sampler<'a> {
    /// Locked after the gate's state, never before it (see `Gate`); the live board's slots
    /// are locked with it held.
    registry: Mutex<Registry>,
    start: Instant,
    /// Where each job's latest sample is shown, if anywhere.
    board: Option<&'a crate::live::Board>,
}

impl<'a> Sampler<'a> {
    pub(crate) fn new(start: Instant, board: Option<&'a crate::live::Board>) -> Sampler<'a> {
        Sampler {
            registry: Mutex::default(),
            start,
            board,
        }
    }

    /// A job's process group started in this slot with this reservation.
    pub(crate) fn register(&self, pgid: i32, slot: usize, reserved: u64) {
        let now = Instant::now();
        let job = Job {
            slot,
            started: now,
            cpu: Duration::ZERO,
            progressed: now,
            active: now,
            level: 0,
            peak: 0,
            current: 0,
            reserved,
            expect: reserved,
            paused_since: None,
            paused: Duration::ZERO,
            evicted: None,
        };
        self.registry
            .lock()
            .expect("sampler")
            .jobs
            .insert(pgid, job);
    }

    /// A job ended: what was seen of it.
    pub(crate) fn unregister(&self, pgid: i32) -> JobMemory {
        let mut reg = self.registry.lock().expect("sampler");
        reg.jobs
            .remove(&pgid)
            .map_or(JobMemory::default(), |j| JobMemory {
                peak: j.peak,
                paused: j.paused + j.paused_since.map_or(Duration::ZERO, |t| t.elapsed()),
                evicted: j.evicted,
            })
    }

    /// How long a job has been paused so far.
    pub(crate) fn paused_for(&self, pgid: i32) -> Duration {
        let reg = self.registry.lock().expect("sampler");
        reg.jobs.get(&pgid).map_or(Duration::ZERO, |j| {
            j.paused + j.paused_since.map_or(Duration::ZERO, |t| t.elapsed())
        })
    }

    /// What running jobs hold and may still take.
    pub(crate) fn holding(&self) -> Holding {
        let reg = self.registry.lock().expect("sampler");
        reg.jobs.values().fold(Holding::default(), |h, j| Holding {
            reserved: h.reserved + j.reserved,
            over: h.over + j.expect.saturating_sub(j.reserved),
            growth: h.growth + j.expect.saturating_sub(j.current),
        })
    }

    /// The running jobs, oldest first.
    pub(crate) fn jobs(&self) -> Vec<JobView> {
        let reg = self.registry.lock().expect("sampler");
        let mut v: Vec<JobView> = reg
            .jobs
            .iter()
            .map(|(pgid, j)| JobView {
                pgid: *pgid,
                slot: j.slot,
                started: j.started,
                peak: j.peak,
                active: j.active,
                current: j.current,
                expect: j.expect,
                paused_since: j.paused_since,
                progressed: j.progressed,
            })
            .collect();
        v.sort_by_key(|j| (j.started, j.pgid));
        v
    }

    /// Admission sized a running job's reservation again (the model learned meanwhile): what it
    /// is expected to reach becomes that, or what it uses now if more.
    pub(crate) fn reserve_again(&self, pgid: i32, reserved: u64) {
        let mut reg = self.registry.lock().expect("sampler");
        if let Some(job) = reg.jobs.get_mut(&pgid) {
            job.reserved = reserved;
            job.expect = reserved.max(job.current);
        }
    }

    /// Stops a job's process group (SIGSTOP) until `resume`; false if it is gone.
    pub(crate) fn pause(&self, pgid: i32) -> bool {
        self.move_job(pgid, Move::Pause)
    }

    /// Continues a job's process group the safety net paused; false if it is gone.
    pub(crate) fn resume(&self, pgid: i32) -> bool {
        self.move_job(pgid, Move::Resume)
    }

    fn move_job(&self, pgid: i32, to: Move) -> bool {
        let mut reg = self.registry.lock().expect("sampler");
        let Some(job) = reg.jobs.get_mut(&pgid) else {
            return false;
        };
        if (to == Move::Pause) == job.paused_since.is_some() {
            return true;
        }
        let sig = match to {
            Move::Pause => crate::os::Signal::SIGSTOP,
            Move::Resume => crate::os::Signal::SIGCONT,
        };
        // Signalled under the lock: the job cannot end and its group id be reused meanwhile
        // without `unregister`, which waits for the lock.
        if crate::os::signal_group(pgid, sig).is_err() {
            return false;
        }
        let now = Instant::now();
        match (to, job.paused_since.take()) {
            (Move::Pause, _) => job.paused_since = Some(now),
            (Move::Resume, Some(t)) => {
                job.paused += t.elapsed();
                // Stopped, it could neither progress nor grow: both clocks start now.
                job.progressed = now;
                job.active = now;
            }
            (Move::Resume, None) => {}
        }
        if let Some(board) = self.board {
            match to {
                Move::Pause => board.paused(job.slot),
                Move::Resume => board.resumed(job.slot),
            }
        }
        true
    }

    /// Stops a job for good, to be run again from scratch.
    pub(crate) fn evict(&self, pgid: i32, why: Eviction) -> bool {
        let mut reg = self.registry.lock().expect("sampler");
        let Some(job) = reg.jobs.get_mut(&pgid) else {
            return false;
        };
        job.evicted = Some(why);
        if let Some(t) = job.paused_since.take() {
            job.paused += t.elapsed();
        }
        let _ = crate::os::signal_group(pgid, crate::os::Signal::SIGKILL);
        true
    }

    /// Continues every paused job (the run is stopping).
    pub(crate) fn resume_all(&self) {
        let paused: Vec<i32> = {
            let reg = self.registry.lock().expect("sampler");
            reg.jobs
                .iter()
                .filter(|(_, j)| j.paused_since.is_some())
                .map(|(p, _)| *p)
                .collect()
        };
        for pgid in paused {
            self.resume(pgid);
        }
    }

    /// The highest sampled total memory of all running jobs.
    pub(crate) fn max_total(&self) -> u64 {
        self.registry.lock().expect("sampler").max_total
    }

    /// (ms since start, running jobs, their total memory) samples.
    pub(crate) fn timeline(&self) -> Vec<[u64; 3]> {
        self.registry.lock().expect("sampler").timeline.clone()
    }

    /// Samples (and reaps orphans) every 100 ms until `stop` is dropped; `watch` (the safety
    /// net) looks every 25 ms while a job has run for `WATCH_AFTER`, with the latest samples.
    pub(crate) fn run(&self, stop: &Receiver<()>, mut watch: impl FnMut(&Sampler)) {
        let mut last = Instant::now();
        loop {
            match stop.recv_timeout(WATCH_EVERY) {
                Err(RecvTimeoutError::Timeout) => {
                    if last.elapsed() >= INTERVAL {
                        last = Instant::now();
                        self.sample();
                        crate::os::reap_orphans();
                    }
                    if self.any_older_than(WATCH_AFTER) {
                        watch(self);
                    }
                }
                _ => return,
            }
        }
    }

    /// Whether some running job started at least `age` ago.
    fn any_older_than(&self, age: Duration) -> bool {
        let reg = self.registry.lock().expect("sampler");
        let now = Instant::now();
        reg.jobs
            .values()
            .any(|j| now.saturating_duration_since(j.started) >= age)
    }

    /// Samples the running jobs that have run long enough to be sampled.
    fn sample(&self) {
        if !self.any_older_than(INTERVAL) {
            return;
        }
        let pgids: Vec<i32> = {
            let reg = self.registry.lock().expect("sampler");
            reg.jobs.keys().copied().collect()
        };
        let sums = crate::os::group_usage(&pgids);
        let mut reg = self.registry.lock().expect("sampler");
        let mut total = 0;
        let now = Instant::now();
        for (pgid, job) in &mut reg.jobs {
            let usage = sums.get(pgid).copied().unwrap_or_default();
            let ran = usage.cpu > job.cpu;
            if ran {
                job.progressed = now;
            }
            job.cpu = usage.cpu;
            let rss = usage.rss;
            job.peak = job.peak.max(rss);
            let rose = job.peak > job.level + job.level / STEADY_RISE + (1 << 20);
            if rose {
                job.level = job.peak;
            }
            // Memory that holds while the job runs, or waits for a CPU or the kernel (a loaded
            // machine, its start), says little of where it will stop: only a job asleep, using
            // no CPU time, holds its own.
            if rose || ran || usage.runnable {
                job.active = now;
            }
            job.current = rss;
            if rss > job.expect {
                // It outgrew what it was expected to need: nothing says where it stops.
                job.expect = rss + rss / 2;
            }
            total += rss;
            if let Some(board) = self.board {
                board.rss(job.slot, rss);
            }
        }
        reg.max_total = reg.max_total.max(total);
        let point = [
            self.start.elapsed().as_millis() as u64,
            reg.jobs.len() as u64,
            total,
        ];
        if reg.timeline.len() >= TIMELINE_POINTS {
            let thinned: Vec<[u64; 3]> = reg.timeline.iter().step_by(2).copied().collect();
            reg.timeline = thinned;
        }
        reg.timeline.push(point);
    }
}
