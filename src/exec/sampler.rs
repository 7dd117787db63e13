//! Samples the memory of running jobs: every 100 ms, the resident memory of every process in
//! each running job's process group, summed per job. This sees a job's whole process tree
//! (`sh -c`, grandchildren working in parallel), where `wait4` only reports its largest
//! process. Jobs shorter than one interval are left to `wait4`; when no job has been running
//! that long the sampler reads nothing.

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
    started: Instant,
    peak: u64,
    /// The latest sample.
    current: u64,
    /// What admission reserved for it.
    reserved: u64,
}

pub(crate) struct Sampler {
    registry: Mutex<Registry>,
    start: Instant,
    page_size: u64,
}

impl Sampler {
    pub(crate) fn new(start: Instant) -> Sampler {
        Sampler {
            registry: Mutex::default(),
            start,
            page_size: super::sys::page_size(),
        }
    }

    /// A job's process group started with this reservation.
    pub(crate) fn register(&self, pgid: i32, reserved: u64) {
        let job = Job {
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

    /// Samples until `stop` is dropped.
    pub(crate) fn run(&self, stop: &Receiver<()>) {
        loop {
            match stop.recv_timeout(INTERVAL) {
                Err(RecvTimeoutError::Timeout) => self.sample(),
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
        let sums = self.scan(&pgids);
        let mut reg = self.registry.lock().expect("sampler");
        let mut total = 0;
        for (pgid, job) in reg.jobs.iter_mut() {
            let rss = sums.get(pgid).copied().unwrap_or(0);
            job.peak = job.peak.max(rss);
            job.current = rss;
            total += rss;
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

    /// Resident bytes per process group, for the groups asked about.
    fn scan(&self, pgids: &[i32]) -> HashMap<i32, u64> {
        let mut sums = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return sums;
        };
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
            if let Some((pgrp, rss_pages)) = parse_stat(&stat) {
                if pgids.contains(&pgrp) {
                    *sums.entry(pgrp).or_insert(0) += rss_pages * self.page_size;
                }
            }
        }
        sums
    }
}

/// (process group, resident pages) from a /proc/PID/stat line.
fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) … rss(24), so pgrp is [2] and rss is [21].
    Some((fields.get(2)?.parse().ok()?, fields.get(21)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_names() {
        let line = "1234 (a (b) c) S 1 1200 1200 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 500 10000000 2500 18446744073709551615";
        assert_eq!(parse_stat(line), Some((1200, 2500)));
    }

    #[test]
    fn sees_this_process_group() {
        let s = Sampler::new(Instant::now());
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (pgrp, _) = parse_stat(&own).unwrap();
        let sums = s.scan(&[pgrp]);
        assert!(sums[&pgrp] > 1 << 20);
    }
}
