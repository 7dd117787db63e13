//! Batches in the local pool (`-X`): one process per batch, one record per input of it.
//!
//! One thread forms the batches (`crate::batch`) and hands each to the next free worker
//! through a rendezvous channel, so a batch is sized at the moment a slot frees (the sizing
//! rule sees what is still waiting). A batch is admitted like a job whose weight is the sum of
//! its inputs' weights, runs under the same timeout, retries and stops, and every input gets a
//! copy of the batch's record with its own job number, path, weight and file identity, and
//! `batch`/`batch_size`. The batch's output travels with the record of its first input.

use std::path::Path;
use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;

use super::child::{self, Launch};
use super::{judge, Shared};
use crate::batch::Batch;
use crate::config::Order;
use crate::executor::{Done, Queue};
use crate::input::Notice;
use crate::record::{JobRecord, Status};
use crate::resume;
use crate::template::JobValues;
use crate::units;

/// One worker of a batched run: takes batches until they end, one at a time.
pub(super) fn work(shared: &Shared, jobs: &Queue<'_>, batches: &Receiver<Batch>) {
    let keep_order = shared.config.keep_order && shared.config.run.order == Order::Input;
    for batch in batches {
        let done = if shared.ctx.cancel.no_new_jobs() {
            not_started(shared, &batch, None)
        } else {
            if keep_order {
                shared
                    .ctx
                    .backlog
                    .wait_for_room(batch.inputs[0].job, shared.ctx.cancel);
            }
            run(shared, &batch)
        };
        if !jobs.hand_back_all(done) {
            return;
        }
    }
}

/// `not_started` records for every input of a batch.
fn not_started(shared: &Shared, batch: &Batch, weights: Option<&[u64]>) -> Vec<Done> {
    batch
        .inputs
        .iter()
        .enumerate()
        .map(|(k, input)| {
            let mut record = shared.ctx.not_started(input.job, &input.path);
            record.weight_bytes = weights.map(|w| w[k]);
            Done::bare(record)
        })
        .collect()
}

/// Runs one batch through its attempts; returns a record per input, in order.
fn run(shared: &Shared, batch: &Batch) -> Vec<Done> {
    let weights: Vec<u64> = batch
        .inputs
        .iter()
        .map(|i| i.weight.unwrap_or_else(|| crate::parquet::weight(&i.path)))
        .collect();
    let weight: u64 = weights.iter().sum();
    // Batches start in their order; one the memory safety net stopped runs again from scratch
    // with room for what it reached.
    let mut floor = 0;
    loop {
        let Some(permit) = shared.gate.admit(
            weight,
            (0, batch.number),
            floor,
            None,
            shared.ctx.cancel,
            &shared.sampler,
        ) else {
            return not_started(shared, batch, Some(&weights));
        };
        let n = batch.inputs.len() as u64;
        shared.ctx.running.fetch_add(n, Ordering::Relaxed);
        let done = run_admitted(shared, batch, &weights, weight, permit);
        shared.ctx.running.fetch_sub(n, Ordering::Relaxed);
        match done {
            Ok(done) => return done,
            Err(peak) => {
                floor = peak.max(permit.reserved).saturating_add(peak / 2);
                let _ = shared.ctx.notices.send(Notice::Info(format!(
                    "batch {} ({} files): stopped to keep memory below the limit (it reached {}); it runs again",
                    batch.number,
                    batch.inputs.len(),
                    units::human(peak)
                )));
            }
        }
    }
}

/// Runs an admitted batch through its attempts; `Err(peak)` if the memory safety net stopped
/// it (its permit is given back either way).
fn run_admitted(
    shared: &Shared,
    batch: &Batch,
    weights: &[u64],
    weight: u64,
    permit: super::admit::Permit,
) -> Result<Vec<Done>, u64> {
    let config = shared.config;
    let slot = permit.slot;
    if permit.alone {
        let _ = shared.ctx.notices.send(Notice::Info(format!(
            "batch {} ({} files): its job needs about {}, more than the whole memory budget ({}): running it alone",
            batch.number,
            batch.inputs.len(),
            units::human(permit.reserved),
            units::human(shared.gate.budget())
        )));
    }
    let paths = batch.paths();
    let values = JobValues {
        path: paths[0],
        rel_at: batch.inputs[0].rel_at,
        job: batch.number,
        slot,
        threads: config.run.threads,
        out: None,
        mem_mib: permit.reserved >> 20,
    };
    let argv = config.template.expand_batch(&paths, &batch.rels(), &values);
    let started_ms = shared.start.elapsed().as_millis() as u64;
    for input in &batch.inputs {
        shared.ctx.job_started(input.job);
    }
    if let Some(board) = shared.ctx.live {
        board.start(slot, paths[0]);
    }
    // The board's line goes however the batch ends.
    let _ended = shared
        .ctx
        .live
        .map(|board| super::OnDrop(move || board.end(slot)));
    let mut attempts = 0;
    let mut paused = std::time::Duration::ZERO;
    let (mut base, mut finished) = loop {
        attempts += 1;
        let finished = child::run(&Launch {
            slot,
            live: shared.ctx.live.filter(|b| b.wants_stderr()),
            argv: &argv,
            program: config.program.as_deref(),
            capture: config.capture,
            timeout: config.run.timeout,
            kill_grace: config.run.kill_grace,
            cancel: shared.ctx.cancel,
            sampler: Some(&shared.sampler),
            reserved: permit.reserved,
            term_step: None,
        });
        paused += finished.paused;
        if finished.evicted && !finished.interrupted {
            shared.gate.release(permit, weight, None);
            return Err(finished.peak_rss_bytes.unwrap_or(0));
        }
        let mut record = JobRecord::new(batch.inputs[0].job, paths[0], Status::Ok);
        judge(&mut record, &finished, config);
        let again = matches!(record.status, Status::Failed | Status::Timeout)
            && attempts <= config.run.retries
            && !shared.ctx.cancel.no_new_jobs();
        if !again {
            break (record, finished);
        }
    };
    shared.gate.release(permit, weight, base.peak_rss_bytes);
    base.attempts = attempts;
    base.started_ms = Some(started_ms);
    base.mem_reserved_bytes = Some(permit.reserved);
    base.predicted_peak_bytes = permit.predicted;
    base.paused_ms = Some(paused.as_millis() as u64);
    base.slot = u32::try_from(slot).ok();
    base.batch = Some(batch.number);
    base.batch_size = Some(batch.inputs.len() as u64);
    // The file identity is what --resume reads from the journal: without one, no stat.
    let journal = config.summary.is_some();
    Ok(batch
        .inputs
        .iter()
        .enumerate()
        .map(|(k, input)| {
            let mut record = base.for_input(input.job, &input.path);
            // The command as it concerns this file: the batch's words with this file alone
            // in the repeated ones (the whole list would repeat in every record).
            record.set_command(&config.template.expand_batch(
                &[input.path.as_path()],
                &[input.rel_at],
                &values,
            ));
            record.weight_bytes = Some(weights[k]);
            let (stdout, stderr) = if k == 0 {
                (finished.stdout.take(), finished.stderr.take())
            } else {
                (None, None)
            };
            let mut line = None;
            if journal {
                identity(&mut record, &input.path);
                // Formatted here, on the worker, which waits anyway: the collector (one
                // thread for the whole run) only writes the line.
                let mut buf = Vec::with_capacity(512);
                if serde_json::to_writer(&mut buf, &record).is_ok() {
                    buf.push(b'\n');
                    line = Some(buf);
                }
            }
            Done {
                record,
                stdout,
                stderr,
                line,
            }
        })
        .collect())
}

fn identity(record: &mut JobRecord, path: &Path) {
    if let Some(id) = resume::identity(path) {
        record.file_size = Some(id.size);
        record.file_mtime_ns = Some(id.mtime_ns);
    }
}
