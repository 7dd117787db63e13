//! The run core: one place owns a run from its first input to its exit status.
//!
//! `drive` sets up what every run shares (signals and cancellation, the `--resume` journal, the
//! `--summary` journal) and runs three threads joined by bounded channels: discovery with
//! triage (`discover.rs`, `triage.rs`: what needs no executor becomes a record there), the
//! executor (`crate::executor`), and the collector on the calling thread (`collect.rs`, the
//! only writer of job output, the journal and the progress bar, with its parts `reorder.rs`,
//! `outlet.rs` and `ledger.rs`). `finish.rs` prints the end report and writes the final
//! record. Whether a run is a dry run is read once, here, from the mode: the core never asks
//! which executor it has.

mod collect;
mod discover;
mod finish;
mod ledger;
mod outlet;
mod reorder;
mod start;
#[cfg(test)]
mod tests;
mod triage;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};
use crossbeam_channel::{bounded, Receiver};

use crate::cancel::{self, Cancel};
use crate::config::Config;
use crate::error::ExitStatus;
use crate::executor::{Backlog, Bulk, Context, Done, Executor, Extra, Inline, Queue};
use crate::input::{Input, Notice};
use crate::output::Io;
use crate::resume::Resume;
use crate::summary::JournalWriter;
use crate::walk::{Source, WalkReport};
use collect::Collector;
use discover::{Discovery, Lister, Sink};
use finish::{finish, Ending};
use ledger::Ledger;
use outlet::Outlet;
use triage::Triage;

/// Runs `executor` over the inputs of `source`, and returns the exit status.
pub(crate) fn drive(
    config: &Config,
    executor: &mut dyn Executor,
    source: Source,
    io: Io,
) -> Result<ExitStatus> {
    let cancel = Arc::new(Cancel::new().context("cannot create a pipe")?);
    cancel::watch_signals(Arc::clone(&cancel)).context("cannot install signal handlers")?;
    run(config, executor, source, io, &cancel)
}

/// A run with its stop state given: `drive` routes signals into it; tests use one of their own.
fn run(
    config: &Config,
    executor: &mut dyn Executor,
    source: Source,
    io: Io,
    cancel: &Cancel,
) -> Result<ExitStatus> {
    // A dry run writes nothing (no journal, nothing swept) and fails nothing.
    let rehearsal = config.mode.is_dry_run();
    let resume = Resume::for_run(
        config.resume.as_deref(),
        config.quiet || rehearsal,
        &crate::cluster::refuse_if_running,
    )?;
    let mut journal = match rehearsal {
        true => None,
        false => open_journal(config, io.header.as_ref())?,
    };
    let start = Instant::now();
    let (found, running) = (AtomicU64::new(0), AtomicU64::new(0));
    let backlog = Backlog::default();
    let board = (config.job_lines || config.status_every.is_some())
        .then(|| crate::live::Board::new(config.run.jobs, config.job_lines));
    let (notice_tx, notice_rx) = bounded::<Notice>(64);
    let ctx = Context {
        config,
        cancel,
        running: &running,
        notices: notice_tx,
        backlog: &backlog,
        live: board.as_ref(),
        started: io.started.map(Mutex::new),
        start,
        up_to_date: AtomicU64::new(0),
    };
    let outlet = Outlet::new(config, cancel, io.stdout, io.stderr, io.files);
    let collector = Collector::new(
        config,
        outlet,
        Ledger::new(journal.as_mut()),
        board.as_ref(),
    );
    let flow = Flow {
        ctx: &ctx,
        resume: resume.as_ref(),
        found: &found,
        notices: notice_rx,
        rehearsal,
    };
    let (extra, walk, collector) = match executor.inline() {
        Some(inline) => flow.inline(inline, source, collector.unordered())?,
        None => flow.run(executor, source, collector)?,
    };
    drop(ctx);
    finish(Ending {
        config,
        cancel,
        closed: collector.close(),
        extra,
        walk,
        start,
        rehearsal,
    })
}

/// The `--summary` journal, with its first line: the run's (`start.rs`), or the caller's (a
/// Slurm worker's header).
fn open_journal(
    config: &Config,
    header: Option<&serde_json::Value>,
) -> Result<Option<JournalWriter>> {
    let mut journal = JournalWriter::open_for_run(
        config.summary.as_deref(),
        config.resume.as_deref(),
        &config.walk.own,
    )?;
    if let Some(j) = journal.as_mut() {
        let path = j.path().to_path_buf();
        let cannot = || format!("cannot write the summary {}", path.display());
        match header {
            // A Slurm task's journal starts with its worker header instead: the submitter's
            // journal has the run's own line.
            Some(h) => j.line(h).with_context(cannot)?,
            None => {
                let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
                let line = start::RunRecord::new(&argv, &config.mode, start::unix_ms_now()).line();
                // A journal that cannot be written fails the run at its end, as a record
                // that cannot be written does (the writer remembers it); the run goes on.
                let _ = j.record_line(&line).and_then(|()| j.flush());
            }
        }
    }
    Ok(journal)
}

/// The threads of a run: discovery with triage, the executor, and the collector (on the
/// calling thread), joined by bounded channels; or, for an executor that takes its jobs
/// inline, discovery with triage and the executor on one thread, and the collector.
struct Flow<'c, 'a> {
    ctx: &'c Context<'a>,
    resume: Option<&'c Resume>,
    found: &'c AtomicU64,
    notices: Receiver<Notice>,
    rehearsal: bool,
}

impl Flow<'_, '_> {
    fn run<'k>(
        self,
        executor: &mut dyn Executor,
        source: Source,
        mut collector: Collector<'k>,
    ) -> Result<(Extra, WalkReport, Collector<'k>)> {
        let Flow {
            ctx,
            resume,
            found,
            notices,
            rehearsal,
        } = self;
        // Inputs may run ahead of the jobs a little; records of jobs (with their output) not
        // much, as each may hold a megabyte of output in memory.
        let capacity = 2 * ctx.config.run.jobs + 16;
        let inputs_ahead = capacity.max(256);
        std::thread::scope(|s| {
            let (job_tx, job_rx) = bounded::<Input>(inputs_ahead);
            let (done_tx, done_rx) = bounded::<Done>(capacity);
            let (early_tx, early_rx) = bounded::<Bulk>(16);
            let bulk_tx = early_tx.clone();
            // Discovery and triage share a thread: what needs no executor becomes a record at
            // once, in batches, so records that need no process move at memory speed.
            let walker = std::thread::Builder::new()
                .name("walk".into())
                .spawn_scoped(s, move || {
                    let triage = Triage::new(ctx, resume, early_tx, rehearsal);
                    Discovery::new(ctx, triage, found, Sink::Channel(job_tx)).run(source)
                })
                .context("cannot start the walk")?;
            let exec = std::thread::Builder::new()
                .name("executor".into())
                .spawn_scoped(s, move || {
                    let queue = Queue::new(ctx, &job_rx, &done_tx, bulk_tx);
                    let extra = executor.execute(&queue);
                    // Whatever the executor left (it failed to start): not started.
                    for input in &job_rx {
                        queue.hand_back(Done::bare(ctx.not_started(input.job, &input.path)));
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
            let (walk, _) = walker.join().expect("walker thread")?;
            Ok((extra, walk, collector))
        })
    }

    /// A run whose executor takes its jobs on discovery's thread: their lines reach the
    /// collector many at once, and nothing crosses a thread one job at a time.
    fn inline<'k>(
        self,
        inline: &mut dyn Inline,
        source: Source,
        mut collector: Collector<'k>,
    ) -> Result<(Extra, WalkReport, Collector<'k>)> {
        let Flow {
            ctx,
            resume,
            found,
            notices,
            rehearsal,
        } = self;
        std::thread::scope(|s| {
            let (bulk_tx, bulk_rx) = bounded::<Bulk>(16);
            // No record comes one at a time.
            let (_, done_rx) = bounded::<Done>(0);
            let walker = std::thread::Builder::new()
                .name("walk".into())
                .spawn_scoped(s, move || {
                    let lister = Lister::new(ctx, inline, bulk_tx.clone());
                    let triage = Triage::new(ctx, resume, bulk_tx, rehearsal);
                    Discovery::new(ctx, triage, found, Sink::Inline(lister)).run(source)
                })
                .context("cannot start the walk")?;
            collector.collect(
                &done_rx,
                &bulk_rx,
                &notices,
                found,
                ctx.running,
                ctx.backlog,
            );
            let (walk, extra) = walker.join().expect("walker thread")?;
            Ok((extra.unwrap_or_default(), walk, collector))
        })
    }
}
