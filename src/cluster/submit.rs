//! `--executor slurm` as executors of the run core: `SlurmArray` submits one job array and
//! follows it, `SlurmPlan` (the dry run) prints what it would submit.
//!
//! The run core walks and triages exactly as for a local run (problems, `--resume` skips and
//! other names of a file never reach an executor). `SlurmArray` takes every job, deals them
//! into shards (`deal`), writes the plan and submits `sbatch --array=0-(N-1)` (`script`). Then
//! it follows the shards' journals as they grow (`follow`), handing each record with its job's
//! output back to the core as it arrives, while squeue tells when tasks end (`watch`); a task
//! that ended without a record for some of its files has those files reported with Slurm's
//! reason (`explain`).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::deal::{deal, Dealt};
use super::explain::account_for_the_rest;
use super::follow::{Intake, Shard};
use super::plan::{Layout, Plan, PlannedFile};
use super::records::{ArrayReport, TaskReport};
use super::script::{plan_dir, sbatch_args, sbatch_line, script, PlanDir};
use super::slurm::Slurm;
use super::state::{JobId, State};
use super::watch::Watch;
use crate::config::Config;
use crate::error::counted;
use crate::executor::{Context, Done, Executor, Extra, Queue};
use crate::input::{Input, Notice};
use crate::memory;
use crate::record::{JobRecord, Status};
use crate::template::{display_argv, JobValues};
use crate::units::human;

/// How often the shards' files are read.
const READ_EVERY: Duration = Duration::from_millis(200);
/// How often squeue is asked (it goes to the controller: not too often).
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How long to wait for an ended task's last records to show up (shared file systems cache).
const SETTLE: Duration = Duration::from_secs(5);
/// After a second Ctrl-C: how long to wait for Slurm to kill the tasks.
const HARD_WAIT: Duration = Duration::from_secs(20);

/// One Slurm job array, submitted and followed from here.
pub(crate) struct SlurmArray {
    slurm: Slurm,
}

impl SlurmArray {
    /// Finds Slurm's commands before anything is walked.
    pub(crate) fn find() -> Result<SlurmArray> {
        Ok(SlurmArray {
            slurm: Slurm::find()?,
        })
    }
}

/// Hands what the array produces back to the run core.
struct Back<'j, 'a> {
    jobs: &'j Queue<'a>,
}

impl Intake for Back<'_, '_> {
    fn accept(&mut self, done: Done) {
        self.jobs.hand_back(done);
    }

    fn notice(&mut self, message: &str) {
        let _ = self
            .jobs
            .ctx
            .notices
            .send(Notice::Info(message.to_string()));
    }

    fn running(&mut self, tasks: u64) {
        self.jobs
            .ctx
            .running
            .store(tasks, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Executor for SlurmArray {
    fn execute(&mut self, jobs: &Queue<'_>) -> Result<Extra> {
        let ctx = jobs.ctx;
        let config = ctx.config;
        // Every shard is planned before anything is submitted: the walk runs to its end.
        let todo: Vec<Input> = jobs.inputs().iter().collect();
        let dealt = deal(config, todo);
        let files = dealt.files();
        let mut back = Back { jobs };
        if files == 0 || ctx.cancel.no_new_jobs() {
            for f in dealt.shards.iter().flatten() {
                let mut r = JobRecord::new(f.job, &f.path()?, Status::NotStarted);
                r.reason =
                    Some("not started: interrupted before the job array was submitted".into());
                back.accept(Done::bare(r));
            }
            return Ok(Extra::default());
        }
        let dir = PlanDir::claim(config)?;
        let layout = &dir.layout;
        let mut plan = Plan::new(config, dealt.shards.len(), files as u64, dealt.task_mem)?;
        let sealed = plan.seal(&dealt.shards).inspect_err(|_| dir.withdraw())?;
        let args = sbatch_args(config, &plan, layout).inspect_err(|_| dir.withdraw())?;
        let script = script(&plan, layout, &sbatch_line(&args, layout), &sealed.digest);
        dir.write(&sealed, &script)
            .inspect_err(|_| dir.withdraw())?;
        // sbatch reads the script from here, not from the file: what runs is what was sealed.
        let job = self
            .slurm
            .submit(&args, &script)
            .inspect_err(|_| dir.withdraw())?;
        // In the journal at once: a run resumed after this one was killed must find the array.
        let _ = jobs.ctx.notices.send(Notice::Journal(serde_json::json!({
            "type": "slurm_array",
            "v": crate::record::FORMAT_VERSION,
            "slurm_job_id": job.to_string(),
            "plan_dir": layout.dir.to_string_lossy(),
            "shards": plan.shards,
            "files": files,
        })));
        if !config.quiet {
            back.notice(&format!(
                "submitted Slurm job {job}: {} in {} ({} and {} each); plan, records and logs in {}",
                counted(files as u64, "file"),
                counted(plan.shards as u64, "array task"),
                human(plan.task_mem_bytes),
                counted((plan.run.jobs * plan.run.threads) as u64, "CPU"),
                layout.dir.display()
            ));
        }
        let array = follow(ctx, &self.slurm, job, layout, dealt, &mut back);
        Ok(Extra {
            memory: array.memory(),
            notes: vec![format!(
                "Slurm job {}: plan, records and logs in {}",
                array.slurm_job_id, array.plan_dir
            )],
            cluster: Some(serde_json::to_value(&array)?),
        })
    }
}

/// Follows the array until every task ended (or, after a second Ctrl-C, until Slurm had
/// `HARD_WAIT` to kill them), handing records and output to `intake`; then every planned
/// file without a record gets one. Returns the array's account for the final record.
fn follow(
    ctx: &Context<'_>,
    slurm: &Slurm,
    job: JobId,
    layout: &Layout,
    dealt: Dealt,
    intake: &mut dyn Intake,
) -> ArrayReport {
    let (config, cancel) = (ctx.config, ctx.cancel);
    // The tasks' records count from the submitter's start (by the nodes' clocks).
    let run_start_unix_ms =
        super::records::unix_ms_now().saturating_sub(ctx.start.elapsed().as_millis() as u64);
    let mut shards: Vec<Shard> = dealt
        .shards
        .into_iter()
        .enumerate()
        .map(|(k, files)| Shard::new(layout, k, files, run_start_unix_ms))
        .collect();
    let mut watch = Watch::new(slurm, job, shards.len());
    let mut asked: Option<Instant> = None;
    let mut hard_since: Option<Instant> = None;
    loop {
        for s in &mut shards {
            s.set_stopping(cancel.stopping());
            s.pump(intake, config.quiet);
        }
        watch.stop_if_asked(cancel, intake, config.quiet);
        if cancel.is_hard() && hard_since.is_none() {
            hard_since = Some(Instant::now());
        }
        if asked.is_none_or(|t| t.elapsed() >= ASK_EVERY) {
            asked = Some(Instant::now());
            watch.poll(intake);
            watch.keep_stopping(intake);
            intake.running(watch.running());
        }
        if watch.all_ended() {
            break;
        }
        if hard_since.is_some_and(|t| t.elapsed() >= HARD_WAIT) {
            intake.notice(&format!(
                "stopped waiting for Slurm job {}; check it with squeue",
                watch.job
            ));
            break;
        }
        std::thread::sleep(READ_EVERY);
    }
    // Records written just before a task ended may take a moment to show up (shared file
    // systems cache) — but only from a worker that ended by itself: one killed by a signal
    // wrote all it ever will, and is not waited for.
    let settle = Instant::now();
    let mut killed: Vec<Option<bool>> = vec![None; shards.len()];
    loop {
        for s in &mut shards {
            s.set_stopping(cancel.stopping());
            s.pump(intake, config.quiet);
        }
        let waiting = shards.iter().any(|s| {
            let state = watch.state(s.index).map(|t| &t.state);
            s.may_have_more_records()
                && matches!(state, Some(State::Completed | State::Failed))
                && !*killed[s.index]
                    .get_or_insert_with(|| watch.exit_code(s.index).is_some_and(|e| e.signal > 0))
        });
        if !waiting || settle.elapsed() >= SETTLE || cancel.is_hard() {
            break;
        }
        std::thread::sleep(READ_EVERY);
    }
    for s in &mut shards {
        s.set_stopping(cancel.stopping());
        s.relay(intake, true);
    }
    account_for_the_rest(&shards, &watch, config, cancel, intake);
    report(&shards, &watch, layout)
}

/// The array's account for the final record.
fn report(shards: &[Shard], watch: &Watch, layout: &Layout) -> ArrayReport {
    let tasks = shards.iter().map(|s| {
        let state = watch.state(s.index);
        let worker = s.summary.clone().unwrap_or_default();
        TaskReport {
            shard: s.index,
            files: s.files.len(),
            records: s.recorded.len(),
            state: state.map(|t| t.state.clone()),
            node: state.and_then(|t| t.node.clone()),
            finished: s.summary.is_some(),
            max_running: worker.max_running,
            max_memory_bytes: worker.max_memory_bytes,
            wall_ms: worker.wall_ms,
            mem_limit_bytes: worker.mem_limit_bytes,
        }
    });
    ArrayReport {
        executor: "slurm",
        slurm_job_id: watch.job.to_string(),
        plan_dir: layout.dir.to_string_lossy().into_owned(),
        shards: tasks.collect(),
    }
}

/// `--dry-run --executor slurm`: the sbatch command, the script and the shard plan (each
/// shard's commands, one shell-quoted line each, as the workers will run them) as the jobs'
/// output; nothing is written and nothing submitted.
pub(crate) struct SlurmPlan;

impl Executor for SlurmPlan {
    fn execute(&mut self, jobs: &Queue<'_>) -> Result<Extra> {
        let config = jobs.ctx.config;
        let dealt = deal(config, jobs.inputs().iter().collect());
        let files = dealt.files();
        if files == 0 {
            return Ok(Extra::default());
        }
        let layout = Layout {
            dir: plan_dir(config)?,
        };
        let mut plan = Plan::new(config, dealt.shards.len(), files as u64, dealt.task_mem)?;
        let sealed = plan.seal(&dealt.shards)?;
        let args = sbatch_args(config, &plan, &layout)?;
        let sbatch = sbatch_line(&args, &layout);
        let mut head =
            b"# fanout --executor slurm, dry run: nothing is written or submitted\n# ".to_vec();
        head.extend_from_slice(&sbatch);
        head.extend_from_slice(b"\n# ");
        head.extend_from_slice(layout.script().as_os_str().as_encoded_bytes());
        head.extend_from_slice(b":\n");
        head.extend_from_slice(&script(&plan, &layout, &sbatch, &sealed.digest));
        for (k, shard) in dealt.shards.iter().enumerate() {
            let mut text = std::mem::take(&mut head);
            write_heading(&mut text, k, shard)?;
            for f in shard {
                write_line(&mut text, config, f)?;
                let d = Done::listed(f.job, &f.path()?, &std::mem::take(&mut text));
                if !jobs.hand_back(d) {
                    return Ok(Extra::default());
                }
            }
        }
        Ok(Extra {
            notes: vec![format!(
                "dry run: {} in {} of {} at once, --mem={} and --cpus-per-task={} each",
                crate::error::counted(files as u64, "file"),
                crate::error::counted(plan.shards as u64, "array task"),
                crate::error::counted(plan.run.jobs as u64, "job"),
                human(plan.task_mem_bytes),
                plan.run.jobs * plan.run.threads,
            )],
            ..Extra::default()
        })
    }
}

/// A shard's heading.
fn write_heading(out: &mut dyn Write, k: usize, shard: &[PlannedFile]) -> std::io::Result<()> {
    let weight: u64 = shard.iter().map(|f| f.weight_bytes).sum();
    writeln!(
        out,
        "# shard {k}: {}, weight {}",
        counted(shard.len() as u64, "file"),
        human(weight)
    )
}

/// A job's command, one shell-quoted line (`{out}` stays literal).
fn write_line(out: &mut dyn Write, config: &Config, f: &PlannedFile) -> std::io::Result<()> {
    let path = f.path().map_err(std::io::Error::other)?;
    let argv = config.template.expand(&JobValues {
        out: (config.run.in_place.is_some() || config.run.output.is_some())
            .then(|| Path::new("{out}")),
        mem_mib: memory::first_reservation(config.run.mem_per_job, f.weight_bytes) >> 20,
        ..JobValues::of(&path, f.job, f.rel_at, config.run.threads)
    });
    out.write_all(&display_argv(&argv))?;
    out.write_all(b"\n")
}
