//! The collector: the single owner of job output, the journal, the totals and the progress
//! bar. Records stream in from triage and the executor; the collector hands each to the parts
//! that do one job each: `Reorder` (`--keep-order`), `Outlet` (writing the output, in one
//! piece per job) and `Ledger` (the totals and the journal, once the output is out). The halt
//! rule is not applied here: it is applied as records leave their workers
//! (`executor::Context::halt_after`), before the collector sees them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use super::ledger::{Closed, Ledger};
use super::outlet::Outlet;
use super::reorder::Reorder;
use crate::config::Config;
use crate::error::print_notice;
use crate::executor::{Backlog, Bulk, Done};
use crate::input::Notice;
use crate::live::Board;
use crate::progress::Progress;

/// How often the job lines under the bar are redrawn.
const JOB_LINES_EVERY: Duration = Duration::from_millis(200);
/// The longest the collector lets records gather before it takes them (see `Linger`).
const LINGER_MAX: Duration = Duration::from_millis(10);

pub(super) struct Collector<'a> {
    config: &'a Config,
    progress: Progress,
    /// What running jobs are doing now (job lines, status lines).
    live: Option<&'a Board>,
    outlet: Outlet<'a>,
    /// With `--keep-order`.
    order: Option<Reorder>,
    ledger: Ledger<'a>,
    clock: Clock,
}

/// When the collector started, and when the job lines and the next status line are due.
struct Clock {
    start: Instant,
    next_lines: Instant,
    next_status: Option<Instant>,
}

impl<'a> Collector<'a> {
    pub(super) fn new(
        config: &'a Config,
        outlet: Outlet<'a>,
        ledger: Ledger<'a>,
        live: Option<&'a Board>,
    ) -> Collector<'a> {
        let now = Instant::now();
        Collector {
            config,
            progress: Progress::new(config.progress, config.job_lines),
            live,
            outlet,
            order: config.keep_order.then(Reorder::default),
            ledger,
            clock: Clock {
                start: now,
                next_lines: now,
                next_status: config.status_every.and_then(|d| now.checked_add(d)),
            },
        }
    }

    /// Without `--keep-order`'s reordering: for lines that come in order already (an inline
    /// executor's; records without output need no place in the order).
    pub(super) fn unordered(mut self) -> Collector<'a> {
        self.order = None;
        self
    }

    /// The totals and the journal, for the end of the run.
    pub(super) fn close(self) -> Closed<'a> {
        self.ledger.close()
    }

    /// Takes records until every sender is gone. Records that need no process arrive in
    /// bursts: everything ready is taken, then the journal is flushed once.
    pub(crate) fn collect(
        &mut self,
        done: &Receiver<Done>,
        early: &Receiver<Bulk>,
        notices: &Receiver<Notice>,
        found: &AtomicU64,
        running: &AtomicU64,
        backlog: &Backlog,
    ) {
        let (mut done_open, mut early_open, mut notices_open) = (true, true, true);
        let closed_done = crossbeam_channel::never::<Done>();
        let closed_early = crossbeam_channel::never::<Bulk>();
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
        let mut linger = Linger::new(done.capacity().unwrap_or(0));
        while done_open || early_open {
            // Take everything that is ready, then flush once; block (select) only when
            // nothing is: records that stream in never pay for a select's wake-up machinery.
            let took = self.take_ready(done, early, backlog, &mut linger);
            if !took {
                self.end_batch();
                // The bar shows what is out before the collector waits: records that come one
                // at a time (slow jobs) move it too.
                self.show_counts(found, running);
                if let Some(wait) = linger.wait() {
                    std::thread::sleep(wait);
                    continue;
                }
                select! {
                    recv(if done_open { done } else { &closed_done }) -> d => match d {
                        Ok(d) => {
                            self.accept(d, backlog);
                            linger.took(1);
                        }
                        Err(_) => done_open = false,
                    },
                    recv(if early_open { early } else { &closed_early }) -> b => match b {
                        Ok(bulk) => self.bulk(bulk, backlog),
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
        if let Some(mut order) = self.order.take() {
            order.drain(&mut |d| self.emit(d));
        }
        while let Ok(n) = notices.try_recv() {
            self.notice(n);
        }
        self.end_batch();
        self.progress.finish();
    }

    /// Takes every record that is ready; false if there was none.
    fn take_ready(
        &mut self,
        done: &Receiver<Done>,
        early: &Receiver<Bulk>,
        backlog: &Backlog,
        linger: &mut Linger,
    ) -> bool {
        let mut took = false;
        let mut records = 0;
        loop {
            if let Ok(bulk) = early.try_recv() {
                self.bulk(bulk, backlog);
            } else if let Ok(d) = done.try_recv() {
                self.accept(d, backlog);
                records += 1;
            } else {
                break;
            }
            took = true;
        }
        linger.took(records);
        took
    }

    fn show_counts(&self, found: &AtomicU64, running: &AtomicU64) {
        self.progress.update(
            self.ledger.totals().total(),
            found.load(Ordering::Relaxed),
            running.load(Ordering::Relaxed),
            self.ledger.totals().failed(),
        );
    }

    /// Redraws the job lines and prints a status line, each when it is due.
    fn tick(&mut self, found: &AtomicU64, running: &AtomicU64) {
        let Some(board) = self.live else { return };
        let now = Instant::now();
        if self.progress.has_job_lines() && now >= self.clock.next_lines {
            self.clock.next_lines = now + JOB_LINES_EVERY;
            // Jobs start and end between records: the counts follow the lines.
            self.show_counts(found, running);
            self.progress.show_jobs(&board.rows());
        }
        if let (Some(every), Some(at)) = (self.config.status_every, self.clock.next_status) {
            if now >= at {
                self.clock.next_status = now.checked_add(every);
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
        let done = self.ledger.totals().total();
        let secs = self.clock.start.elapsed().as_secs_f64();
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
            self.ledger.totals().failed()
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
        let msg = match notice {
            Notice::Error(msg) | Notice::Info(msg) => msg,
            Notice::Journal(line) => return self.ledger.line(&line, &self.progress),
        };
        self.progress.suspend(|| print_notice(&msg));
    }

    fn bulk(&mut self, bulk: Bulk, backlog: &Backlog) {
        match bulk {
            Bulk::Records(all) => all.into_iter().for_each(|d| self.accept(d, backlog)),
            Bulk::Listed { text, jobs } => {
                self.outlet.list(&text, &self.progress);
                self.ledger.listed(jobs);
            }
        }
    }

    fn accept(&mut self, done: Done, backlog: &Backlog) {
        let Some(mut order) = self.order.take() else {
            return self.emit(done);
        };
        order.accept(done, &mut |d| self.emit(d));
        let (held, next) = order.state();
        self.order = Some(order);
        backlog.set(held, next);
    }

    /// Writes one job's output in one piece; its record follows at the end of the burst.
    fn emit(&mut self, mut done: Done) {
        let changed = self
            .outlet
            .write(&mut done, &self.progress, self.ledger.pending_mut());
        // A line formatted before stays unless the record changed here (lost output).
        let line = done.line.filter(|_| !changed);
        self.ledger.push(done.record, line);
    }

    /// Flushes the burst's output, then counts its records and writes them to the journal.
    fn end_batch(&mut self) {
        if !self.ledger.has_pending() {
            return;
        }
        self.outlet.flush(&self.progress, self.ledger.pending_mut());
        self.ledger.commit(&self.progress);
    }
}

/// Records of jobs that stream in (tiny jobs, one after another on every worker) are taken a
/// few at a time: once the queue is empty the collector sleeps about as long as half of it
/// takes to fill at the rate records came, at most `LINGER_MAX`, instead of waiting in
/// `select`, where every record would wake it (a thread wake-up per job, paid on the workers'
/// cores). Records and their output wait that much at most. A sleep that found nothing is not
/// repeated, and records that come further apart than `LINGER_MAX` are waited for as before.
struct Linger {
    /// Half the records queue.
    half: u32,
    /// When records were last taken.
    last: Instant,
    /// The time between records, as they came last.
    each: Duration,
    /// The collector slept and has taken nothing since.
    slept: bool,
}

impl Linger {
    fn new(capacity: usize) -> Linger {
        Linger {
            half: u32::try_from(capacity / 2).unwrap_or(u32::MAX),
            last: Instant::now(),
            each: Duration::MAX,
            slept: false,
        }
    }

    /// `records` records of jobs were just taken.
    fn took(&mut self, records: u32) {
        if records > 0 {
            let now = Instant::now();
            self.each = now.duration_since(self.last) / records;
            self.last = now;
            self.slept = false;
        }
    }

    /// Nothing is ready: how long to sleep before looking again, if at all.
    fn wait(&mut self) -> Option<Duration> {
        if std::mem::take(&mut self.slept) || self.each > LINGER_MAX {
            return None;
        }
        self.slept = true;
        Some(self.each.saturating_mul(self.half).min(LINGER_MAX))
    }
}
