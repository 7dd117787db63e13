//! The run core: one place owns a run from its first input to its exit status.
//!
//! `drive` sets up what every run shares (signals and cancellation, the `--resume` journal, the
//! `--summary` journal), starts discovery, triages each input (walk problems and `--resume`
//! skips become records here, without going near an executor), hands the rest to an
//! [`Executor`] and collects what comes back: the collector (`collect.rs`) is the only writer
//! of job output, the journal and the progress bar, and the only place that applies `--halt`;
//! `report.rs` prints the end report and writes the final record.
//!
//! Executors only turn jobs into records: the local pool (`exec`), the dry run (`dry_run`) and
//! a Slurm array task's pool (`cluster::worker`) all implement [`Executor`]. Modelled on
//! hyperfine's `Executor` trait: the loop never asks which one it has.

mod collect;
mod report;

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::cancel::{self, Cancel, Level, Reason};
use crate::cli::Order;
use crate::config::Config;
use crate::error::ExitStatus;
use crate::exec::Spool;
use crate::record::{JobRecord, Status};
use crate::resume::Resume;
use crate::summary::{Journal, MemoryReport};
use crate::walk::{self, Input, Notice, WalkReport};

pub(crate) use collect::Collector;

/// A finished input on its way to the collector, with the job's captured output.
pub(crate) struct Done {
    pub record: JobRecord,
    pub stdout: Option<Spool>,
    pub stderr: Option<Spool>,
}

impl Done {
    /// A record without output (a file that did not run).
    pub(crate) fn bare(record: JobRecord) -> Done {
        Done {
            record,
            stdout: None,
            stderr: None,
        }
    }
}

/// Where a run's inputs come from.
pub(crate) enum Source {
    /// The walk described by the configuration.
    Walk,
    /// A list made elsewhere (a shard of a Slurm plan), numbered already.
    Given(Vec<Input>),
}

/// What an executor adds to the end of a run: the memory it saw, and lines for the report.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub memory: MemoryReport,
    /// Said after the report (a dry run's plan), one notice each.
    pub notes: Vec<String>,
    /// The cluster part of the final record (a Slurm array's tasks).
    pub cluster: Option<serde_json::Value>,
    /// A dry run: the jobs it listed (its records are `skipped`, as `--resume` skips are).
    pub planned: u64,
}

/// Turns jobs into records: exactly one [`Done`] on `done` for every input taken from `jobs`.
/// An executor never writes the journal, decides halting or prints the report.
pub(crate) trait Executor: Send {
    fn execute(
        &mut self,
        ctx: &Context<'_>,
        jobs: &Receiver<Input>,
        done: &Sender<Done>,
    ) -> Result<Extra>;
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
    /// A Slurm array task's log of started jobs.
    started: Option<Mutex<File>>,
    pub start: Instant,
}

impl Context<'_> {
    /// Hands a finished input back to the core. The halt rule is applied here, as the record
    /// leaves its worker, so no new job starts after a failure that `--halt` stops on.
    /// Returns false when the core takes no more records.
    pub(crate) fn hand_back(&self, done: &Sender<Done>, d: Done) -> bool {
        halt_after(self.config, self.cancel, d.record.status);
        done.send(d).is_ok()
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
        if self.config.in_place.is_some() {
            record.action = Some("kept");
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
        Some(Reason::OutputFailed) => "not started: job output could not be written".into(),
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
    fn set(&self, held: usize, next: u64) {
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

/// Where a run's job output and journal header go: fanout's own stdout and stderr, or (a Slurm
/// array task) files the submitter relays.
pub(crate) struct Io {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    /// A first journal line (a Slurm worker's header).
    pub header: Option<serde_json::Value>,
    /// Each job's number is appended here when it starts.
    pub started: Option<File>,
    /// Output is relayed later: a closed or failing stream is not fanout's own.
    pub files: bool,
}

impl Io {
    /// fanout's own standard output and error.
    pub(crate) fn terminal() -> Io {
        // Buffered: the collector flushes after each burst of records (and per job while a
        // progress bar is drawn), so many small outputs cost few writes.
        Io {
            stdout: Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout(),
            )),
            stderr: Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stderr(),
            )),
            header: None,
            started: None,
            files: false,
        }
    }
}

/// Runs `executor` over the inputs of `source`, and returns the exit status.
pub(crate) fn drive(
    config: &Config,
    executor: &mut dyn Executor,
    source: Source,
    io: Io,
) -> Result<ExitStatus> {
    let cancel = Arc::new(Cancel::new().context("cannot create a pipe")?);
    cancel::watch_signals(Arc::clone(&cancel)).context("cannot install signal handlers")?;
    let dry = config.mode.is_dry_run();
    let resume = Resume::for_run(config.resume.as_deref(), config.quiet || dry)?;
    let mut journal = match dry {
        true => None,
        false => Journal::open_for_run(
            config.summary.as_deref(),
            config.resume.as_deref(),
            &config.walk.own,
        )?,
    };
    if let (Some(j), Some(h)) = (journal.as_mut(), io.header.as_ref()) {
        j.line(h)
            .with_context(|| format!("cannot write the summary {}", j.path().display()))?;
    }
    let start = Instant::now();
    let capacity = 2 * config.jobs + 16;
    let found = AtomicU64::new(0);
    let running = AtomicU64::new(0);
    let backlog = Backlog::default();
    let (notice_tx, notice_rx) = bounded::<Notice>(64);
    let ctx = Context {
        config,
        cancel: &cancel,
        running: &running,
        notices: notice_tx,
        backlog: &backlog,
        started: io.started.map(Mutex::new),
        start,
    };
    let mut collector = Collector::new(config, &cancel, journal.as_mut(), io.stdout, io.stderr);
    collector.files = io.files;

    let (extra, walk_report) = std::thread::scope(|s| -> Result<(Extra, WalkReport)> {
        let (job_tx, job_rx) = bounded::<Input>(capacity);
        let (done_tx, done_rx) = bounded::<Done>(capacity);
        let (early_tx, early_rx) = bounded::<Vec<Done>>(16);
        let ctx = &ctx;
        let found = &found;
        let resume = resume.as_ref();
        // Discovery and triage share a thread: what needs no executor becomes a record at
        // once, in batches, so records that need no process move at memory speed.
        let walker = std::thread::Builder::new()
            .name("walk".into())
            .spawn_scoped(s, move || {
                let mut triage = Triage::new(ctx, resume, early_tx);
                let largest_first = config.order == Order::LargestFirst;
                let mut kept = Vec::new();
                let mut sink = |input: Input| match triage.take(input) {
                    None => true,
                    Some(input) if largest_first => {
                        kept.push(input);
                        true
                    }
                    Some(input) => job_tx.send(input).is_ok(),
                };
                let report = match source {
                    Source::Walk => {
                        walk::scan(&config.walk, &mut sink, &ctx.notices, ctx.cancel, found)
                    }
                    Source::Given(inputs) => {
                        for input in inputs {
                            found.fetch_add(1, Ordering::Relaxed);
                            if !sink(input) {
                                break;
                            }
                        }
                        Ok(WalkReport::default())
                    }
                };
                triage.flush();
                // With --order largest-first every input is weighed, then the heaviest go first
                // (the dry run shows that order too).
                heaviest_first(kept, &job_tx);
                report
            })
            .context("cannot start the walk")?;
        let exec = std::thread::Builder::new()
            .name("executor".into())
            .spawn_scoped(s, move || {
                let extra = executor.execute(ctx, &job_rx, &done_tx);
                // Whatever the executor left (it failed to start): not started.
                for input in &job_rx {
                    ctx.hand_back(
                        &done_tx,
                        Done::bare(ctx.not_started(input.job, &input.path)),
                    );
                }
                extra
            })
            .context("cannot start a thread")?;
        collector.collect(&done_rx, &early_rx, &notice_rx, found, &running, &backlog);
        let extra = exec.join().expect("executor thread")?;
        let report = walker.join().expect("walker thread")?;
        Ok((extra, report))
    })?;
    drop(ctx);
    report::finish(config, &cancel, collector, extra, walk_report, start)
}

/// Decides, as inputs are discovered, what needs no executor: a problem found by the walk,
/// another name of a file already met, a `--resume` skip, a stop already under way. Those
/// records go to the collector in batches.
struct Triage<'c, 'a> {
    ctx: &'c Context<'a>,
    resume: Option<&'c Resume>,
    out: Sender<Vec<Done>>,
    batch: Vec<Done>,
    since: Instant,
}

impl<'c, 'a> Triage<'c, 'a> {
    /// Records per batch, and how long a batch may wait for more.
    const BATCH: usize = 512;
    const WAIT: Duration = Duration::from_millis(20);

    fn new(ctx: &'c Context<'a>, resume: Option<&'c Resume>, out: Sender<Vec<Done>>) -> Self {
        Triage {
            ctx,
            resume,
            out,
            batch: Vec::with_capacity(Self::BATCH),
            since: Instant::now(),
        }
    }

    /// Returns the input when it is to run; else its record is on its way.
    fn take(&mut self, input: Input) -> Option<Input> {
        let Some(record) = self.decide(&input) else {
            return Some(input);
        };
        halt_after(self.ctx.config, self.ctx.cancel, record.status);
        if self.batch.is_empty() {
            self.since = Instant::now();
        }
        self.batch.push(Done::bare(record));
        if self.batch.len() >= Self::BATCH || self.since.elapsed() >= Self::WAIT {
            self.flush();
        }
        None
    }

    fn decide(&self, input: &Input) -> Option<JobRecord> {
        let mut record;
        if let Some(problem) = &input.problem {
            record = JobRecord::new(input.job, &input.path, Status::Failed);
            record.reason = Some(problem.clone());
        } else if let Some(first) = &input.duplicate_of {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(crate::inplace::same_file_reason(&input.path, first));
            record.action = Some("kept");
        } else if let Some((reason, id)) = self.resume.and_then(|r| r.skip(&input.path)) {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(reason);
            record.file_size = Some(id.size);
            record.file_mtime_ns = Some(id.mtime_ns);
        } else if self.ctx.cancel.no_new_jobs() {
            record = self.ctx.not_started(input.job, &input.path);
        } else {
            return None;
        }
        Some(record)
    }

    fn flush(&mut self) {
        let Some(first) = self.batch.first().map(|d| d.record.job) else {
            return;
        };
        let config = self.ctx.config;
        if config.keep_order && config.order == Order::Input {
            self.ctx.backlog.wait_for_room(first, self.ctx.cancel);
        }
        let _ = self.out.send(std::mem::take(&mut self.batch));
    }
}

/// Weighs every input in parallel and sends them on, heaviest first.
fn heaviest_first(mut all: Vec<Input>, out: &Sender<Input>) {
    use rayon::prelude::*;
    if all.is_empty() {
        return;
    }
    all.par_iter_mut()
        .for_each(|i| i.weight = Some(crate::parquet::weight(&i.path)));
    // Stable: equal weights keep input order.
    all.sort_by_key(|i| std::cmp::Reverse(i.weight.unwrap_or(0)));
    for input in all {
        if out.send(input).is_err() {
            return;
        }
    }
}

/// The halt rule, in one place: after the first file that failed, `--halt soon` starts nothing
/// new and `--halt now` also stops running jobs.
fn halt_after(config: &Config, cancel: &Cancel, status: Status) {
    if status.is_failure() && !matches!(status, Status::NotStarted | Status::Interrupted) {
        match config.halt {
            Some(crate::cli::Halt::Soon) => cancel.raise(Level::Drain, Reason::Halt),
            Some(crate::cli::Halt::Now) => cancel.raise(Level::Stop, Reason::Halt),
            None => {}
        }
    }
}
