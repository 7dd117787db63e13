//! The local executor: a pool of `jobs` worker threads that take inputs from the run core,
//! run one job each at a time under the memory gate, and hand back one record per input.
//!
//! Each worker admits a job (`admit.rs`: memory-aware), runs it (`child.rs`), retries it while
//! `--retries` allows, concludes an in-place rewrite, and sends the record with the captured
//! output to the collector. Under `--executor srun` each job is wrapped as a step of the
//! allocation. Cancellation comes through `Cancel`: admission stops and running jobs are
//! stopped by `child.rs`; inputs still queued become `not_started` records.

mod admit;
mod batched;
mod child;
mod sampler;

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use crossbeam_channel::bounded;

use crate::config::Order;
use crate::config::{Config, Mode};
use crate::error::print_notice;
use crate::executor::{Context, Done, Executor, Extra, Queue};
use crate::inplace::{InPlace, Problem, Refusal};
use crate::input::{Input, Notice};
use crate::memory::{self, Meter};
use crate::output::Spool;
use crate::record::MemoryReport;
use crate::record::{Action, JobRecord, Status};
use crate::resume;
use crate::template::JobValues;
use admit::{Gate, Permit};
use child::{Ending, Finished, Launch};
use sampler::Sampler;

/// Workers that may wait for memory beyond `-j`, at most.
const LOOKAHEAD: usize = 16;
/// Times a job may be stopped by the memory safety net and run again before it runs alone.
const REQUEUES_BEFORE_ALONE: u32 = 2;

/// The local pool (also under `--executor srun`, where each job is an srun step).
pub(crate) struct Pool;

/// What every worker shares.
struct Shared<'a> {
    ctx: &'a Context<'a>,
    config: &'a Config,
    in_place: Option<InPlace>,
    gate: Gate,
    sampler: Sampler<'a>,
    start: Instant,
}

impl Executor for Pool {
    fn execute(&mut self, jobs: &Queue<'_>) -> Result<Extra> {
        let ctx = jobs.ctx;
        let config = ctx.config;
        crate::os::become_subreaper();
        crate::os::protect_from_oom();
        let mut meter = Meter::new();
        let snapshot = meter.snapshot();
        let (budget, reserve) = memory::plan(config.mem_limit, config.run.mem_reserve, &snapshot);
        let shared = Shared {
            ctx,
            config,
            in_place: config.run.commit_options().map(InPlace::new),
            gate: Gate::new(
                budget,
                config.run.jobs,
                config.run.mem_per_job,
                reserve,
                meter,
                matches!(config.mode, Mode::Srun(_)),
                config.run.order == Order::Input,
            ),
            sampler: Sampler::new(ctx.start, ctx.live),
            start: ctx.start,
        };
        let (sampler_stop, sampler_stopped) = bounded::<()>(0);
        let (batch_tx, batch_rx) = bounded::<crate::batch::Batch>(0);
        let batch_rx = &batch_rx;
        std::thread::scope(|s| -> Result<()> {
            let shared = &shared;
            std::thread::Builder::new()
                .name("sampler".into())
                .spawn_scoped(s, move || {
                    shared.sampler.run(&sampler_stopped, |sampler| {
                        shared.gate.watch(sampler, ctx.cancel);
                    });
                })?;
            // With -X one thread forms the batches; a worker takes the next as its slot frees.
            if let Some(batching) = &config.batch {
                std::thread::Builder::new()
                    .name("batches".into())
                    .spawn_scoped(s, move || {
                        crate::batch::form(
                            batching,
                            &config.template,
                            config.run.jobs,
                            jobs.inputs(),
                            &mut |b| batch_tx.send(b).is_ok(),
                        );
                    })?;
            } else {
                drop(batch_tx);
            }
            let mut workers = Vec::new();
            // Workers beyond `-j` hold inputs waiting for memory, so that admission can choose
            // the one that fits the room best; at most `-j` jobs run at once all the same.
            // Batches are formed as a slot frees: no worker waits ahead of one.
            let lookahead = if matches!(config.mode, Mode::Srun(_))
                || config.run.jobs == 1
                || config.batch.is_some()
            {
                0
            } else {
                config.run.jobs.min(LOOKAHEAD)
            };
            for n in 1..=config.run.jobs + lookahead {
                let spawned = std::thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn_scoped(s, move || {
                        if config.batch.is_some() {
                            batched::work(shared, jobs, batch_rx);
                        } else {
                            work(shared, jobs);
                        }
                    });
                match spawned {
                    Ok(handle) => workers.push(handle),
                    // Jobs may be running already: go on with the workers there are.
                    Err(err) if !workers.is_empty() => {
                        if workers.len() < config.run.jobs {
                            print_notice(&format!(
                                "could start only {} of {} workers ({}): running at most {} at once",
                                workers.len(),
                                config.run.jobs,
                                crate::error::io_reason(&err),
                                crate::error::counted(workers.len() as u64, "job")
                            ));
                        }
                        break;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            for w in workers {
                let _ = w.join();
            }
            drop(sampler_stop);
            Ok(())
        })?;
        let (pauses, requeues) = shared.gate.net_counts();
        Ok(Extra {
            memory: MemoryReport {
                mem_limit_bytes: shared.gate.budget(),
                mem_available_bytes: snapshot.available,
                cgroup_limit_bytes: snapshot.cgroup_limit,
                max_running: shared.gate.max_running(),
                max_memory_bytes: shared.sampler.max_total(),
                mem_reserve_bytes: Some(shared.gate.reserve()),
                mem_margin: shared.gate.margin(),
                mem_pauses: pauses,
                mem_requeues: requeues,
                model: shared.gate.fit(),
                timeline: shared.sampler.timeline(),
                ..MemoryReport::default()
            },
            ..Extra::default()
        })
    }
}

/// One worker: takes inputs until the channel closes, one job at a time.
fn work(shared: &Shared, jobs: &Queue<'_>) {
    let keep_order = shared.config.keep_order && shared.config.run.order == Order::Input;
    for input in jobs.inputs() {
        let finished = if shared.ctx.cancel.no_new_jobs() {
            Done::bare(shared.ctx.not_started(input.job, &input.path))
        } else {
            if keep_order {
                shared
                    .ctx
                    .backlog
                    .wait_for_room(input.job, shared.ctx.cancel);
            }
            let ticket = shared.gate.take();
            run_job(shared, &input, ticket)
        };
        let mut finished = finished;
        if let Some(target) = &input.target {
            finished.record.set_output(target);
        }
        if !jobs.hand_back(finished) {
            return;
        }
    }
}

/// Runs one input's job, again after a failure or timeout while `--retries` allows, and again
/// from scratch when the memory safety net stopped it. In place, the input is checked and
/// locked first and replaced at most once, after the last attempt.
fn run_job(shared: &Shared, input: &Input, ticket: admit::Ticket<'_>) -> Done {
    let mut ticket = Some(ticket);
    let mut prepared = match &shared.in_place {
        None => None,
        Some(ip) => {
            let (prepared, swept) = match &input.target {
                Some(target) => ip.prepare_output(&input.path, target, input.job),
                None => ip.prepare(&input.path, input.job),
            };
            if !swept.is_empty() {
                let names: Vec<String> = swept.iter().map(|p| p.display().to_string()).collect();
                let _ = shared.ctx.notices.send(Notice::Info(format!(
                    "removed {} left by fanout runs that are no longer alive: {}",
                    crate::error::counted(swept.len() as u64, "temporary file"),
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
    // The place in the start order: input order, or heaviest first.
    let place = match shared.config.run.order {
        Order::Input => (0, input.job),
        Order::LargestFirst => (u64::MAX - weight, input.job),
    };
    let mut tries = Tries::default();
    loop {
        let requeued = tries.requeues > 0;
        let Some(permit) = shared.gate.admit(
            weight,
            place,
            tries.floor,
            ticket.take(),
            shared.ctx.cancel,
            &shared.sampler,
        ) else {
            if let Some(p) = prepared.take() {
                InPlace::discard(&p);
            }
            let mut record = shared.ctx.not_started(input.job, &input.path);
            record.weight_bytes = Some(weight);
            if tries.attempts > 0 {
                // Stopped by the safety net, then the run stopped admitting.
                record.attempts = tries.attempts;
                record.paused_ms = Some(tries.paused.as_millis() as u64);
                record.reason =
                    Some("stopped to free memory, not run again: the run was stopping".into());
            }
            return Done::bare(record);
        };
        if permit.alone && !requeued {
            let _ = shared.ctx.notices.send(Notice::Info(format!(
                "{}: its job needs about {}, more than the whole memory budget ({}): running it alone",
                input.path.display(),
                crate::units::human(permit.reserved),
                crate::units::human(shared.gate.budget())
            )));
        }
        // Only admitted jobs count as running (not inputs waiting for memory).
        shared.ctx.running.fetch_add(1, Ordering::Relaxed);
        let done = run_admitted(shared, input, &mut prepared, weight, permit, &mut tries);
        shared.ctx.running.fetch_sub(1, Ordering::Relaxed);
        if let Ok(done) = &done {
            // `--halt` stops admission before the permit frees room for a waiting input.
            shared.ctx.halt_after(done.record.status);
        }
        // Under srun the job runs elsewhere: the local peak is srun's own, nothing to learn from.
        let peak = done
            .as_ref()
            .ok()
            .and_then(|d| d.record.peak_rss_bytes)
            .filter(|_| !matches!(shared.config.mode, Mode::Srun(_)));
        shared.gate.release(permit, weight, peak);
        match done {
            Ok(done) => return done,
            Err(peak) => {
                // Run it again with room for what it reached and half as much again if it
                // outgrew its reservation; after a few times, alone.
                tries.requeues += 1;
                tries.floor = if tries.requeues > REQUEUES_BEFORE_ALONE {
                    shared.gate.budget().saturating_add(1)
                } else {
                    // A job stopped while within its reservation was not the one that
                    // outgrew its prediction: it keeps its reservation.
                    if peak <= permit.reserved {
                        permit.reserved
                    } else {
                        peak.saturating_add(peak / 2)
                    }
                };
                let _ = shared.ctx.notices.send(Notice::Info(format!(
                    "{}: stopped to keep memory below the limit (it reached {}); it runs again",
                    input.path.display(),
                    crate::units::human(peak)
                )));
            }
        }
    }
}

/// What one input's job went through so far.
#[derive(Debug, Default)]
struct Tries {
    attempts: u32,
    /// Times the memory safety net stopped it.
    requeues: u32,
    /// The least memory to reserve for it.
    floor: u64,
    paused: std::time::Duration,
    /// When its first attempt started, ms after the run started.
    started_ms: Option<u64>,
}

/// Runs an admitted job through its attempts; `Err(peak)` if the memory safety net stopped it
/// to run it again from scratch.
fn run_admitted(
    shared: &Shared,
    input: &Input,
    prepared: &mut Option<crate::inplace::Prepared>,
    weight: u64,
    permit: Permit,
    tries: &mut Tries,
) -> Result<Done, u64> {
    let config = shared.config;
    let slot = permit.slot;
    let mut argv = config.template.expand(&JobValues {
        path: &input.path,
        job: input.job,
        slot,
        threads: config.run.threads,
        out: prepared.as_ref().map(|p| p.out.as_path()),
        rel_at: input.rel_at,
        mem_mib: permit.reserved >> 20,
    });
    let mut program = config.program.as_deref();
    let mut term_step = None;
    if let Mode::Srun(alloc) = &config.mode {
        argv = alloc.wrap(&argv, input.job, permit.reserved);
        program = Some(alloc.srun.as_path());
        term_step = Some(|| alloc.term_step(input.job));
    }
    if tries.started_ms.is_none() {
        tries.started_ms = Some(shared.start.elapsed().as_millis() as u64);
        shared.ctx.job_started(input.job);
    }
    if let Some(board) = shared.ctx.live {
        board.start(slot, &input.path);
    }
    // The board's line goes however the job ends.
    let _ended = shared.ctx.live.map(|board| OnDrop(move || board.end(slot)));
    let mut retries = 0;
    loop {
        tries.attempts += 1;
        // The last attempt's start: with its duration, the record spans that attempt.
        let started_ms = shared.start.elapsed().as_millis() as u64;
        let finished = child::run(&Launch {
            slot,
            live: shared.ctx.live.filter(|b| b.wants_stderr()),
            argv: &argv,
            program,
            capture: config.capture,
            timeout: config.run.timeout,
            kill_grace: config.run.kill_grace,
            cancel: shared.ctx.cancel,
            sampler: Some(&shared.sampler),
            reserved: permit.reserved,
            term_step: term_step.as_ref().map(|f| f as &(dyn Fn() -> bool + Sync)),
        });
        tries.paused += finished.paused;
        if finished.evicted && !finished.interrupted {
            if let Some(p) = prepared.as_ref() {
                InPlace::discard(p);
            }
            return Err(finished.peak_rss_bytes.unwrap_or(0));
        }
        let mut record = JobRecord::new(input.job, &input.path, Status::Ok);
        record.set_command(&argv);
        record.started_ms = Some(started_ms);
        record.slot = Some(slot as u32);
        record.weight_bytes = Some(weight);
        record.mem_reserved_bytes = Some(permit.reserved);
        record.predicted_peak_bytes = permit.predicted;
        record.paused_ms = Some(tries.paused.as_millis() as u64);
        judge(&mut record, &finished, config);
        retries += 1;
        let again = matches!(record.status, Status::Failed | Status::Timeout)
            && retries <= config.run.retries
            && !shared.ctx.cancel.no_new_jobs();
        if again {
            if let Some(p) = prepared.as_ref() {
                InPlace::discard(p);
            }
            continue;
        }
        record.attempts = tries.attempts;
        if let Some(p) = prepared.take() {
            conclude_in_place(p, &mut record);
        }
        // The file's identity is for --resume, which reads it from the journal: without a
        // journal, no stat.
        if config.summary.is_some() {
            if let Some(id) = resume::identity(&input.path) {
                record.file_size = Some(id.size);
                record.file_mtime_ns = Some(id.mtime_ns);
            }
        }
        return Ok(Done {
            record,
            stdout: finished.stdout,
            stderr: finished.stderr,
            line: None,
        });
    }
}

/// Runs a closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Verifies and replaces (or keeps) an in-place input, and records what happened.
fn conclude_in_place(p: crate::inplace::Prepared, record: &mut JobRecord) {
    let verify = p.verify_name();
    let kept = if p.has_own_target() {
        "target left as it was"
    } else {
        "original kept"
    };
    let outcome = InPlace::finish(p, record.status == Status::Ok);
    record.action = Some(match (outcome.replaced, outcome.created) {
        (true, true) => Action::Created,
        (true, false) => Action::Replaced,
        (false, _) => Action::Kept,
    });
    record.input_bytes = outcome.input_bytes;
    record.output_bytes = outcome.output_bytes;
    record.rows_in = outcome.rows_in;
    record.rows_out = outcome.rows_out;
    record.verify = Some(verify.clone());
    match outcome.problem {
        Some(Problem::Invalid(why)) => {
            record.status = Status::InvalidOutput;
            record.verify = Some(format!("{verify}: {why}"));
            record.reason = Some(format!("verification failed, {kept}: {why}"));
        }
        Some(Problem::Failed(why)) => {
            record.status = Status::Failed;
            record.reason = Some(format!("{kept}: {why}"));
        }
        None if !outcome.replaced && record.reason.is_none() => {
            record.reason = Some(match record.status {
                Status::Interrupted => format!("interrupted; {kept}"),
                _ => format!("the command did not succeed; {kept}"),
            });
        }
        None => {}
    }
    if record.reason.is_none() {
        record.reason = outcome.note;
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
    record.action = Some(Action::Kept);
    Done::bare(record)
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
        let limit = config.run.timeout.unwrap_or_default();
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
