//! Triage: as inputs are discovered, what needs no executor becomes a record at once (a
//! problem the walk found, another name of a file already met, `-u`'s up-to-date targets,
//! `--resume` skips, inputs met while the run stops), in batches, so records that need no
//! process move at memory speed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use crate::config::Order;
use crate::executor::{Bulk, Context, Done};
use crate::input::{Input, Notice};
use crate::record::{Action, JobRecord, Skip, Status};
use crate::resume::Resume;

/// The reason of an input `-u` skips.
const UP_TO_DATE: &str = "up to date";
/// The reason of a file `--resume` finds written by its output's provenance.
const PROVEN: &str =
    "written in the resumed run, as its output's provenance shows (its journal line was lost)";

/// Decides, as inputs are discovered, what needs no executor: a problem found by the walk,
/// another name of a file already met, a `--resume` skip, a stop already under way. Those
/// records go to the collector in batches.
pub(super) struct Triage<'c, 'a> {
    ctx: &'c Context<'a>,
    resume: Option<&'c Resume>,
    out: Sender<Bulk>,
    batch: Vec<Done>,
    since: Instant,
    /// A journal is written: records are formatted here, on the walk's core.
    journal: bool,
    /// Up-to-date targets' directories are swept (not in a dry run, which changes nothing).
    sweep: bool,
    /// `-u`: directories of up-to-date targets already swept of dead runs' temporary files.
    swept: std::collections::HashSet<std::path::PathBuf>,
    pace: Pace,
}

impl<'c, 'a> Triage<'c, 'a> {
    /// Records per batch, and how long a batch may wait for more.
    const BATCH: usize = 512;
    const WAIT: Duration = Duration::from_millis(20);

    pub(super) fn new(
        ctx: &'c Context<'a>,
        resume: Option<&'c Resume>,
        out: Sender<Bulk>,
        rehearsal: bool,
    ) -> Self {
        Triage {
            ctx,
            resume,
            out,
            batch: Vec::with_capacity(Self::BATCH),
            since: Instant::now(),
            journal: ctx.config.summary.is_some() && !rehearsal,
            sweep: !rehearsal,
            swept: std::collections::HashSet::new(),
            pace: Pace::default(),
        }
    }

    /// Sweeps the directory of an up-to-date target once: no job of this run may write there,
    /// and a killed run's `{out}` could otherwise stay (the sweep's rules: only a dead run's
    /// own files, only while no run writes in that directory). Not in a dry run.
    fn sweep_beside(&mut self, target: &std::path::Path) {
        // A target in a store has no directory of fanout's temporary files.
        if !self.sweep || target.to_str().is_some_and(crate::remote::looks_remote) {
            return;
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if !self.swept.insert(dir.to_path_buf()) {
            return;
        }
        let removed = crate::inplace::sweep_dead(dir, std::process::id());
        if !removed.is_empty() {
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            let _ = self.ctx.notices.send(Notice::Info(format!(
                "removed {} temporary file(s) left by fanout runs that are no longer alive: {}",
                removed.len(),
                names.join(", ")
            )));
        }
    }

    /// Returns the input when it is to run; else its record is on its way.
    pub(super) fn take(&mut self, input: Input) -> Option<Input> {
        let Some(record) = self.decide(&input) else {
            return Some(input);
        };
        self.ctx.halt_after(record.status);
        if self.batch.is_empty() {
            self.since = Instant::now();
        }
        let mut done = Done::bare(record);
        if self.journal {
            done.line = done.record.journal_line();
        }
        self.batch.push(done);
        if self.batch.len() >= Self::BATCH || self.since.elapsed() >= Self::WAIT {
            self.flush();
        }
        None
    }

    /// Sends an input to the executor, after the batch: a record held here while the walk
    /// blocks (on a full job queue, on a pausing stdin) could be the one `--keep-order` waits
    /// for, and the run would stand still. A job costs a process; one more send is nothing.
    pub(super) fn send(&mut self, jobs: &Sender<Input>, input: Input) -> bool {
        self.flush();
        self.pace.send(jobs, input)
    }

    fn decide(&mut self, input: &Input) -> Option<JobRecord> {
        let mut record;
        if let Some(problem) = &input.problem {
            record = JobRecord::new(input.job, &input.path, Status::Failed);
            record.reason = Some(problem.clone());
        } else if let Some(first) = &input.duplicate_of {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(crate::inplace::same_file_reason(&input.path, first));
            record.action = Some(Action::Kept);
            record.skip = Some(Skip::SameFile);
        } else if let Some(target) = input.target.as_deref().filter(|t| {
            self.ctx
                .config
                .run
                .output
                .as_ref()
                .is_some_and(|o| o.update)
                && crate::targets::up_to_date(input, t, &self.ctx.config.remote.command_hash)
        }) {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(UP_TO_DATE.into());
            record.action = Some(Action::UpToDate);
            record.skip = Some(Skip::UpToDate);
            record.set_output(target);
            self.ctx.up_to_date.fetch_add(1, Ordering::Relaxed);
            self.sweep_beside(target);
        } else if let Some((reason, id)) = self.resume.and_then(|r| {
            let tag =
                crate::resume::etag_tag(input.remote.as_ref().and_then(|o| o.etag.as_deref()));
            r.skip(&input.path, input.seen, tag)
        }) {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(reason);
            record.skip = Some(Skip::Resumed);
            record.file_size = Some(id.size);
            record.file_mtime_ns = Some(id.mtime_ns);
        } else if self.resume.is_some()
            && (input.remote.is_some()
                || input
                    .target
                    .as_deref()
                    .and_then(|t| t.to_str())
                    .is_some_and(crate::remote::looks_remote))
            && crate::targets::proven_done(
                input,
                self.ctx.config.run.in_place.is_some(),
                &self.ctx.config.remote.command_hash,
            )
        {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(PROVEN.into());
            record.skip = Some(Skip::Resumed);
            record.action = Some(Action::Kept);
        } else if self.ctx.cancel.no_new_jobs() {
            record = self.ctx.not_started(input.job, &input.path);
        } else {
            return None;
        }
        if let (Some(target), None) = (&input.target, &record.output) {
            record.set_output(target);
        }
        Some(record)
    }

    pub(super) fn flush(&mut self) {
        let Some(first) = self.batch.first().map(|d| d.record.job) else {
            return;
        };
        let config = self.ctx.config;
        if config.keep_order && config.run.order == Order::Input {
            self.ctx.backlog.wait_for_room(first, self.ctx.cancel);
        }
        let _ = self
            .out
            .send(Bulk::Records(std::mem::take(&mut self.batch)));
    }
}

/// How discovery waits for room in the job queue. Once the queue is full it sleeps until about
/// half of it has been taken (for as long as that took last time), rather than waiting in
/// `send`, where every input a worker takes would wake it to send one more: a thread wake-up
/// per job that a run of tiny jobs would pay on its workers' cores.
#[derive(Debug)]
pub(super) struct Pace {
    wait: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            wait: Duration::from_millis(1),
        }
    }
}

impl Pace {
    const SHORTEST: Duration = Duration::from_micros(50);
    const LONGEST: Duration = Duration::from_millis(20);

    /// Sends `input`, waiting as above while the queue is full; false when no one takes inputs
    /// any more.
    pub(super) fn send(&mut self, jobs: &Sender<Input>, input: Input) -> bool {
        let mut input = match jobs.try_send(input) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(input)) => input,
        };
        let capacity = jobs.capacity().unwrap_or(1).max(1);
        let half = capacity / 2;
        let start = Instant::now();
        loop {
            std::thread::sleep(self.wait);
            let len = jobs.len();
            if len <= half {
                // Sized so that next time about half the queue is taken while it sleeps.
                let taken = (capacity - len).max(1) as u32;
                let each = start.elapsed() / taken;
                self.wait = (each * (capacity - half) as u32).clamp(Self::SHORTEST, Self::LONGEST);
                return jobs.send(input).is_ok();
            }
            self.wait = (self.wait * 2).min(Self::LONGEST);
            input = match jobs.try_send(input) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(input)) => input,
            };
        }
    }
}
