//! The worker pool: the walker feeds a bounded channel, `jobs` scoped worker threads take
//! inputs from it, run one job each at a time and send finished records to the collector.
//!
//! The collector (on the main thread) is the only writer of stdout, stderr, the progress bar
//! and the journal. Cancellation (signals, a closed stdout) goes through `Cancel`: admission
//! stops, running jobs are stopped by `child.rs`, and every input still in the channel becomes
//! a `not_started` record, so the records always add up to the inputs.

mod admit;
mod child;
mod sampler;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use crossbeam_channel::{bounded, select, Receiver, Sender};

use crate::cancel::{self, Cancel, Level, Reason};
use crate::cli::{Halt, Order};
use crate::config::Config;
use crate::error::{print_notice, ExitStatus};
use crate::inplace::{InPlace, Problem, Refusal};
use crate::memory::{self, Meter};
use crate::progress::Progress;
use crate::resume::{self, Resume};
use crate::summary::MemoryReport;
use crate::summary::{JobRecord, Journal, Status, Totals};
use crate::template::JobValues;
use crate::walk::{self, Input, Notice, WalkReport};
use admit::{Gate, Permit};
use child::{Ending, Finished, Launch, Spool};
use sampler::Sampler;

/// How long the collector waits between batches while records stream in.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// A finished input on its way to the collector, with the job's captured output.
struct Done {
    record: JobRecord,
    stdout: Option<Spool>,
    stderr: Option<Spool>,
}

/// What every worker shares.
struct Shared<'a> {
    config: &'a Config,
    cancel: &'a Cancel,
    running: AtomicU64,
    resume: Option<Resume>,
    in_place: Option<InPlace>,
    /// For messages from workers (stale temporary files removed).
    notices: Sender<Notice>,
    gate: Gate,
    sampler: Sampler,
    start: Instant,
    /// A Slurm worker's log of started jobs.
    started: Option<std::sync::Mutex<std::fs::File>>,
}

/// Where a run's inputs come from.
pub(crate) enum Source {
    /// The walk described by the configuration.
    Walk,
    /// A list made elsewhere (a shard of a Slurm plan), numbered already.
    Given(Vec<Input>),
}

/// A Slurm worker's outputs: job output goes to files of the plan directory rather than to
/// fanout's own stdout and stderr, and the journal starts with a line about the worker.
pub(crate) struct WorkerIo {
    pub stdout: std::fs::File,
    pub stderr: std::fs::File,
    pub header: serde_json::Value,
    /// Each job's number is appended here when it starts: if the task is killed, the submitter
    /// can tell the file that was running from those never reached.
    pub started: Option<std::fs::File>,
}

/// Runs the whole pipeline and returns the exit status.
pub(crate) fn run(config: &Config) -> Result<ExitStatus> {
    run_with(config, Source::Walk, None)
}

/// Runs the pipeline over `source`; `worker` redirects job output (Slurm array tasks).
pub(crate) fn run_with(
    config: &Config,
    source: Source,
    mut worker: Option<WorkerIo>,
) -> Result<ExitStatus> {
    let cancel = Arc::new(Cancel::new().context("cannot create a pipe")?);
    cancel::watch_signals(Arc::clone(&cancel)).context("cannot install signal handlers")?;
    crate::os::become_subreaper();
    crate::os::protect_from_oom();
    let mut meter = Meter::new();
    let snapshot = meter.snapshot();
    let (budget, reserve) = memory::plan(config.mem_limit, config.mem_reserve, &snapshot);
    // Read the journal to resume before --summary (possibly the same file) is truncated.
    let resume = Resume::for_run(config.resume.as_deref(), config.quiet)?;
    let mut journal = match &config.summary {
        Some(path) => Some(
            Journal::create(path)
                .with_context(|| format!("cannot write the summary {}", path.display()))?,
        ),
        None => None,
    };
    if let (Some(j), Some(w)) = (journal.as_mut(), worker.as_ref()) {
        j.line(&w.header)
            .with_context(|| format!("cannot write the summary {}", j.path().display()))?;
    }

    let start = Instant::now();
    let capacity = 2 * config.jobs + 16;
    let (input_tx, input_rx) = bounded::<Input>(capacity);
    let (done_tx, done_rx) = bounded::<Done>(capacity);
    let (notice_tx, notice_rx) = bounded::<Notice>(64);
    let found = AtomicU64::new(0);
    let shared = Shared {
        config,
        cancel: &cancel,
        running: AtomicU64::new(0),
        resume,
        in_place: config.in_place.clone().map(InPlace::new),
        notices: notice_tx.clone(),
        gate: Gate::new(
            budget,
            config.jobs,
            config.mem_per_job,
            reserve,
            meter,
            config.srun.is_some(),
        ),
        sampler: Sampler::new(start),
        start,
        started: worker
            .as_mut()
            .and_then(|w| w.started.take())
            .map(std::sync::Mutex::new),
    };
    let (sampler_stop, sampler_stopped) = bounded::<()>(0);

    let (totals, walk_report) = std::thread::scope(|s| -> Result<(Totals, WalkReport)> {
        let shared = &shared;
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn_scoped(s, move || shared.sampler.run(&sampler_stopped))?;
        // With --order largest-first, a planner stage collects every input, weighs them in
        // parallel and sends them on heaviest first.
        let (walk_tx, plan_rx) = match config.order {
            Order::Input => (input_tx, None),
            Order::LargestFirst => {
                let (tx, rx) = bounded::<Input>(capacity);
                (tx, Some((rx, input_tx)))
            }
        };
        if let Some((rx, tx)) = plan_rx {
            std::thread::Builder::new()
                .name("plan".into())
                .spawn_scoped(s, move || heaviest_first(&rx, &tx))?;
        }
        let walker = std::thread::Builder::new()
            .name("walk".into())
            .spawn_scoped(s, || {
                let report = match source {
                    Source::Walk => walk::scan(&config.walk, &walk_tx, &notice_tx, &cancel, &found),
                    Source::Given(inputs) => {
                        for input in inputs {
                            found.fetch_add(1, Ordering::Relaxed);
                            if walk_tx.send(input).is_err() {
                                break;
                            }
                        }
                        Ok(WalkReport::default())
                    }
                };
                drop(walk_tx);
                drop(notice_tx);
                report
            })?;
        for slot in 1..=config.jobs {
            let rx = input_rx.clone();
            let tx = done_tx.clone();
            std::thread::Builder::new()
                .name(format!("worker-{slot}"))
                .spawn_scoped(s, move || work(shared, slot, &rx, &tx))?;
        }
        drop(input_rx);
        drop(done_tx);
        let mut collector = Collector {
            config,
            cancel: &cancel,
            progress: Progress::new(config.progress),
            journal: journal.as_mut(),
            journal_failed: false,
            totals: Totals::default(),
            reorder: BTreeMap::new(),
            next_job: 1,
            stdout_closed: false,
            worker: worker.as_mut(),
        };
        collector.collect(&done_rx, &notice_rx, &found, &shared.running);
        collector.progress.finish();
        let report = walker.join().expect("walker thread")?;
        drop(sampler_stop);
        let mut totals = collector.totals;
        if collector.journal_failed {
            // A journal that could not be written is a failure scripts must see.
            totals.walk_errors += 1;
        }
        Ok((totals, report))
    })?;
    let mut totals = totals;
    totals.walk_errors += walk_report.errors;
    let wall = start.elapsed();
    let stopped = cancel.reason();
    let exit = totals.exit_status(stopped);
    let memory_report = MemoryReport {
        mem_limit_bytes: shared.gate.budget(),
        mem_available_bytes: snapshot.available,
        cgroup_limit_bytes: snapshot.cgroup_limit,
        max_running: shared.gate.max_running(),
        max_memory_bytes: shared.sampler.max_total(),
        model: shared.gate.fit(),
        timeline: shared.sampler.timeline(),
        fanout_cpu_ms: crate::os::own_cpu().as_millis() as u64,
        fanout_cpu_ms_per_job: if totals.ran > 0 {
            let per_job = crate::os::own_cpu().as_secs_f64() * 1000.0 / totals.ran as f64;
            (per_job * 1000.0).round() / 1000.0
        } else {
            0.0
        },
    };

    if !config.quiet && stopped != Some(Reason::ClosedStdout) {
        if totals.total() == 0 {
            print_notice(&nothing_matched(walk_report.hint.as_deref()));
        } else {
            let _ = writeln!(io::stderr(), "{}", totals.report(wall));
            // Jobs shorter than the sampling interval leave nothing to say about memory.
            if memory_report.max_memory_bytes > 0 {
                print_notice(&format!(
                    "memory: at most {} jobs at once, peak {} of a {} budget",
                    memory_report.max_running,
                    memory::human(memory_report.max_memory_bytes),
                    memory::human(memory_report.mem_limit_bytes)
                ));
            }
        }
    }
    if let Some(j) = journal.as_mut() {
        if let Err(err) = j.finish(&totals, wall, exit, stopped, &memory_report, None) {
            print_notice(&format!(
                "cannot write the summary {}: {err}",
                j.path().display()
            ));
            return Ok(ExitStatus::Failure.max_with(exit));
        }
    }
    Ok(exit)
}

pub(crate) fn nothing_matched(hint: Option<&str>) -> String {
    match hint {
        Some(h) => format!("no files matched; {h}"),
        None => "no files matched".to_string(),
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
        None => "not started".into(),
    }
}

/// Collects every input, weighs them in parallel and sends them on, heaviest first.
fn heaviest_first(inputs: &Receiver<Input>, out: &Sender<Input>) {
    use rayon::prelude::*;
    let mut all: Vec<Input> = inputs.iter().collect();
    all.par_iter_mut()
        .filter(|i| i.problem.is_none())
        .for_each(|i| i.weight = Some(crate::parquet::weight(&i.path)));
    // Stable: equal weights keep input order.
    all.sort_by_key(|i| std::cmp::Reverse(i.weight.unwrap_or(0)));
    for input in all {
        if out.send(input).is_err() {
            return;
        }
    }
}

/// One worker: takes inputs until the channel closes, one job at a time.
fn work(shared: &Shared, slot: usize, inputs: &Receiver<Input>, done: &Sender<Done>) {
    for input in inputs {
        let finished = if let Some(problem) = &input.problem {
            let mut record = JobRecord::new(input.job, &input.path, Status::Failed);
            record.reason = Some(problem.clone());
            Done {
                record,
                stdout: None,
                stderr: None,
            }
        } else if let Some((reason, id)) = shared.resume.as_ref().and_then(|r| r.skip(&input.path))
        {
            let mut record = JobRecord::new(input.job, &input.path, Status::Skipped);
            record.reason = Some(reason);
            record.file_size = Some(id.size);
            record.file_mtime_ns = Some(id.mtime_ns);
            Done {
                record,
                stdout: None,
                stderr: None,
            }
        } else if shared.cancel.no_new_jobs() {
            let mut record = JobRecord::new(input.job, &input.path, Status::NotStarted);
            record.reason = Some(not_started_reason(shared.cancel));
            if shared.in_place.is_some() {
                record.action = Some("kept");
            }
            Done {
                record,
                stdout: None,
                stderr: None,
            }
        } else {
            shared.running.fetch_add(1, Ordering::Relaxed);
            let done = run_job(shared, slot, &input);
            shared.running.fetch_sub(1, Ordering::Relaxed);
            done
        };
        let status = finished.record.status;
        if status.is_failure() && !matches!(status, Status::NotStarted | Status::Interrupted) {
            match shared.config.halt {
                Some(Halt::Soon) => shared.cancel.raise(Level::Drain, Reason::Halt),
                Some(Halt::Now) => shared.cancel.raise(Level::Stop, Reason::Halt),
                None => {}
            }
        }
        if done.send(finished).is_err() {
            return;
        }
    }
}

/// Runs one input's job, again after a failure or timeout while `--retries` allows. In place,
/// the input is checked and locked first and replaced at most once, after the last attempt.
fn run_job(shared: &Shared, slot: usize, input: &Input) -> Done {
    let prepared = match &shared.in_place {
        None => None,
        Some(ip) => {
            let (prepared, swept) = ip.prepare(&input.path, input.job);
            if !swept.is_empty() {
                let names: Vec<String> = swept.iter().map(|p| p.display().to_string()).collect();
                let _ = shared.notices.send(Notice::Info(format!(
                    "removed {} temporary file(s) left by fanout runs that are no longer alive: {}",
                    swept.len(),
                    names.join(", ")
                )));
            }
            match prepared {
                Ok(p) => Some(p),
                Err(refusal) => return refused(input, refusal),
            }
        }
    };
    let weight = input
        .weight
        .unwrap_or_else(|| crate::parquet::weight(&input.path));
    let Some(permit) = shared.gate.admit(weight, shared.cancel, &shared.sampler) else {
        if let Some(p) = &prepared {
            InPlace::discard(p);
        }
        let mut record = JobRecord::new(input.job, &input.path, Status::NotStarted);
        record.weight_bytes = Some(weight);
        record.reason = Some(not_started_reason(shared.cancel));
        if shared.in_place.is_some() {
            record.action = Some("kept");
        }
        return Done {
            record,
            stdout: None,
            stderr: None,
        };
    };
    if permit.alone {
        let _ = shared.notices.send(Notice::Info(format!(
            "{}: its job needs about {}, more than the whole memory budget ({}): running it alone",
            input.path.display(),
            memory::human(permit.reserved),
            memory::human(shared.gate.budget())
        )));
    }
    let done = run_admitted(shared, slot, input, prepared, weight, permit);
    // Under srun the job runs elsewhere: the local peak is srun's own, nothing to learn from.
    let peak = done
        .record
        .peak_rss_bytes
        .filter(|_| shared.config.srun.is_none());
    shared.gate.release(permit, weight, peak);
    done
}

/// Runs an admitted job through its attempts.
fn run_admitted(
    shared: &Shared,
    slot: usize,
    input: &Input,
    prepared: Option<crate::inplace::Prepared>,
    weight: u64,
    permit: Permit,
) -> Done {
    let config = shared.config;
    let mut argv = config.template.expand(&JobValues {
        path: &input.path,
        job: input.job,
        slot,
        threads: config.threads,
        out: prepared.as_ref().map(|p| p.out.as_path()),
        mem_mib: permit.reserved >> 20,
    });
    let mut program = config.program.as_deref();
    if let Some(alloc) = &config.srun {
        argv = alloc.wrap(&argv, input.job, permit.reserved);
        program = Some(alloc.srun.as_path());
    }
    let started_ms = shared.start.elapsed().as_millis() as u64;
    if let Some(log) = &shared.started {
        if let Ok(mut f) = log.lock() {
            let _ = writeln!(f, "{}", input.job);
        }
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let finished = child::run(&Launch {
            argv: &argv,
            program,
            capture: config.capture,
            timeout: config.timeout,
            kill_grace: config.kill_grace,
            cancel: shared.cancel,
            sampler: Some(&shared.sampler),
            reserved: permit.reserved,
        });
        let mut record = JobRecord::new(input.job, &input.path, Status::Ok);
        record.set_command(&argv);
        record.started_ms = Some(started_ms);
        record.weight_bytes = Some(weight);
        record.mem_reserved_bytes = Some(permit.reserved);
        judge(&mut record, &finished, config);
        let again = matches!(record.status, Status::Failed | Status::Timeout)
            && attempts <= config.retries
            && !shared.cancel.no_new_jobs();
        if again {
            if let Some(p) = &prepared {
                InPlace::discard(p);
            }
            continue;
        }
        record.attempts = attempts;
        if let (Some(ip), Some(p)) = (&shared.in_place, prepared) {
            conclude_in_place(ip, p, &mut record);
        }
        if let Some(id) = resume::identity(&input.path) {
            record.file_size = Some(id.size);
            record.file_mtime_ns = Some(id.mtime_ns);
        }
        return Done {
            record,
            stdout: finished.stdout,
            stderr: finished.stderr,
        };
    }
}

/// Verifies and replaces (or keeps) an in-place input, and records what happened.
fn conclude_in_place(ip: &InPlace, p: crate::inplace::Prepared, record: &mut JobRecord) {
    let verify = p.verify;
    let outcome = ip.finish(p, record.status == Status::Ok);
    record.action = Some(if outcome.replaced { "replaced" } else { "kept" });
    record.input_bytes = outcome.input_bytes;
    record.output_bytes = outcome.output_bytes;
    record.rows_in = outcome.rows_in;
    record.rows_out = outcome.rows_out;
    record.verify = Some(verify.name().to_string());
    match outcome.problem {
        Some(Problem::Invalid(why)) => {
            record.status = Status::InvalidOutput;
            record.verify = Some(format!("{}: {why}", verify.name()));
            record.reason = Some(format!("verification failed, original kept: {why}"));
        }
        Some(Problem::Failed(why)) => {
            record.status = Status::Failed;
            record.reason = Some(format!("original kept: {why}"));
        }
        None if !outcome.replaced && record.reason.is_none() => {
            record.reason = Some(match record.status {
                Status::Interrupted => "interrupted; original kept".into(),
                _ => "the command did not succeed; original kept".into(),
            });
        }
        None => {}
    }
}

/// The record of an input that in-place mode refused to run.
fn refused(input: &Input, refusal: Refusal) -> Done {
    let (status, reason) = match refusal {
        Refusal::ReadOnly(r) => (Status::Skipped, r),
        Refusal::InvalidInput(r) => (Status::InvalidInput, r),
        Refusal::Locked(r) => (Status::NotStarted, r),
        Refusal::Failed(r) => (Status::Failed, r),
    };
    let mut record = JobRecord::new(input.job, &input.path, status);
    record.reason = Some(reason);
    record.action = Some("kept");
    Done {
        record,
        stdout: None,
        stderr: None,
    }
}

/// Turns how the process ended into the record's status and fields.
fn judge(record: &mut JobRecord, f: &Finished, config: &Config) {
    record.set_duration(f.duration);
    record.peak_rss_bytes = f.peak_rss_bytes;
    record.stdout_bytes = f.stdout.as_ref().map(Spool::len);
    record.stderr_bytes = f.stderr.as_ref().map(Spool::len);
    record.stderr_tail = f.stderr.as_ref().and_then(Spool::last_line);
    match &f.ending {
        Ending::Exited(code) => record.exit_code = Some(*code),
        Ending::Signaled(sig) => record.signal = Some(*sig),
        Ending::Lost => {
            record.status = Status::Failed;
            record.reason = Some("its exit status could not be read".into());
            return;
        }
        Ending::SpawnFailed(reason) => {
            record.status = Status::Failed;
            record.reason = Some(format!("cannot run the command: {reason}"));
            return;
        }
    }
    record.status = if f.interrupted {
        Status::Interrupted
    } else if f.timed_out {
        let limit = config.timeout.unwrap_or_default();
        record.reason = Some(format!(
            "timed out after {}",
            humantime::format_duration(limit)
        ));
        Status::Timeout
    } else if f.ending == Ending::Exited(0) {
        Status::Ok
    } else {
        Status::Failed
    };
    let spool_error = [&f.stdout, &f.stderr]
        .into_iter()
        .flatten()
        .find_map(|s| s.error.clone());
    if let Some(err) = spool_error {
        if record.status == Status::Ok {
            record.status = Status::Failed;
        }
        record.reason = Some(err);
    }
}

/// The single owner of stdout, stderr, the progress bar and the journal.
struct Collector<'a> {
    config: &'a Config,
    cancel: &'a Cancel,
    progress: Progress,
    journal: Option<&'a mut Journal>,
    journal_failed: bool,
    totals: Totals,
    /// With `--keep-order`: finished records waiting for their turn.
    reorder: BTreeMap<u64, Done>,
    next_job: u64,
    stdout_closed: bool,
    /// A Slurm worker's output files, instead of stdout and stderr.
    worker: Option<&'a mut WorkerIo>,
}

impl Collector<'_> {
    fn collect(
        &mut self,
        done: &Receiver<Done>,
        notices: &Receiver<Notice>,
        found: &AtomicU64,
        running: &AtomicU64,
    ) {
        let mut notices_open = true;
        loop {
            // While records stream in, take them in batches: a short pause between batches
            // saves a wake-up (and a trip across CPUs) per job, which matters when thousands
            // of tiny jobs share two cores. When nothing is arriving, block as usual.
            let mut batch = 0;
            while let Ok(d) = done.try_recv() {
                self.accept(d);
                batch += 1;
            }
            while let Ok(n) = notices.try_recv() {
                self.notice(n);
            }
            if batch > 0 {
                self.update_progress(found, running);
                std::thread::sleep(BATCH_PAUSE);
                continue;
            }
            let event = if notices_open {
                select! {
                    recv(done) -> d => d.map(Some),
                    recv(notices) -> n => match n {
                        Ok(n) => { self.notice(n); Ok(None) }
                        Err(_) => { notices_open = false; Ok(None) }
                    },
                }
            } else {
                done.recv().map(Some)
            };
            match event {
                Ok(Some(d)) => self.accept(d),
                Ok(None) => {}
                Err(_) => break,
            }
            self.update_progress(found, running);
        }
        // Anything still held for ordering (only if job numbers had gaps) goes out now.
        let rest = std::mem::take(&mut self.reorder);
        for (_, d) in rest {
            self.emit(d);
        }
        while let Ok(n) = notices.try_recv() {
            self.notice(n);
        }
    }

    fn update_progress(&self, found: &AtomicU64, running: &AtomicU64) {
        self.progress.update(
            self.totals.total(),
            found.load(Ordering::Relaxed),
            running.load(Ordering::Relaxed),
            self.totals.failed(),
        );
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Error(msg) | Notice::Info(msg) => {
                self.progress.suspend(|| print_notice(&msg));
            }
        }
    }

    fn accept(&mut self, done: Done) {
        if !self.config.keep_order {
            return self.emit(done);
        }
        self.reorder.insert(done.record.job, done);
        while let Some(d) = self.reorder.remove(&self.next_job) {
            self.next_job += 1;
            self.emit(d);
        }
    }

    fn emit(&mut self, mut done: Done) {
        if let Some(w) = self.worker.as_deref_mut() {
            // A worker's job output goes to files, whole jobs in the order their records are
            // written (the submitter relays it by the records' byte counts).
            for (spool, file) in [
                (&mut done.stdout, &mut w.stdout),
                (&mut done.stderr, &mut w.stderr),
            ] {
                if let Some(spool) = spool.as_mut() {
                    if let Err(err) = spool.write_to(file).and_then(|_| file.flush()) {
                        print_notice(&format!("cannot write job output: {err}"));
                    }
                }
            }
        } else if let Some(out) = done.stdout.as_mut() {
            if !self.stdout_closed {
                let result = self.progress.suspend(|| {
                    let mut stdout = io::stdout().lock();
                    out.write_to(&mut stdout).and_then(|_| stdout.flush())
                });
                if let Err(err) = result {
                    if err.kind() == io::ErrorKind::BrokenPipe {
                        self.close_stdout();
                    }
                }
            }
        } else if !self.config.capture
            && !self.stdout_closed
            && crate::os::peer_closed(io::stdout().as_fd())
        {
            // Output goes straight through with -j 1: notice a closed stdout all the same.
            self.close_stdout();
        }
        if let (None, Some(err)) = (&self.worker, done.stderr.as_mut()) {
            let _ = self.progress.suspend(|| {
                let mut stderr = io::stderr().lock();
                err.write_to(&mut stderr).and_then(|_| stderr.flush())
            });
        }
        if let Some(journal) = self.journal.as_deref_mut() {
            if let Err(err) = journal.record(&done.record) {
                if !self.journal_failed {
                    self.journal_failed = true;
                    print_notice(&format!(
                        "cannot write the summary {}: {err}",
                        journal.path().display()
                    ));
                }
            }
        }
        self.totals.add(&done.record);
    }

    fn close_stdout(&mut self) {
        self.stdout_closed = true;
        self.cancel.raise(Level::Stop, Reason::ClosedStdout);
    }
}

impl ExitStatus {
    /// The more serious of two statuses (a stop by signal outranks a failure).
    fn max_with(self, other: ExitStatus) -> ExitStatus {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }
}
