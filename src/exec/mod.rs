//! The local executor: a pool of `jobs` worker threads that take inputs from the run core,
//! run one job each at a time under the memory gate, and hand back one record per input.
//!
//! Each worker admits a job (`admit.rs`: memory-aware), runs it (`child.rs`), retries it while
//! `--retries` allows, concludes an in-place rewrite, and sends the record with the captured
//! output to the collector. Under `--executor srun` each job is wrapped as a step of the
//! allocation. Cancellation comes through `Cancel`: admission stops and running jobs are
//! stopped by `child.rs`; inputs still queued become `not_started` records.

mod admit;
mod child;
mod job;
mod net;
mod sampler;
mod staged;
pub(crate) mod unit;

use std::time::Instant;

use anyhow::Result;
use crossbeam_channel::bounded;

use crate::config::Order;
use crate::config::{Config, Mode};
use crate::error::print_notice;
use crate::executor::{Context, Done, Executor, Extra, Queue};
use crate::inplace::InPlace;
use crate::memory::{self, Meter};
use crate::record::MemoryReport;
use admit::{FirstStarts, Gate, GateSettings, Placement};
use sampler::Sampler;
use unit::Unit;

/// Workers that may wait for memory beyond `-j`, at most.
const LOOKAHEAD: usize = 16;

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
    /// Objects: the run's staging directory and transfer tokens.
    stages: staged::Stages,
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
            gate: Gate::new(gate_settings(config, budget, reserve), meter),
            sampler: Sampler::new(ctx.start, ctx.live),
            start: ctx.start,
            stages: staged::Stages::new(config),
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
            let workers = spawn_workers(s, shared, jobs, batch_rx)?;
            for w in workers {
                let _ = w.join();
            }
            drop(sampler_stop);
            Ok(())
        })?;
        Ok(Extra {
            memory: memory_report(&shared, &snapshot),
            ..Extra::default()
        })
    }
}

/// Starts the workers: `-j` of them, and with single inputs up to `LOOKAHEAD` more that hold
/// inputs waiting for memory, so that admission can choose the one that fits the room best
/// (at most `-j` jobs run at once all the same); they hold inputs only while that can matter
/// (`Gate::hold_ahead`), so that a run memory never holds back starts each job from the worker
/// whose job just ended, without waking another. Batches are formed as a slot frees: no worker
/// waits ahead of one.
fn spawn_workers<'scope, 'env>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    shared: &'env Shared<'env>,
    jobs: &'env Queue<'env>,
    batches: &'env crossbeam_channel::Receiver<crate::batch::Batch>,
) -> Result<Vec<std::thread::ScopedJoinHandle<'scope, ()>>> {
    let config = shared.config;
    let lookahead =
        if matches!(config.mode, Mode::Srun(_)) || config.run.jobs == 1 || config.batch.is_some() {
            0
        } else {
            config.run.jobs.min(LOOKAHEAD)
        };
    // Objects: workers that download ahead of the slots and upload behind them.
    let transfers = if config.has_objects() {
        config.remote.transfers
    } else {
        0
    };
    let mut workers = Vec::new();
    for n in 1..=config.run.jobs + lookahead + transfers {
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{n}"))
            .spawn_scoped(s, move || {
                // Workers that hold inputs ahead of the slots wait until that is worth it; the
                // transfer workers of a run over objects always work (their downloads and
                // uploads go on beside the jobs).
                let ahead = n > config.run.jobs && n <= config.run.jobs + lookahead;
                if config.batch.is_some() {
                    work(shared, jobs, &mut batches.iter().map(Unit::Batch), ahead);
                } else {
                    work(
                        shared,
                        jobs,
                        &mut jobs.inputs().iter().map(Unit::One),
                        ahead,
                    );
                }
                shared.gate.inputs_ended();
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
    Ok(workers)
}

/// What the pool saw of memory, for the end of the run.
fn memory_report(shared: &Shared, snapshot: &memory::Snapshot) -> MemoryReport {
    let (pauses, requeues) = shared.gate.net_counts();
    MemoryReport {
        mem_limit_bytes: shared.gate.budget(),
        mem_available_bytes: snapshot.available,
        cgroup_limit_bytes: snapshot.cgroup_limit,
        max_running: shared.gate.max_running(),
        max_memory_bytes: shared.sampler.max_total(),
        mem_reserve_bytes: Some(shared.gate.reserve()),
        mem_margin: shared.gate.margin(),
        mem_pauses: pauses,
        mem_requeues: requeues,
        held_by_memory: shared.gate.held_by_memory(),
        model: shared.gate.fit(),
        timeline: shared.sampler.timeline(),
        ..MemoryReport::default()
    }
}

/// What the gate is set up with for this run.
fn gate_settings(config: &Config, budget: u64, reserve: u64) -> GateSettings {
    GateSettings {
        budget,
        jobs: config.run.jobs,
        per_job: config.run.mem_per_job,
        reserve,
        placement: match config.mode {
            Mode::Srun(_) => Placement::Remote,
            _ => Placement::Local,
        },
        first_starts: match config.run.order {
            Order::Input => FirstStarts::Lightest,
            Order::LargestFirst => FirstStarts::ByPlace,
        },
    }
}

/// One worker: takes units of work (inputs, or batches with `-X`) until they end, one at a
/// time, and hands back one record per input. A worker `ahead` of `-j` takes one only while
/// inputs are worth holding for memory (`Gate::hold_ahead`).
fn work(shared: &Shared, jobs: &Queue<'_>, units: &mut dyn Iterator<Item = Unit>, ahead: bool) {
    let keep_order = shared.config.keep_order && shared.config.run.order == Order::Input;
    while !ahead || shared.gate.hold_ahead() {
        let Some(unit) = units.next() else {
            return;
        };
        let mut done = if shared.ctx.cancel.no_new_jobs() {
            unit.inputs()
                .iter()
                .map(|input| Done::bare(shared.ctx.not_started(input.job, &input.path)))
                .collect()
        } else {
            if keep_order {
                let first = unit.inputs()[0].job;
                shared.ctx.backlog.wait_for_room(first, shared.ctx.cancel);
            }
            // A batch is formed as a slot frees: no input is on its way to admission.
            let ticket = matches!(unit, Unit::One(_)).then(|| shared.gate.take());
            job::run(shared, &unit, ticket)
        };
        if let (Unit::One(input), [finished]) = (&unit, done.as_mut_slice()) {
            if let Some(target) = &input.target {
                finished.record.set_output(target);
            }
        }
        let handed = match (&unit, done.len()) {
            (Unit::One(_), 1) => jobs.hand_back(done.pop().expect("one record")),
            _ => jobs.hand_back_all(done),
        };
        if !handed {
            return;
        }
    }
    shared.gate.drained();
}
