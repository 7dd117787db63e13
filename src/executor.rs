//! The contract between the run core and its executors: an [`Executor`] takes jobs and hands
//! back exactly one [`Done`] per job through [`Queue::hand_back`], the single door every
//! record passes, where the halt rule is applied. Executors never write the journal, decide
//! halting or print the report; the core (`run`) does. Modelled on hyperfine's `Executor`
//! trait: the core never asks which executor it has.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};

use crate::cancel::{Cancel, Level, Reason};
use crate::config::{Config, Halt};
use crate::input::{Input, Notice};
use crate::output::Spool;
use crate::record::{Action, JobRecord, MemoryReport, Status};

/// The reason of a dry run's records (they are never written to a journal).
const LISTED: &str = "dry run: listed, not run";

/// A finished input on its way to the collector, with the job's captured output.
pub(crate) struct Done {
    pub record: JobRecord,
    pub stdout: Option<Spool>,
    pub stderr: Option<Spool>,
    /// The record already formatted as a journal line, when it was made where a core was free
    /// (triage formats the records that need no process, so they flow at memory speed).
    pub line: Option<Vec<u8>>,
}

impl Done {
    /// A dry run's record of a job it lists: `text` is what it prints for it.
    pub(crate) fn listed(job: u64, path: &std::path::Path, text: &[u8]) -> Done {
        let mut record = JobRecord::new(job, path, Status::Skipped);
        record.reason = Some(LISTED.into());
        // Its line is output like any job's: a line that cannot be written is lost output.
        record.stdout_bytes = Some(text.len() as u64);
        let mut stdout = Spool::default();
        stdout.push(text);
        Done {
            record,
            stdout: Some(stdout),
            stderr: None,
            line: None,
        }
    }

    /// A record without output (a file that did not run).
    pub(crate) fn bare(record: JobRecord) -> Done {
        Done {
            record,
            stdout: None,
            stderr: None,
            line: None,
        }
    }
}

/// Many inputs' records in one message to the collector: thousands of records do not cost
/// thousands of channel hand-offs.
pub(crate) enum Bulk {
    /// Records of several inputs (a batch's files, records that need no process).
    Records(Vec<Done>),
    /// The lines of `jobs` jobs a dry run listed, in order: their records are all alike
    /// (skipped: listed, not run), so only their number travels.
    Listed { text: Vec<u8>, jobs: u64 },
}

/// What an executor adds to the end of a run: the memory it saw, and lines for the report.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub memory: MemoryReport,
    /// Said after the report (a dry run's plan), one notice each.
    pub notes: Vec<String>,
    /// The cluster part of the final record (a Slurm array's tasks).
    pub cluster: Option<serde_json::Value>,
}

/// Turns jobs into records: exactly one [`Done`], handed back with [`Queue::hand_back`], for
/// every input taken from [`Queue::inputs`]. An executor never writes the journal, decides
/// halting or prints the report.
pub(crate) trait Executor: Send {
    fn execute(&mut self, queue: &Queue<'_>) -> Result<Extra>;

    /// The same executor taking its jobs on discovery's thread, when it needs neither a
    /// process nor a thread of its own (the dry run): then no input and no record crosses a
    /// thread one at a time. `None`: its jobs go through [`Executor::execute`].
    fn inline(&mut self) -> Option<&mut dyn Inline> {
        None
    }
}

/// An executor that settles each input at once, on discovery's thread ([`Executor::inline`]).
pub(crate) trait Inline: Send {
    /// Lists the job of `input`: its line goes on `out`. Returns its record instead when it is
    /// not listed (a real run would skip it).
    fn list(&mut self, ctx: &Context<'_>, input: Input, out: &mut Vec<u8>) -> Option<Done>;

    /// What it says at the end, once every input was listed.
    fn end(&mut self, ctx: &Context<'_>) -> Extra;
}

/// An executor's queue: the core's context, the jobs to take, the way back. (Not to be
/// confused with `config.run.jobs`, how many run at once.)
pub(crate) struct Queue<'a> {
    pub ctx: &'a Context<'a>,
    inputs: &'a Receiver<Input>,
    done: &'a Sender<Done>,
    /// Many records at once (a batch's files), in one message.
    bulk: Sender<Bulk>,
}

impl<'a> Queue<'a> {
    pub(crate) fn new(
        ctx: &'a Context<'a>,
        inputs: &'a Receiver<Input>,
        done: &'a Sender<Done>,
        bulk: Sender<Bulk>,
    ) -> Queue<'a> {
        Queue {
            ctx,
            inputs,
            done,
            bulk,
        }
    }

    /// The jobs, until the core has no more.
    pub(crate) fn inputs(&self) -> &'a Receiver<Input> {
        self.inputs
    }

    /// Hands a finished input back to the core. The halt rule is applied here, as the record
    /// leaves its worker, so no new job starts after a failure that `--halt` stops on.
    /// Returns false when the core takes no more records.
    pub(crate) fn hand_back(&self, d: Done) -> bool {
        self.ctx.halt_after(d.record.status);
        self.done.send(d).is_ok()
    }

    /// Hands back the records of several inputs at once (a batch's files), as one message:
    /// thousands of records do not cost thousands of channel hand-offs.
    pub(crate) fn hand_back_all(&self, all: Vec<Done>) -> bool {
        for d in &all {
            self.ctx.halt_after(d.record.status);
        }
        self.bulk.send(Bulk::Records(all)).is_ok()
    }
}

/// What the core shares with an executor while it runs.
pub(crate) struct Context<'a> {
    pub config: &'a Config,
    pub cancel: &'a Cancel,
    /// Jobs running now, for the progress bar.
    pub running: &'a AtomicU64,
    /// For messages that are not records (stale temporary files removed, ...).
    pub notices: Sender<Notice>,
    /// Held-back output with `--keep-order`: new jobs wait while too much is held.
    pub backlog: &'a Backlog,
    /// What running jobs are doing now, when job lines or status lines show it.
    pub live: Option<&'a crate::live::Board>,
    /// A Slurm array task's log of started jobs.
    pub(crate) started: Option<Mutex<File>>,
    pub start: Instant,
    /// Inputs `-u` found up to date (counted by triage, for the dry run's plan).
    pub up_to_date: AtomicU64,
}

impl Context<'_> {
    /// The halt rule, in one place: after the first file that failed, `--halt soon` starts
    /// nothing new and `--halt now` also stops running jobs. The core applies it to every
    /// record as it is handed back ([`Queue::hand_back`]) or made by triage; the local pool
    /// applies it a moment earlier too, before a failed job's memory is given back, so no
    /// waiting input is admitted into that room. Applying it twice changes nothing.
    pub(crate) fn halt_after(&self, status: Status) {
        if !status.is_failure() || matches!(status, Status::NotStarted | Status::Interrupted) {
            return;
        }
        match self.config.run.halt {
            Some(Halt::Soon) => self.cancel.raise(Level::Drain, Reason::Halt),
            Some(Halt::Now) => self.cancel.raise(Level::Stop, Reason::Halt),
            None => {}
        }
    }

    /// Called by an executor as a job's process starts.
    pub(crate) fn job_started(&self, job: u64) {
        if let Some(log) = &self.started {
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{job}");
            }
        }
    }

    /// Why nothing new starts, in words, for a `not_started` record.
    pub(crate) fn not_started(&self, job: u64, path: &std::path::Path) -> JobRecord {
        let mut record = JobRecord::new(job, path, Status::NotStarted);
        record.reason = Some(not_started_reason(self.cancel));
        if self.config.run.commit_options().is_some() {
            record.action = Some(Action::Kept);
        }
        record
    }
}

/// Why nothing new starts, in words.
pub(crate) fn not_started_reason(cancel: &Cancel) -> String {
    match cancel.reason() {
        Some(Reason::Signal(libc::SIGINT)) => "not started: interrupted (SIGINT)".into(),
        Some(Reason::Signal(libc::SIGTERM)) => "not started: terminated (SIGTERM)".into(),
        Some(Reason::Signal(libc::SIGHUP)) => "not started: hang-up (SIGHUP)".into(),
        Some(Reason::Signal(s)) => format!("not started: signal {s}"),
        Some(Reason::Halt) => "not started: --halt after a failure".into(),
        Some(Reason::ClosedStdout) => "not started: standard output was closed".into(),
        Some(Reason::ClosedStderr) => "not started: standard error was closed".into(),
        Some(Reason::OutputFailed) => "not started: job output could not be written".into(),
        Some(Reason::StoreUnreachable) => {
            "not started: transfers in a row could not reach the store".into()
        }
        None => "not started".into(),
    }
}

/// With `--keep-order`, finished jobs whose turn has not come are held back (their output in
/// one spill file). New jobs wait while `LIMIT` are held, except the one the order waits for,
/// so memory and descriptors stay bounded and the run cannot deadlock.
#[derive(Default)]
pub(crate) struct Backlog {
    state: Mutex<(usize, u64)>,
    room: Condvar,
}

impl Backlog {
    /// Finished jobs that may wait for an earlier one before new jobs wait.
    const LIMIT: usize = 4096;

    /// The collector's view: `held` records wait; `next` is the job number it waits for.
    pub(crate) fn set(&self, held: usize, next: u64) {
        if let Ok(mut s) = self.state.lock() {
            *s = (held, next);
        }
        if held < Self::LIMIT {
            self.room.notify_all();
        }
    }

    /// Blocks while too much is held, unless `job` is the one the order waits for, or the
    /// run is stopping.
    pub(crate) fn wait_for_room(&self, job: u64, cancel: &Cancel) {
        let Ok(mut s) = self.state.lock() else { return };
        while s.0 >= Self::LIMIT && job > s.1 && !cancel.stopping() {
            s = match self.room.wait_timeout(s, Duration::from_millis(100)) {
                Ok((s, _)) => s,
                Err(_) => return,
            };
        }
    }
}
