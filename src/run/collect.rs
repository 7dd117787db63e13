//! The collector: the single owner of job output, the journal, the totals and the progress bar,
//! and the one place that applies the halt rule.
//!
//! Records stream in from triage and the executor. Each job's output is written in one piece
//! (never interleaved), then its record goes to the journal. With `--keep-order`, records wait
//! for their turn; their output moves to one spill file meanwhile, so holding back thousands
//! of jobs costs neither memory nor a descriptor each.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use super::{Backlog, Done};
use crate::cancel::{Cancel, Level, Reason};
use crate::config::Config;
use crate::error::print_notice;
use crate::live::Board;
use crate::output::Spool;
use crate::progress::Progress;
use crate::record::Status;
use crate::summary::{Journal, Totals};
use crate::walk::Notice;

/// How often the job lines under the bar are redrawn.
const JOB_LINES_EVERY: Duration = Duration::from_millis(200);

/// Where one stream of a held-back job's output is.
enum Held {
    None,
    Spool(Spool),
    /// `(offset, length)` in the spill file.
    Spilled(u64, u64),
}

/// A finished job waiting for its turn (`--keep-order`).
struct Waiting {
    done: Done,
    stdout: Held,
    stderr: Held,
}

pub(crate) struct Collector<'a> {
    config: &'a Config,
    cancel: &'a Cancel,
    pub(super) progress: Progress,
    pub(super) journal: Option<&'a mut Journal>,
    pub(super) journal_error: Option<String>,
    pub(super) totals: Totals,
    stdout: Box<dyn Write + Send>,
    stderr: Box<dyn Write + Send>,
    /// Output goes to files (a Slurm array task), not to fanout's own streams.
    pub(super) files: bool,
    /// What running jobs are doing now (job lines, status lines).
    pub(super) live: Option<&'a Board>,
    start: Instant,
    next_lines: Instant,
    next_status: Option<Instant>,
    stdout_closed: bool,
    /// Set once job output could not be written (a full disk behind `>`).
    output_failed: bool,
    /// With `--keep-order`: finished records waiting for their turn (`None`: a record without
    /// output, already out).
    reorder: BTreeMap<u64, Option<Waiting>>,
    next_job: u64,
    spill: Option<File>,
    spill_len: u64,
    /// Records whose output was written but may not have been flushed yet: they go to the
    /// journal once the output is out, so a record never says ok for output that was lost.
    batch: Vec<(crate::record::JobRecord, Option<Vec<u8>>)>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(
        config: &'a Config,
        cancel: &'a Cancel,
        journal: Option<&'a mut Journal>,
        stdout: Box<dyn Write + Send>,
        stderr: Box<dyn Write + Send>,
    ) -> Collector<'a> {
        Collector {
            config,
            cancel,
            progress: Progress::new(config.progress, config.job_lines),
            journal,
            journal_error: None,
            totals: Totals::default(),
            stdout,
            stderr,
            files: false,
            live: None,
            start: Instant::now(),
            next_lines: Instant::now(),
            next_status: config
                .status_every
                .and_then(|d| Instant::now().checked_add(d)),
            stdout_closed: false,
            output_failed: false,
            reorder: BTreeMap::new(),
            next_job: 1,
            spill: None,
            spill_len: 0,
            batch: Vec::new(),
        }
    }

    /// Takes records until every sender is gone. Records that need no process arrive in
    /// bursts: everything ready is taken, then the journal is flushed once.
    pub(crate) fn collect(
        &mut self,
        done: &Receiver<Done>,
        early: &Receiver<Vec<Done>>,
        notices: &Receiver<Notice>,
        found: &AtomicU64,
        running: &AtomicU64,
        backlog: &Backlog,
    ) {
        let (mut done_open, mut early_open, mut notices_open) = (true, true, true);
        let closed_done = crossbeam_channel::never::<Done>();
        let closed_early = crossbeam_channel::never::<Vec<Done>>();
        let closed_notices = crossbeam_channel::never::<Notice>();
        // Job lines and status lines are redrawn on a clock, records or not.
        let period = match (self.progress.has_job_lines(), self.config.status_every) {
            (true, _) => Some(JOB_LINES_EVERY),
            (false, every) => every,
        };
        let ticker = match period.filter(|_| self.live.is_some()) {
            Some(p) => crossbeam_channel::tick(p),
            None => crossbeam_channel::never(),
        };
        while done_open || early_open {
            // Take everything that is ready, then flush once; block (select) only when
            // nothing is: records that stream in never pay for a select's wake-up machinery.
            let mut took = false;
            loop {
                if let Ok(batch) = early.try_recv() {
                    batch.into_iter().for_each(|d| self.accept(d, backlog));
                } else if let Ok(d) = done.try_recv() {
                    self.accept(d, backlog);
                } else {
                    break;
                }
                took = true;
            }
            if !took {
                self.end_batch();
                // The bar shows what is out before the collector waits: records that come one
                // at a time (slow jobs) move it too.
                self.show_counts(found, running);
                select! {
                    recv(if done_open { done } else { &closed_done }) -> d => match d {
                        Ok(d) => self.accept(d, backlog),
                        Err(_) => done_open = false,
                    },
                    recv(if early_open { early } else { &closed_early }) -> b => match b {
                        Ok(batch) => batch.into_iter().for_each(|d| self.accept(d, backlog)),
                        Err(_) => early_open = false,
                    },
                    recv(if notices_open { notices } else { &closed_notices }) -> n => match n {
                        Ok(n) => self.notice(n),
                        Err(_) => notices_open = false,
                    },
                    recv(ticker) -> _ => self.tick(found, running),
                }
                continue;
            }
            if notices_open {
                while let Ok(n) = notices.try_recv() {
                    self.notice(n);
                }
            }
            self.end_batch();
            self.show_counts(found, running);
            self.tick(found, running);
        }
        // Anything still held for ordering (only if job numbers had gaps) goes out now.
        for w in std::mem::take(&mut self.reorder).into_values().flatten() {
            self.emit_waiting(w);
        }
        while let Ok(n) = notices.try_recv() {
            self.notice(n);
        }
        self.end_batch();
        self.progress.finish();
    }

    fn show_counts(&self, found: &AtomicU64, running: &AtomicU64) {
        self.progress.update(
            self.totals.total(),
            found.load(Ordering::Relaxed),
            running.load(Ordering::Relaxed),
            self.totals.failed(),
        );
    }

    /// Redraws the job lines and prints a status line, each when it is due.
    fn tick(&mut self, found: &AtomicU64, running: &AtomicU64) {
        let Some(board) = self.live else { return };
        let now = Instant::now();
        if self.progress.has_job_lines() && now >= self.next_lines {
            self.next_lines = now + JOB_LINES_EVERY;
            // Jobs start and end between records: the counts follow the lines.
            self.show_counts(found, running);
            self.progress.show_jobs(&board.rows());
        }
        if let (Some(every), Some(at)) = (self.config.status_every, self.next_status) {
            if now >= at {
                self.next_status = now.checked_add(every);
                let line = self.status_line(
                    board,
                    found.load(Ordering::Relaxed),
                    running.load(Ordering::Relaxed),
                );
                print_notice(&line);
            }
        }
    }

    /// `status: 120/400 done, 3 running, 2 failed, 3.2 jobs/s, eta 1m 27s; longest running:
    /// data/x.parquet for 4m 12s`.
    fn status_line(&self, board: &Board, found: u64, running: u64) -> String {
        let done = self.totals.total();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let left = found.saturating_sub(done);
        let eta = if rate > 0.0 {
            let eta = Duration::from_secs((left as f64 / rate).ceil().min(1e9) as u64);
            humantime::format_duration(eta).to_string()
        } else {
            "unknown".to_string()
        };
        let rows = board.rows();
        let paused = match rows.iter().filter(|r| r.paused).count() {
            0 => String::new(),
            n => format!(" ({n} paused to free memory)"),
        };
        let mut line = format!(
            "status: {done}/{found} done, {running} running{paused}, {} failed, {rate:.1} jobs/s, eta {eta}",
            self.totals.failed()
        );
        let longest = rows.into_iter().max_by_key(|r| r.elapsed);
        if let Some(r) = longest {
            let took = Duration::from_secs(r.elapsed.as_secs());
            line.push_str(&format!(
                "; longest running: {} for {}",
                r.path.display(),
                humantime::format_duration(took)
            ));
        }
        line
    }

    fn notice(&mut self, notice: Notice) {
        let (Notice::Error(msg) | Notice::Info(msg)) = notice;
        self.progress.suspend(|| print_notice(&msg));
    }

    fn accept(&mut self, done: Done, backlog: &Backlog) {
        if !self.config.keep_order {
            return self.emit(done);
        }
        if done.record.job == self.next_job {
            self.next_job += 1;
            self.emit(done);
            while let Some(w) = self.reorder.remove(&self.next_job) {
                self.next_job += 1;
                if let Some(w) = w {
                    self.emit_waiting(w);
                }
            }
            if self.reorder.is_empty() && self.spill_len > 0 {
                // Nothing held: the spill file starts over.
                if let Some(f) = &self.spill {
                    let _ = f.set_len(0);
                }
                self.spill_len = 0;
            }
        } else if [&done.stdout, &done.stderr]
            .into_iter()
            .all(|s| s.as_ref().is_none_or(|s| s.len() == 0))
        {
            // Nothing of it has to wait for its turn: its record goes to the journal now, so a
            // run that is killed still has the record of every job that finished (an in-place
            // file already replaced must not run again after --resume).
            let job = done.record.job;
            self.emit(done);
            self.reorder.insert(job, None);
        } else {
            let waiting = self.hold(done);
            self.reorder.insert(waiting.done.record.job, Some(waiting));
        }
        backlog.set(self.reorder.len(), self.next_job);
    }

    /// Moves a held-back job's output to the spill file.
    fn hold(&mut self, mut done: Done) -> Waiting {
        let mut spill = |spool: Option<Spool>| -> Held {
            let Some(mut spool) = spool else {
                return Held::None;
            };
            if spool.len() == 0 {
                return Held::None;
            }
            if self.spill.is_none() {
                match tempfile::tempfile() {
                    Ok(f) => self.spill = Some(f),
                    Err(_) => return Held::Spool(spool),
                }
            }
            let file = self.spill.as_mut().expect("spill file");
            let at = self.spill_len;
            let written = file
                .seek(SeekFrom::Start(at))
                .and_then(|_| spool.write_to(file));
            match written {
                Ok(()) => {
                    let len = file.stream_position().map_or(0, |end| end - at);
                    self.spill_len = at + len;
                    Held::Spilled(at, len)
                }
                Err(_) => Held::Spool(spool),
            }
        };
        let stdout = spill(done.stdout.take());
        let stderr = spill(done.stderr.take());
        Waiting {
            done,
            stdout,
            stderr,
        }
    }

    fn emit_waiting(&mut self, w: Waiting) {
        let Waiting {
            mut done,
            stdout,
            stderr,
        } = w;
        let mut unspill = |held: Held| -> Option<Spool> {
            match held {
                Held::None => None,
                Held::Spool(s) => Some(s),
                Held::Spilled(at, len) => {
                    let file = self.spill.as_mut()?;
                    let mut spool = Spool::default();
                    let copied = file
                        .seek(SeekFrom::Start(at))
                        .and_then(|_| io::copy(&mut file.take(len), &mut spool));
                    if let Err(err) = copied {
                        spool.error = Some(format!("could not keep the job's output: {err}"));
                    }
                    Some(spool)
                }
            }
        };
        done.stdout = unspill(stdout);
        done.stderr = unspill(stderr);
        self.emit(done);
    }

    /// Writes one job's output in one piece; its record follows at the end of the batch.
    fn emit(&mut self, mut done: Done) {
        // Only a record with output can change here (lost output): one formatted before stays.
        let plain = done.stdout.is_none() && done.stderr.is_none();
        // With a bar on screen, output goes out at once, while the bar is out of the way.
        let now = self.progress.is_visible();
        let tag = self
            .config
            .tag
            .then(|| crate::output::tag_prefix(&done.record.path_bytes()));
        let tag = tag.as_deref();
        if let Some(out) = done.stdout.as_mut().filter(|o| o.len() > 0) {
            if self.output_failed {
                self.output_lost(&mut done.record, "standard output", None);
            } else if !self.stdout_closed {
                let sink = &mut self.stdout;
                let result = self.progress.suspend(|| {
                    out.write_tagged(sink, tag)?;
                    if now {
                        sink.flush()?;
                    }
                    Ok(())
                });
                if let Err(err) = result {
                    self.stream_failed(&mut done.record, "standard output", &err);
                    // The failed write may have been the buffer's flush: the batch's output
                    // went with it.
                    self.batch_output_failed(&err);
                }
            }
        } else if !self.config.capture
            && !self.stdout_closed
            && !self.files
            && crate::os::peer_closed(io::stdout().as_fd())
        {
            // Output goes straight through with -j 1: notice a closed stdout all the same.
            self.close_stdout();
        }
        if let Some(err) = done.stderr.as_mut().filter(|e| e.len() > 0) {
            let sink = &mut self.stderr;
            let result = self.progress.suspend(|| {
                err.write_tagged(sink, tag)?;
                // Job errors and fanout's own notices share stderr: keep them in order.
                sink.flush()
            });
            if let Err(e) = result {
                if self.files || e.kind() != io::ErrorKind::BrokenPipe {
                    self.stream_failed(&mut done.record, "standard error", &e);
                }
            }
        }
        let line = done.line.filter(|_| plain);
        self.batch.push((done.record, line));
    }

    /// Flushes the batch's output, then writes its records to the journal.
    fn end_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        if !self.stdout_closed && !self.output_failed {
            if let Err(err) = self.stdout.flush() {
                self.batch_output_failed(&err);
            }
        }
        for (record, line) in std::mem::take(&mut self.batch) {
            if let Some(journal) = self.journal.as_deref_mut() {
                let written = match &line {
                    Some(line) => journal.record_line(line),
                    None => journal.record(&record),
                };
                if let Err(err) = written {
                    self.journal_failed(&err);
                }
            }
            self.totals.add(&record);
        }
        self.flush_journal();
    }

    /// Writing the buffered standard output failed: which of the batch's jobs lost bytes is
    /// unknown, so each with output says so.
    fn batch_output_failed(&mut self, err: &io::Error) {
        let mut batch = std::mem::take(&mut self.batch);
        for (record, line) in batch.iter_mut().filter(|(r, _)| r.stdout_bytes > Some(0)) {
            self.stream_failed(record, "standard output", err);
            *line = None;
        }
        self.batch = batch;
    }

    /// A write to a stream failed: a reader that went away stops the run quietly; anything
    /// else (a full disk) is a lost output.
    fn stream_failed(
        &mut self,
        record: &mut crate::record::JobRecord,
        stream: &str,
        err: &io::Error,
    ) {
        if err.kind() == io::ErrorKind::BrokenPipe && !self.files && stream == "standard output" {
            self.close_stdout();
        } else {
            self.output_lost(record, stream, Some(err));
        }
    }

    /// A job's output could not be written: its record says so, and the run stops (loudly,
    /// unlike a reader that went away), as later output would be lost the same way.
    fn output_lost(
        &mut self,
        record: &mut crate::record::JobRecord,
        stream: &str,
        err: Option<&io::Error>,
    ) {
        let place = if self.files { "the task's" } else { "fanout's" };
        let why = match err {
            Some(err) => format!(
                "its output could not be written to {place} {stream}: {}",
                crate::error::io_reason(err)
            ),
            None => format!("its output was not written: {place} {stream} failed before"),
        };
        if matches!(record.status, Status::Ok | Status::Skipped) {
            record.status = Status::Failed;
        }
        record.reason = Some(match record.reason.take() {
            Some(r) => format!("{r}; {why}"),
            None => why.clone(),
        });
        if !self.output_failed {
            self.output_failed = true;
            self.progress.suspend(|| {
                print_notice(&format!(
                    "error: job output lost: {why}; stopping (the jobs concerned are recorded as failed)"
                ));
            });
            self.cancel.raise(Level::Stop, Reason::OutputFailed);
        }
    }

    fn journal_failed(&mut self, err: &io::Error) {
        if self.journal_error.is_none() {
            let path = self
                .journal
                .as_deref()
                .map(|j| j.path().display().to_string())
                .unwrap_or_default();
            let msg = format!(
                "cannot write the summary {path}: {}",
                crate::error::io_reason(err)
            );
            self.progress.suspend(|| print_notice(&msg));
            self.journal_error = Some(msg);
        }
    }

    fn flush_journal(&mut self) {
        if let Some(journal) = self.journal.as_deref_mut() {
            if let Err(err) = journal.flush() {
                self.journal_failed(&err);
            }
        }
    }

    fn close_stdout(&mut self) {
        self.stdout_closed = true;
        self.cancel.raise(Level::Stop, Reason::ClosedStdout);
    }
}
