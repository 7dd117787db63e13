//! The job loop, one for single inputs and batches alike: admit a unit of work (memory-aware),
//! run it through its attempts (`--retries`), run it again from scratch when the memory safety
//! net stopped it, apply the halt rule, and only then give its memory back. With
//! `--split-failed` the halves of a batch that failed as a whole go through the same loop.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::admit::{Admission, Ask, Permit, Ticket};
use super::child::{self, EndedBy, Ending, Finished, Launch};
use super::sampler::Eviction;
use super::staged::{self, Staging, Upload};
use super::unit::{self, Commit, Unit};
use super::Shared;
use crate::batch::Batch;
use crate::config::{Config, Mode};
use crate::executor::Done;
use crate::inplace::{InPlace, Prepared, Problem, Refusal};
use crate::input::Notice;
use crate::output::Spool;
use crate::record::{JobRecord, Status};

/// Times a job may be stopped by the memory safety net and run again before it runs alone.
pub(super) const REQUEUES_BEFORE_ALONE: u32 = 2;

/// What a unit of work went through so far.
#[derive(Debug)]
pub(super) struct Tries {
    pub attempts: u32,
    /// Times the memory safety net stopped it.
    pub requeues: u32,
    /// How it asks for admission next.
    pub admission: Admission,
    pub paused: Duration,
    /// When its first attempt started, ms after the run started.
    pub started_ms: Option<u64>,
}

impl Default for Tries {
    fn default() -> Tries {
        Tries {
            attempts: 0,
            requeues: 0,
            admission: Admission::Fresh,
            paused: Duration::ZERO,
            started_ms: None,
        }
    }
}

impl Tries {
    /// The safety net stopped it at `peak` while `reserved` was reserved: it runs again with
    /// room for what it reached and half as much again if it outgrew its reservation (one
    /// stopped within its reservation was not the one that outgrew its prediction: it keeps
    /// its reservation); after `REQUEUES_BEFORE_ALONE` times, alone.
    pub(super) fn requeue(&mut self, peak: u64, reserved: u64, budget: u64) {
        self.requeues += 1;
        let floor = if self.requeues > REQUEUES_BEFORE_ALONE {
            budget.saturating_add(1)
        } else if peak <= reserved {
            reserved
        } else {
            peak.saturating_add(peak / 2)
        };
        self.admission = Admission::Requeued { floor };
    }
}

/// How an admitted unit's attempts ended.
pub(super) enum Attempt {
    /// With its records, one per input.
    Ended(Vec<Done>),
    /// The memory safety net stopped it at `peak` bytes: it is to run again from scratch.
    Stopped { peak: u64, why: Eviction },
}

/// Runs a unit of work: admits it, runs it with `attempt`, again from scratch when the safety
/// net stopped it; returns one record per input. `--halt` stops admission before the permit
/// frees room for a waiting input.
pub(super) fn drive(
    shared: &Shared,
    unit: &Unit,
    ticket: Option<Ticket<'_>>,
    attempt: &mut dyn FnMut(Permit, &[u64], &mut Tries) -> Attempt,
) -> Vec<Done> {
    let ctx = shared.ctx;
    let weights = unit::weights(unit.inputs());
    let weight = weights.iter().sum();
    let place = unit.place(shared.config.run.order, weight);
    let mut ticket = ticket;
    let mut tries = Tries::default();
    loop {
        let ask = Ask {
            weight,
            place,
            admission: tries.admission,
        };
        let Some(permit) = shared
            .gate
            .admit(ask, ticket.take(), ctx.cancel, &shared.sampler)
        else {
            return not_admitted(shared, unit, &weights, &tries);
        };
        if permit.alone && tries.admission == Admission::Fresh {
            notify(shared, format!(
                "{}: its job needs about {}, more than the whole memory budget ({}): running it alone",
                unit.name(),
                crate::units::human(permit.reserved),
                crate::units::human(shared.gate.budget())
            ));
        }
        // Only admitted jobs count as running (not inputs waiting for memory).
        let n = unit.inputs().len() as u64;
        ctx.running.fetch_add(n, Ordering::Relaxed);
        let outcome = attempt(permit, &weights, &mut tries);
        ctx.running.fetch_sub(n, Ordering::Relaxed);
        match outcome {
            Attempt::Ended(done) => {
                for d in &done {
                    ctx.halt_after(d.record.status);
                }
                // Under srun the job runs elsewhere: the local peak is srun's own.
                let peak = done
                    .first()
                    .and_then(|d| d.record.peak_rss_bytes)
                    .filter(|_| !matches!(shared.config.mode, Mode::Srun(_)));
                shared.gate.release(permit, weight, peak);
                return done;
            }
            Attempt::Stopped { peak, why } => {
                shared.gate.release(permit, weight, None);
                tries.requeue(peak, permit.reserved, shared.gate.budget());
                notify(shared, stopped_notice(unit, peak, why));
            }
        }
    }
}

fn notify(shared: &Shared, text: String) {
    let _ = shared.ctx.notices.send(Notice::Info(text));
}

fn stopped_notice(unit: &Unit, peak: u64, why: Eviction) -> String {
    match why {
        Eviction::Memory => format!(
            "{}: stopped to keep memory below the limit (it reached {}); it runs again",
            unit.name(),
            crate::units::human(peak)
        ),
        Eviction::Stalled => format!(
            "{}: paused to free memory while the running jobs used no CPU time (they may wait \
             for something it holds, such as a lock); stopped, it runs again",
            unit.name()
        ),
    }
}

/// The records of a unit the run stopped admitting before it ran (again).
fn not_admitted(shared: &Shared, unit: &Unit, weights: &[u64], tries: &Tries) -> Vec<Done> {
    unit.inputs()
        .iter()
        .zip(weights)
        .map(|(input, &weight)| {
            let mut record = shared.ctx.not_started(input.job, &input.path);
            record.weight_bytes = Some(weight);
            if tries.attempts > 0 {
                // Stopped by the safety net, then the run stopped admitting.
                record.attempts = tries.attempts;
                record.paused_ms = Some(tries.paused.as_millis() as u64);
                record.reason =
                    Some("stopped to free memory, not run again: the run was stopping".into());
            }
            Done::bare(record)
        })
        .collect()
}

/// Runs a unit of work end to end; with `--split-failed`, a batch that failed as a whole has
/// its files run again to find the ones that fail.
pub(super) fn run(shared: &Shared, unit: &Unit, ticket: Option<Ticket<'_>>) -> Vec<Done> {
    let done = run_once(shared, unit, ticket);
    match unit {
        Unit::Batch(batch) if splits(shared, &done) => split(shared, batch, done),
        _ => done,
    }
}

/// Whether the records of a batch call for running its files again: `--split-failed`, the
/// batch failed as a whole, and the run still starts jobs.
fn splits(shared: &Shared, done: &[Done]) -> bool {
    shared.config.batch.as_ref().is_some_and(|b| b.split_failed)
        && done
            .first()
            .is_some_and(|d| d.record.attributed == Some(false))
        && !shared.ctx.cancel.no_new_jobs()
}

/// Runs the files of a batch that failed as a whole again, by halves (bisection), each half
/// through this same loop (admission, retries, the safety net, the halt rule): a half that
/// succeeds clears its files, a half of several files that fails is split again, a file that
/// fails alone has its own record. Files the run no longer starts (Ctrl-C, `--halt`), or whose
/// new run was interrupted, keep the batch's records (`fallback`, one per input, in order);
/// so do all of them when no re-run failed (the failure needs the files together, or did not
/// repeat): the batch did fail. The batch's output goes first, then its re-runs'.
fn split(shared: &Shared, batch: &Batch, mut fallback: Vec<Done>) -> Vec<Done> {
    let mut stdout = fallback.first_mut().and_then(|d| d.stdout.take());
    let mut stderr = fallback.first_mut().and_then(|d| d.stderr.take());
    let mid = batch.inputs.len() / 2;
    let second = fallback.split_off(mid);
    let mut all = Vec::with_capacity(batch.inputs.len());
    // The batch's records of the files that ran again, and whether any did not.
    let mut replaced = Vec::with_capacity(batch.inputs.len());
    let mut stopped = false;
    for (inputs, fallback) in [
        (&batch.inputs[..mid], fallback),
        (&batch.inputs[mid..], second),
    ] {
        if shared.ctx.cancel.no_new_jobs() {
            all.extend(fallback);
            stopped = true;
            continue;
        }
        let unit = Unit::Batch(Batch {
            number: batch.number,
            inputs: inputs.to_vec(),
        });
        let mut done = run_once(shared, &unit, None);
        if done
            .iter()
            .any(|d| matches!(d.record.status, Status::NotStarted | Status::Interrupted))
        {
            all.extend(fallback);
            stopped = true;
            continue;
        }
        for d in &mut done {
            d.record.split = Some(true);
            reformat(d);
        }
        match &unit {
            Unit::Batch(half) if splits(shared, &done) => all.extend(split(shared, half, done)),
            _ => all.extend(done),
        }
        replaced.extend(fallback);
    }
    // Every output, in the order it was made, goes with the first record.
    for d in &mut all {
        stdout = join(stdout, d.stdout.take());
        stderr = join(stderr, d.stderr.take());
    }
    let repeated = stopped || all.iter().any(|d| d.record.status.is_failure());
    let mut kept = if repeated {
        all
    } else {
        for d in &mut replaced {
            d.record.not_repeated();
            reformat(d);
        }
        replaced
    };
    if let Some(first) = kept.first_mut() {
        first.stdout = stdout;
        first.stderr = stderr;
    }
    kept
}

/// Formats a record's journal line again after it changed (if it had one).
fn reformat(d: &mut Done) {
    if d.line.is_some() {
        d.line = d.record.journal_line();
    }
}

/// One stream of captured output, then another.
fn join(first: Option<Spool>, then: Option<Spool>) -> Option<Spool> {
    match (first, then) {
        (Some(mut first), Some(mut then)) if then.len() > 0 => {
            if let Err(err) = then.write_to(&mut first) {
                first.error = Some(format!("could not keep the job's output: {err}"));
            }
            Some(first)
        }
        (Some(first), _) => Some(first),
        (None, then) => then,
    }
}

/// What a job commits after it ran: a local file by descriptors (`-i`, `-o`), or an upload.
enum Commitment {
    Local(Prepared),
    Remote(Upload),
}

impl Commitment {
    /// `{out}`: where the job writes.
    fn out(&self) -> PathBuf {
        match self {
            Commitment::Local(p) => p.out.clone(),
            Commitment::Remote(u) => u.out.clone(),
        }
    }

    /// Removes what an attempt wrote: the original stays.
    fn discard(&self) {
        match self {
            Commitment::Local(p) => InPlace::discard(p),
            Commitment::Remote(u) => u.discard(),
        }
    }
}

/// Runs a unit of work once through the loop: an object it reads is staged first (before
/// admission); in place, its input is checked and locked first and replaced at most once,
/// after the last attempt; a remote output is uploaded once its memory is given back.
fn run_once(shared: &Shared, unit: &Unit, ticket: Option<Ticket<'_>>) -> Vec<Done> {
    let in_place = shared.in_place.as_ref();
    // After a stop nothing more is fetched: the loop gives the unit its not-started records.
    if shared.ctx.cancel.no_new_jobs() && unit.inputs().iter().any(|i| i.remote.is_some()) {
        let weights: Vec<u64> = unit
            .inputs()
            .iter()
            .map(|i| i.weight.or(i.remote.as_ref().map(|o| o.size)).unwrap_or(0))
            .collect();
        return not_admitted(shared, unit, &weights, &Tries::default());
    }
    let staging = match Staging::of(&shared.stages, shared.config, unit, in_place) {
        Ok(staging) => staging,
        Err(done) => {
            store_gone(shared);
            return done;
        }
    };
    let mut commitment = match prepare(shared, unit, &staging) {
        Ok(commitment) => commitment,
        Err(done) => return vec![*done],
    };
    let mut done = drive(shared, unit, ticket, &mut |permit, weights, tries| {
        attempts(
            shared,
            unit,
            &mut commitment,
            &staging,
            weights,
            permit,
            tries,
        )
    });
    match (commitment.take(), done.as_mut_slice()) {
        (Some(Commitment::Remote(u)), [d]) if d.record.attempts > 0 => {
            u.conclude(&shared.stages, &staging, &mut d.record);
            // The halt rule sees the upload's outcome too.
            shared.ctx.halt_after(d.record.status);
            store_gone(shared);
        }
        // Not run (again): its `{out}` goes, the original stays.
        (Some(c), _) => c.discard(),
        (None, _) => {}
    }
    for (nth, (input, d)) in unit.inputs().iter().zip(done.iter_mut()).enumerate() {
        staging.note(nth, input, &mut d.record);
    }
    done
}

/// After transfers in a row could not reach a store: nothing new starts (the rest would each
/// spend seconds on retries), and the user is told once.
fn store_gone(shared: &Shared) {
    if let Some(line) = shared.stages.gone() {
        shared.ctx.cancel.raise(
            crate::cancel::Level::Drain,
            crate::cancel::Reason::StoreUnreachable,
        );
        let _ = shared.ctx.notices.send(Notice::Error(line));
    }
}

/// In place or with `-o`: checks and locks the input, and readies `{out}` (staged, when the
/// output goes to a store).
fn prepare(
    shared: &Shared,
    unit: &Unit,
    staging: &Staging,
) -> Result<Option<Commitment>, Box<Done>> {
    let (Some(ip), Unit::One(input)) = (&shared.in_place, unit) else {
        return Ok(None);
    };
    if let Some(upload) = staged::upload_of(shared.config, unit, Some(ip), staging)? {
        return Ok(Some(Commitment::Remote(upload)));
    }
    // An object written to a local target: its staged copy stands for it.
    let source = staging.copy().unwrap_or(&input.path);
    let (prepared, swept) = match unit::commit_of(input, Some(ip)) {
        Some(Commit::Write(target)) => ip.prepare_output(source, &target, input.job),
        _ => ip.prepare(&input.path, input.job),
    };
    if !swept.is_empty() {
        let names: Vec<String> = swept.iter().map(|p| p.display().to_string()).collect();
        notify(
            shared,
            format!(
                "removed {} left by fanout runs that are no longer alive: {}",
                crate::error::counted(swept.len() as u64, "temporary file"),
                names.join(", ")
            ),
        );
    }
    match prepared {
        Ok(mut p) => {
            if let (Some(object), true) = (&input.remote, p.has_own_target()) {
                let hash = &shared.config.remote.command_hash;
                p.stamp = crate::remote::provenance::Provenance::of_object(object, hash).xattrs();
            }
            Ok(Some(Commitment::Local(p)))
        }
        Err(refusal) => Err(Box::new(refused(input, refusal))),
    }
}

/// Runs an admitted unit through its attempts (`--retries`).
#[allow(clippy::too_many_arguments)]
fn attempts(
    shared: &Shared,
    unit: &Unit,
    prepared: &mut Option<Commitment>,
    staging: &Staging,
    weights: &[u64],
    permit: Permit,
    tries: &mut Tries,
) -> Attempt {
    let config = shared.config;
    let slot = permit.slot;
    // `{out}`, held apart: the preparation is consumed when the input is committed.
    let out = prepared.as_ref().map(Commitment::out);
    let values = unit.values(
        config,
        slot,
        permit.reserved,
        out.as_deref(),
        staging.copy(),
    );
    let mut argv = unit.argv(config, &values, &staging.copies);
    let mut program = config.program.as_deref();
    if let Mode::Srun(alloc) = &config.mode {
        argv = alloc.wrap(&argv, unit.number(), permit.reserved);
        program = Some(alloc.srun.as_path());
    }
    if tries.started_ms.is_none() {
        tries.started_ms = Some(shared.start.elapsed().as_millis() as u64);
        for input in unit.inputs() {
            shared.ctx.job_started(input.job);
        }
    }
    if let Some(board) = shared.ctx.live {
        board.start(slot, &unit.inputs()[0].path);
    }
    // The board's line goes however the job ends.
    let _ended = shared.ctx.live.map(|board| OnDrop(move || board.end(slot)));
    let mut retries = 0;
    loop {
        tries.attempts += 1;
        // The last attempt's start: with its duration, the record spans that attempt.
        let started_ms = shared.start.elapsed().as_millis() as u64;
        let finished = launch(shared, permit, &argv, program, unit.number());
        tries.paused += finished.paused;
        if let EndedBy::SafetyNet(why) = finished.ended_by {
            if let Some(p) = prepared.as_ref() {
                p.discard();
            }
            let peak = finished.peak_rss_bytes.unwrap_or(0);
            return Attempt::Stopped { peak, why };
        }
        let first = &unit.inputs()[0];
        let mut record = JobRecord::new(first.job, &first.path, Status::Ok);
        record.started_ms = Some(started_ms);
        record.weight_bytes = weights.first().copied();
        granted(&mut record, permit, tries);
        judge(&mut record, &finished, config);
        retries += 1;
        let again = matches!(record.status, Status::Failed | Status::Timeout)
            && retries <= config.run.retries
            && !shared.ctx.cancel.no_new_jobs();
        if again {
            if let Some(p) = prepared.as_ref() {
                p.discard();
            }
            continue;
        }
        record.attempts = tries.attempts;
        // A local commit happens here; an upload waits until the memory is given back.
        if matches!(prepared, Some(Commitment::Local(_))) {
            if let Some(Commitment::Local(p)) = prepared.take() {
                conclude_in_place(p, &mut record);
            }
        }
        if config.summary.is_some() && matches!(unit, Unit::One(_)) {
            unit::identify(&mut record, &first.path);
        }
        let base = Done {
            record,
            stdout: finished.stdout,
            stderr: finished.stderr,
            line: None,
        };
        return Attempt::Ended(unit.records(config, base, &argv, weights));
    }
}

/// Runs a command in the permit's slot, to its end (job `number`: a srun step's name).
fn launch(
    shared: &Shared,
    permit: Permit,
    argv: &[OsString],
    program: Option<&Path>,
    number: u64,
) -> Finished {
    let config = shared.config;
    // Under srun, a stop reaches the step's own processes through Slurm (see child.rs).
    let term_step = match &config.mode {
        Mode::Srun(alloc) => Some(move || alloc.term_step(number)),
        _ => None,
    };
    child::run(&Launch {
        slot: permit.slot,
        live: shared.ctx.live.filter(|b| b.wants_stderr()),
        argv,
        program,
        capture: config.capture,
        timeout: config.run.timeout,
        kill_grace: config.run.kill_grace,
        cancel: shared.ctx.cancel,
        sampler: Some(&shared.sampler),
        reserved: permit.reserved,
        term_step: term_step.as_ref().map(|f| f as &(dyn Fn() -> bool + Sync)),
    })
}

/// What admission granted and the safety net did, in the record.
fn granted(record: &mut JobRecord, permit: Permit, tries: &Tries) {
    record.slot = Some(permit.slot as u32);
    record.mem_reserved_bytes = Some(permit.reserved);
    record.predicted_peak_bytes = permit.predicted;
    record.paused_ms = Some(tries.paused.as_millis() as u64);
}

/// Runs a closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Verifies and replaces (or keeps) an in-place input, and records what happened.
fn conclude_in_place(p: Prepared, record: &mut JobRecord) {
    let verify = p.verify_name();
    let kept = if p.has_own_target() {
        "target left as it was"
    } else {
        "original kept"
    };
    let outcome = InPlace::finish(p, record.status == Status::Ok);
    record.action = Some(match (outcome.replaced, outcome.created) {
        (true, true) => crate::record::Action::Created,
        (true, false) => crate::record::Action::Replaced,
        (false, _) => crate::record::Action::Kept,
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
    // What a rewrite could not carry over (file capabilities, ...), when nothing else is said.
    if record.reason.is_none() {
        record.reason = outcome.note;
    }
}

/// The record of an input that in-place mode refused to run.
fn refused(input: &crate::input::Input, refusal: Refusal) -> Done {
    let (status, reason) = match refusal {
        Refusal::ReadOnly(r) => (Status::Skipped, r),
        Refusal::InvalidInput(r) => (Status::InvalidInput, r),
        Refusal::Locked(r) => (Status::NotStarted, r),
        Refusal::Failed(r) => (Status::Failed, r),
    };
    let mut record = JobRecord::new(input.job, &input.path, status);
    record.reason = Some(reason);
    record.action = Some(crate::record::Action::Kept);
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
    record.status = match f.ended_by {
        EndedBy::Interrupt => Status::Interrupted,
        EndedBy::Timeout => {
            let limit = config.run.timeout.unwrap_or_default();
            record.reason = Some(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            ));
            Status::Timeout
        }
        _ if f.ending == Ending::Exited(0) => Status::Ok,
        _ => Status::Failed,
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;
    use std::time::Instant;

    use clap::Parser;

    use super::*;
    use crate::batch::Batch;
    use crate::cancel::Cancel;
    use crate::exec::admit::{FirstStarts, Gate, GateSettings, Placement};
    use crate::exec::sampler::Sampler;
    use crate::executor::{Backlog, Context};
    use crate::input::Input;
    use crate::memory::Meter;

    const MIB: u64 = 1 << 20;

    fn config(args: &[&str]) -> Config {
        let cli = crate::cli::Cli::try_parse_from(args).expect("arguments");
        Config::from_cli(cli).expect("config")
    }

    fn input(job: u64) -> Input {
        Input {
            job,
            path: PathBuf::from(format!("f{job}")),
            problem: None,
            weight: Some(10),
            duplicate_of: None,
            seen: None,
            rel_at: None,
            target: None,
            remote: None,
        }
    }

    fn batch(number: u64, jobs: &[u64]) -> Unit {
        Unit::Batch(Batch {
            number,
            inputs: jobs.iter().map(|&j| input(j)).collect(),
        })
    }

    /// A record of each input of `unit` with `status`.
    fn ended(unit: &Unit, status: Status) -> Attempt {
        let records = unit.inputs().iter().map(|i| {
            let mut record = JobRecord::new(i.job, &i.path, status);
            record.peak_rss_bytes = Some(MIB);
            Done::bare(record)
        });
        Attempt::Ended(records.collect())
    }

    /// Runs `test` with a pool's shared state around a gate that reserves `per_job` of
    /// `budget` (no machine memory is read: the jobs count as remote).
    fn with_shared(config: &Config, budget: u64, per_job: u64, test: impl FnOnce(&Shared)) {
        let cancel = Cancel::new().expect("cancel");
        let running = AtomicU64::new(0);
        let (notices, _seen) = crossbeam_channel::unbounded();
        let backlog = Backlog::default();
        let ctx = Context {
            config,
            cancel: &cancel,
            running: &running,
            notices,
            backlog: &backlog,
            live: None,
            started: None,
            start: Instant::now(),
            up_to_date: AtomicU64::new(0),
        };
        let settings = GateSettings {
            budget,
            jobs: config.run.jobs,
            per_job: Some(per_job),
            reserve: 0,
            placement: Placement::Remote,
            first_starts: FirstStarts::ByPlace,
        };
        let shared = Shared {
            ctx: &ctx,
            config,
            in_place: None,
            gate: Gate::new(settings, Meter::new()),
            sampler: Sampler::new(ctx.start, None),
            start: ctx.start,
            stages: super::super::staged::Stages::new(config),
        };
        test(&shared);
    }

    /// A batch the safety net stopped is run again by the rule single inputs follow: within
    /// its reservation it keeps it, past it it gets what it reached and half as much again,
    /// and after `REQUEUES_BEFORE_ALONE` times it runs alone. (The batch path had its own
    /// rule, which raised the reservation of a batch stopped within it, and no fallback.)
    #[test]
    fn a_stopped_batch_is_requeued_by_the_single_input_rule_then_runs_alone() {
        let config = config(&["fanout", "-X", "-j", "2", ".", "--", "true"]);
        let (budget, per_job) = (1000 * MIB, 100 * MIB);
        with_shared(&config, budget, per_job, |shared| {
            let unit = batch(1, &[1, 2]);
            let mut granted = Vec::new();
            let done = drive(shared, &unit, None, &mut |permit, weights, tries| {
                assert_eq!(weights, [10, 10]);
                granted.push((permit.reserved, permit.alone));
                let peak = match tries.requeues {
                    0 => 80 * MIB,
                    1 => 300 * MIB,
                    2 => MIB,
                    _ => return ended(&unit, Status::Ok),
                };
                Attempt::Stopped {
                    peak,
                    why: Eviction::Memory,
                }
            });
            assert_eq!(
                granted,
                [
                    (per_job, false),
                    (per_job, false),
                    (450 * MIB, false),
                    (budget + 1, true),
                ]
            );
            assert_eq!(done.len(), 2);
            assert!(done.iter().all(|d| d.record.status == Status::Ok));
        });
    }

    /// `--halt soon`: a failed batch stops admission before its memory is given back, so the
    /// batch waiting for that memory does not start. (The batch path applied the halt rule
    /// only as the records were handed back, after the release.)
    #[test]
    fn a_failed_batch_halts_before_its_memory_lets_another_start() {
        let config = config(&[
            "fanout", "-X", "-j", "2", "--halt", "soon", ".", "--", "true",
        ]);
        with_shared(&config, 100 * MIB, 100 * MIB, |shared| {
            let ran = Mutex::new(Vec::new());
            std::thread::scope(|s| {
                let first = s.spawn(|| {
                    let unit = batch(1, &[1, 2]);
                    drive(shared, &unit, None, &mut |_, _, _| {
                        ran.lock().unwrap().push(1);
                        // Let the other batch come to wait for this one's memory.
                        std::thread::sleep(Duration::from_millis(100));
                        ended(&unit, Status::Failed)
                    })
                });
                std::thread::sleep(Duration::from_millis(20));
                let second = s.spawn(|| {
                    let unit = batch(2, &[3, 4]);
                    drive(shared, &unit, None, &mut |_, _, _| {
                        ran.lock().unwrap().push(2);
                        ended(&unit, Status::Ok)
                    })
                });
                let first = first.join().unwrap();
                assert!(first.iter().all(|d| d.record.status == Status::Failed));
                let second = second.join().unwrap();
                assert!(
                    second.iter().all(|d| d.record.status == Status::NotStarted),
                    "{:?}",
                    second.iter().map(|d| d.record.status).collect::<Vec<_>>()
                );
            });
            assert_eq!(*ran.lock().unwrap(), [1]);
        });
    }

    /// A config for batches of `f1`, `f2`, … whose command logs its files to `log` and fails
    /// when its files (space-separated) contain `bad`, plus `extra` options.
    fn failing_on(bad: &str, log: &Path, extra: &[&str]) -> Config {
        let script = format!(
            "echo \"$*\" >> '{}'; case \" $* \" in *' {bad} '*) exit 1;; esac",
            log.display()
        );
        let mut args = vec!["fanout", "-X", "-j", "1", "--split-failed"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[".", "--", "sh", "-c", &script, "sh", "{}"]);
        config(&args)
    }

    fn statuses(done: &[Done]) -> Vec<(String, Status, Option<u64>, Option<bool>)> {
        done.iter()
            .map(|d| {
                let r = &d.record;
                (r.path.clone(), r.status, r.batch_size, r.split)
            })
            .collect()
    }

    /// `--split-failed`: a failed batch's files run again by halves through the job loop, down
    /// to the file that fails; each file then has its own record.
    #[test]
    fn a_failed_batch_is_split_by_halves_to_the_file_that_fails() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let config = failing_on("f3", &log, &[]);
        with_shared(&config, 1000 * MIB, MIB, |shared| {
            let done = run(shared, &batch(1, &[1, 2, 3, 4]), None);
            let ran = std::fs::read_to_string(&log).unwrap();
            assert_eq!(ran, "f1 f2 f3 f4\nf1 f2\nf3 f4\nf3\nf4\n");
            let s = Some(true);
            assert_eq!(
                statuses(&done),
                [
                    ("f1".into(), Status::Ok, Some(2), s),
                    ("f2".into(), Status::Ok, Some(2), s),
                    ("f3".into(), Status::Failed, Some(1), s),
                    ("f4".into(), Status::Ok, Some(1), s),
                ]
            );
            assert!(done.iter().all(|d| d.record.attributed.is_none()));
            // Its command is the one that ran: the file alone.
            let command = &done[2].record.command;
            assert_eq!((command.len(), command[4].as_str()), (5, "f3"));
        });
    }

    /// A batch whose failure needs two files together: no half fails, so no file is blamed
    /// and none is cleared; the batch's records stand, saying its files ran again.
    #[test]
    fn a_failure_no_half_repeats_keeps_the_batch_s_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let config = failing_on("f2 f3", &log, &[]);
        with_shared(&config, 1000 * MIB, MIB, |shared| {
            let done = run(shared, &batch(1, &[1, 2, 3, 4]), None);
            let ran = std::fs::read_to_string(&log).unwrap();
            assert_eq!(ran, "f1 f2 f3 f4\nf1 f2\nf3 f4\n");
            for d in &done {
                let r = &d.record;
                assert_eq!(
                    (r.status, r.attributed, r.batch_size, r.split),
                    (Status::Failed, Some(false), Some(4), None)
                );
                let reason = r.reason.as_deref().unwrap();
                assert!(
                    reason.starts_with("its batch of 4 failed (exit 1)"),
                    "{reason}"
                );
                assert!(reason.ends_with("none of them failed"), "{reason}");
            }
        });
    }

    /// Splitting stops when the run stops starting jobs (here `--halt soon`, after the half
    /// holding `f3` failed): files not run again keep the batch's records.
    #[test]
    fn splitting_stops_when_the_run_stops_starting_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let config = failing_on("f3", &log, &["--halt", "soon"]);
        with_shared(&config, 1000 * MIB, MIB, |shared| {
            let Unit::Batch(whole) = batch(1, &[3, 4, 5, 6]) else {
                unreachable!()
            };
            let fallback = whole
                .inputs
                .iter()
                .map(|i| {
                    let mut r = JobRecord::new(i.job, &i.path, Status::Failed);
                    r.batch_size = Some(4);
                    r.not_attributed(4);
                    Done::bare(r)
                })
                .collect();
            let done = split(shared, &whole, fallback);
            assert_eq!(std::fs::read_to_string(&log).unwrap(), "f3 f4\n");
            let s = Some(true);
            assert_eq!(
                statuses(&done),
                [
                    ("f3".into(), Status::Failed, Some(2), s),
                    ("f4".into(), Status::Failed, Some(2), s),
                    ("f5".into(), Status::Failed, Some(4), None),
                    ("f6".into(), Status::Failed, Some(4), None),
                ]
            );
            assert!(done.iter().all(|d| d.record.attributed == Some(false)));
        });
    }

    /// A job stopped while within its reservation keeps it; one that outgrew it gets what it
    /// reached and half as much again; after `REQUEUES_BEFORE_ALONE` times, more than the
    /// budget (alone).
    #[test]
    fn the_requeue_rule() {
        let mut tries = Tries::default();
        tries.requeue(80, 100, 1000);
        assert_eq!(tries.admission, Admission::Requeued { floor: 100 });
        tries.requeue(300, 100, 1000);
        assert_eq!(tries.admission, Admission::Requeued { floor: 450 });
        tries.requeue(1, 450, 1000);
        assert_eq!(tries.admission, Admission::Requeued { floor: 1001 });
    }
}
