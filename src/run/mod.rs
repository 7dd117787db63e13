//! The run core: one place owns a run from its first input to its exit status.
//!
//! `drive` sets up what every run shares (signals and cancellation, the `--resume` journal, the
//! `--summary` journal), runs discovery and triage in one thread (walk problems, other names
//! of a file, `--resume` and `-u` skips and inputs met while stopping become records there,
//! without going near an executor; with `-o` the walk ends first, and every target is
//! computed and checked for collisions before any input moves on), hands the rest to an
//! executor (`crate::executor`) and collects what comes back: the collector (`collect.rs`) is
//! the only writer of job output, the journal and the progress bar; `report.rs` prints the end
//! report and writes the final record.

mod collect;
mod report;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::cancel::{self, Cancel};
use crate::config::Config;
use crate::config::Order;
use crate::error::ExitStatus;
use crate::input::{Input, Notice};
use crate::output::Io;
use crate::record::{JobRecord, Status};
use crate::resume::Resume;
use crate::summary::Journal;
use crate::walk::{self, Source, WalkReport};

use crate::executor::{halt_after, Backlog, Context, Done, Executor, Extra, Jobs};
pub(crate) use collect::Collector;

/// The reason of an input `-u` skips.
pub(crate) const UP_TO_DATE: &str = "up to date";

/// How long discovery goes on after a stop (Ctrl-C, `--halt`, a closed stdout).
const WALK_AFTER_STOP: Duration = Duration::from_millis(250);

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
    let mut journal = open_journal(config, io.header.as_ref())?;
    let start = Instant::now();
    let found = AtomicU64::new(0);
    let running = AtomicU64::new(0);
    let backlog = Backlog::default();
    let board = (config.job_lines || config.status_every.is_some())
        .then(|| crate::live::Board::new(config.run.jobs, config.job_lines));
    let (notice_tx, notice_rx) = bounded::<Notice>(64);
    let ctx = Context {
        config,
        cancel: &cancel,
        running: &running,
        notices: notice_tx,
        backlog: &backlog,
        live: board.as_ref(),
        started: io.started.map(Mutex::new),
        start,
        up_to_date: AtomicU64::new(0),
    };
    let mut collector = Collector::new(config, &cancel, journal.as_mut(), io.stdout, io.stderr);
    collector.live = board.as_ref();
    collector.files = io.files;
    let flow = Flow {
        ctx: &ctx,
        resume: resume.as_ref(),
        found: &found,
        notices: notice_rx,
    };
    let (extra, walk_report) = flow.run(executor, source, &mut collector)?;
    drop(ctx);
    report::finish(config, &cancel, collector, extra, &walk_report, start)
}

/// The `--summary` journal (none in a dry run), with a first line if the caller has one.
fn open_journal(config: &Config, header: Option<&serde_json::Value>) -> Result<Option<Journal>> {
    if config.mode.is_dry_run() {
        return Ok(None);
    }
    let mut journal = Journal::open_for_run(
        config.summary.as_deref(),
        config.resume.as_deref(),
        &config.walk.own,
    )?;
    if let (Some(j), Some(h)) = (journal.as_mut(), header) {
        j.line(h)
            .with_context(|| format!("cannot write the summary {}", j.path().display()))?;
    }
    Ok(journal)
}

/// The threads of a run: discovery with triage, the executor, and the collector (on the
/// calling thread), joined by bounded channels.
struct Flow<'c, 'a> {
    ctx: &'c Context<'a>,
    resume: Option<&'c Resume>,
    found: &'c AtomicU64,
    notices: Receiver<Notice>,
}

impl Flow<'_, '_> {
    fn run(
        self,
        executor: &mut dyn Executor,
        source: Source,
        collector: &mut Collector<'_>,
    ) -> Result<(Extra, WalkReport)> {
        let Flow {
            ctx,
            resume,
            found,
            notices,
        } = self;
        let config = ctx.config;
        // Inputs may run ahead of the jobs a little; records of jobs (with their output) not
        // much, as each may hold a megabyte of output in memory.
        let capacity = 2 * config.run.jobs + 16;
        let inputs_ahead = capacity.max(256);
        std::thread::scope(|s| -> Result<(Extra, WalkReport)> {
            let (job_tx, job_rx) = bounded::<Input>(inputs_ahead);
            let (done_tx, done_rx) = bounded::<Done>(capacity);
            let (early_tx, early_rx) = bounded::<Vec<Done>>(16);
            let bulk_tx = early_tx.clone();
            // Discovery and triage share a thread: what needs no executor becomes a record at
            // once, in batches, so records that need no process move at memory speed.
            let walker = std::thread::Builder::new()
                .name("walk".into())
                .spawn_scoped(s, move || {
                    let mut triage = Triage::new(ctx, resume, early_tx);
                    let largest_first = config.run.order == Order::LargestFirst;
                    let mut kept = Vec::new();
                    let mut stopped_at: Option<Instant> = None;
                    // With -o the walk ends before any job starts: every target is known and
                    // checked first (collisions stop the run before anything ran).
                    let held = std::cell::RefCell::new(config.target.as_ref().map(|_| Vec::new()));
                    let mut sink = |input: Input| {
                        if let Some(all) = held.borrow_mut().as_mut() {
                            if ctx.cancel.no_new_jobs() {
                                return false;
                            }
                            all.push(input);
                            return true;
                        }
                        // After a stop, discovery goes on only briefly: what it reaches gets
                        // a not_started record, and however much is queued, fanout ends soon.
                        if ctx.cancel.no_new_jobs()
                            && stopped_at.get_or_insert_with(Instant::now).elapsed()
                                > WALK_AFTER_STOP
                        {
                            return false;
                        }
                        match triage.take(input) {
                            None => true,
                            Some(input) if largest_first => {
                                kept.push(input);
                                true
                            }
                            Some(input) => triage.send(&job_tx, input),
                        }
                    };
                    let mut report = match source {
                        Source::Walk => {
                            walk::scan(&config.walk, &mut sink, &ctx.notices, ctx.cancel, found)
                        }
                        Source::Given(inputs) => {
                            let mut report = WalkReport::default();
                            for input in inputs {
                                found.fetch_add(1, Ordering::Relaxed);
                                if !sink(input) {
                                    report.cut_short = true;
                                    break;
                                }
                            }
                            Ok(report)
                        }
                    };
                    let held = held.borrow_mut().take();
                    if let (Some(mut all), Some(template)) = (held, &config.target) {
                        let checked =
                            crate::targets::assign(template, config.run.threads, &mut all);
                        // A run stopped during the walk starts nothing: its inputs get their
                        // not_started records, whatever their targets.
                        if let (Err(why), false) = (checked, ctx.cancel.no_new_jobs()) {
                            return Err(anyhow::anyhow!(why));
                        }
                        for input in all {
                            if !sink(input) {
                                if let Ok(r) = report.as_mut() {
                                    r.cut_short = true;
                                }
                                break;
                            }
                        }
                    }
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
                    let jobs = Jobs::new(ctx, &job_rx, &done_tx, bulk_tx);
                    let extra = executor.execute(&jobs);
                    // Whatever the executor left (it failed to start): not started.
                    for input in &job_rx {
                        jobs.hand_back(Done::bare(ctx.not_started(input.job, &input.path)));
                    }
                    extra
                })
                .context("cannot start a thread")?;
            collector.collect(
                &done_rx,
                &early_rx,
                &notices,
                found,
                ctx.running,
                ctx.backlog,
            );
            let extra = exec.join().expect("executor thread")?;
            let report = walker.join().expect("walker thread")?;
            Ok((extra, report))
        })
    }
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
    /// A journal is written: records are formatted here, on the walk's core.
    journal: bool,
    /// `-u`: directories of up-to-date targets already swept of dead runs' temporary files.
    swept: std::collections::HashSet<std::path::PathBuf>,
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
            journal: ctx.config.summary.is_some() && !ctx.config.mode.is_dry_run(),
            swept: std::collections::HashSet::new(),
        }
    }

    /// Sweeps the directory of an up-to-date target once: no job of this run may write there,
    /// and a killed run's `{out}` could otherwise stay (the sweep's rules: only a dead run's
    /// own files, only while no run writes in that directory). Not in a dry run.
    fn sweep_beside(&mut self, target: &std::path::Path) {
        if self.ctx.config.mode.is_dry_run() {
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
    fn take(&mut self, input: Input) -> Option<Input> {
        let Some(record) = self.decide(&input) else {
            return Some(input);
        };
        halt_after(self.ctx.config, self.ctx.cancel, record.status);
        if self.batch.is_empty() {
            self.since = Instant::now();
        }
        let mut done = Done::bare(record);
        if self.journal {
            let mut line = Vec::with_capacity(512);
            if serde_json::to_writer(&mut line, &done.record).is_ok() {
                line.push(b'\n');
                done.line = Some(line);
            }
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
    fn send(&mut self, jobs: &Sender<Input>, input: Input) -> bool {
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
            record.action = Some("kept");
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
            record.action = Some("up_to_date");
            record.set_output(target);
            self.ctx.up_to_date.fetch_add(1, Ordering::Relaxed);
            self.sweep_beside(target);
        } else if let Some((reason, id)) = self.resume.and_then(|r| r.skip(&input.path, input.seen))
        {
            record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(reason);
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

    fn flush(&mut self) {
        let Some(first) = self.batch.first().map(|d| d.record.job) else {
            return;
        };
        let config = self.ctx.config;
        if config.keep_order && config.run.order == Order::Input {
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
