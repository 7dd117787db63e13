//! Triage: as inputs are discovered, what needs no executor becomes a record at once (a
//! problem the walk found, another name of a file already met, `-u`'s up-to-date targets,
//! `--resume` skips, inputs met while the run stops), in batches, so records that need no
//! process move at memory speed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::config::Order;
use crate::executor::{Bulk, Context, Done};
use crate::input::{Input, Notice};
use crate::record::{Action, JobRecord, Skip, Status};
use crate::resume::Resume;

/// The reason of an input `-u` skips.
const UP_TO_DATE: &str = "up to date";

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
        }
    }

    /// Sweeps the directory of an up-to-date target once: no job of this run may write there,
    /// and a killed run's `{out}` could otherwise stay (the sweep's rules: only a dead run's
    /// own files, only while no run writes in that directory). Not in a dry run.
    fn sweep_beside(&mut self, target: &std::path::Path) {
        if !self.sweep {
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
        jobs.send(input).is_ok()
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
                && crate::targets::up_to_date(input, t)
        }) {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(UP_TO_DATE.into());
            record.action = Some(Action::UpToDate);
            record.skip = Some(Skip::UpToDate);
            record.set_output(target);
            self.ctx.up_to_date.fetch_add(1, Ordering::Relaxed);
            self.sweep_beside(target);
        } else if let Some((reason, id)) = self.resume.and_then(|r| r.skip(&input.path, input.seen))
        {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(reason);
            record.skip = Some(Skip::Resumed);
            record.file_size = Some(id.size);
            record.file_mtime_ns = Some(id.mtime_ns);
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
