//! Samples the memory of running jobs: every 100 ms, the resident memory of every process in
//! each running job's process group, summed per job. This sees a job's whole process tree
//! (`sh -c`, grandchildren working in parallel), where `wait4` only reports its largest
//! process. Jobs shorter than one interval are left to `wait4`; when no job has been running
//! that long the sampler reads nothing.
//!
//! The sampler's thread also reaps, at each interval, the processes jobs left behind that were
//! reparented to fanout (`os::reap_orphans`), so they do not pile up as zombies while it runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

const INTERVAL: Duration = Duration::from_millis(100);
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
}

pub(crate) struct Sampler<'a> {
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
        let job = Job {
            slot,
            started: Instant::now(),
            peak: 0,
            current: 0,
            reserved,
        };
        self.registry
            .lock()
            .expect("sampler")
            .jobs
            .insert(pgid, job);
    }

    /// A job ended: its highest sampled total, 0 if never sampled.
    pub(crate) fn unregister(&self, pgid: i32) -> u64 {
        let mut reg = self.registry.lock().expect("sampler");
        reg.jobs.remove(&pgid).map_or(0, |j| j.peak)
    }

    /// How far running jobs have outgrown their reservations, in all, at the latest sample.
    pub(crate) fn excess(&self) -> u64 {
        let reg = self.registry.lock().expect("sampler");
        reg.jobs
            .values()
            .map(|j| j.current.saturating_sub(j.reserved))
            .sum()
    }

    /// The highest sampled total memory of all running jobs.
    pub(crate) fn max_total(&self) -> u64 {
        self.registry.lock().expect("sampler").max_total
    }

    /// (ms since start, running jobs, their total memory) samples.
    pub(crate) fn timeline(&self) -> Vec<[u64; 3]> {
        self.registry.lock().expect("sampler").timeline.clone()
    }

    /// Samples (and reaps orphans) until `stop` is dropped.
    pub(crate) fn run(&self, stop: &Receiver<()>) {
        loop {
            match stop.recv_timeout(INTERVAL) {
                Err(RecvTimeoutError::Timeout) => {
                    self.sample();
                    crate::os::reap_orphans();
                }
                _ => return,
            }
        }
    }

    fn sample(&self) {
        let pgids: Vec<i32> = {
            let reg = self.registry.lock().expect("sampler");
            let due = reg.jobs.values().any(|j| j.started.elapsed() >= INTERVAL);
            if !due {
                return;
            }
            reg.jobs.keys().copied().collect()
        };
        let sums = crate::os::group_rss(&pgids);
        let mut reg = self.registry.lock().expect("sampler");
        let mut total = 0;
        for (pgid, job) in &mut reg.jobs {
            let rss = sums.get(pgid).copied().unwrap_or(0);
            job.peak = job.peak.max(rss);
            job.current = rss;
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
