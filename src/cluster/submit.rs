//! `--executor slurm`: walk and plan here, submit one job array, follow it, and report.
//!
//! The submitter walks exactly as a local run does and skips what `--resume` says is done
//! (`triage`), deals the rest into shards (`deal`), writes the plan and submits
//! `sbatch --array=0-(N-1)` (`script`). Then it follows the shards' journals as they grow
//! (`follow`), handing each record and each job's output to the `Collector` as it arrives,
//! while squeue tells when tasks end (`watch`); a task that ended without a record for some of
//! its files has those files reported with Slurm's reason (`explain`).

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::collect::Collector;
use super::deal::{deal, Dealt};
use super::explain::account_for_the_rest;
use super::follow::{Intake, Shard};
use super::plan::{Layout, Plan, PlannedFile};
use super::records::{ArrayReport, TaskReport};
use super::script::{plan_dir, sbatch_args, sbatch_line, script, PlanDir};
use super::slurm::Slurm;
use super::state::{JobId, State};
use super::triage::triage;
use super::watch::Watch;
use crate::cancel::{self, Cancel};
use crate::config::Config;
use crate::error::{print_notice, ExitStatus};
use crate::memory::{self, human};
use crate::resume::Resume;
use crate::summary::{counted, JobRecord, Journal, Status};
use crate::template::{display_argv, JobValues};

/// How often the shards' files are read.
const READ_EVERY: Duration = Duration::from_millis(200);
/// How often squeue is asked (it goes to the controller: not too often).
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How long to wait for an ended task's last records to show up (shared file systems cache).
const SETTLE: Duration = Duration::from_secs(5);
/// After a second Ctrl-C: how long to wait for Slurm to kill the tasks.
const HARD_WAIT: Duration = Duration::from_secs(20);

pub(crate) fn run(config: &Config) -> Result<ExitStatus> {
    let slurm = Slurm::find()?;
    let cancel = Arc::new(Cancel::new().context("cannot create a pipe")?);
    cancel::watch_signals(Arc::clone(&cancel)).context("cannot install signal handlers")?;
    let start = Instant::now();
    let resume = Resume::for_run(config.resume.as_deref(), config.quiet)?;
    let journal = match &config.summary {
        Some(path) => Some(
            Journal::create(path)
                .with_context(|| format!("cannot write the summary {}", path.display()))?,
        ),
        None => None,
    };
    let triaged = triage(config, &cancel, resume.as_ref())?;
    let dealt = deal(config, triaged.todo);
    let mut collector = Collector::new(config, &cancel, journal);
    for record in triaged.early {
        collector.record(record);
    }
    collector.totals.walk_errors += triaged.walk.errors;
    let files = dealt.files();
    if files == 0 || cancel.no_new_jobs() {
        for f in dealt.shards.iter().flatten() {
            let mut r = JobRecord::new(f.job, &f.path()?, Status::NotStarted);
            r.reason = Some("not started: interrupted before the job array was submitted".into());
            collector.record(r);
        }
        if collector.totals.total() == 0 && !config.quiet {
            print_notice(&crate::exec::nothing_matched(triaged.walk.hint.as_deref()));
        }
        return collector.finish(start, None);
    }

    let dir = PlanDir::claim(config)?;
    let layout = &dir.layout;
    let plan = Plan::new(config, dealt.shards.len(), files as u64, dealt.task_mem)?;
    let args = sbatch_args(config, &plan, layout)?;
    dir.write(&plan, &dealt.shards, &args)?;
    let mut argv = args.clone();
    argv.push(layout.script().into());
    let job = slurm.submit(&argv).inspect_err(|_| dir.withdraw())?;
    if !config.quiet {
        print_notice(&format!(
            "submitted Slurm job {job}: {} in {} ({} and {} each); plan, records and logs in {}",
            counted(files as u64, "file"),
            counted(plan.shards as u64, "array task"),
            human(plan.task_mem_bytes),
            counted((plan.jobs * plan.cpus_per_job) as u64, "CPU"),
            layout.dir.display()
        ));
    }
    collector.expect(files as u64);
    let array = follow(config, &cancel, &slurm, job, layout, dealt, &mut collector);
    collector.finish(start, Some(array))
}

/// Follows the array until every task ended (or, after a second Ctrl-C, until Slurm had
/// `HARD_WAIT` to kill them), handing records and output to `intake`; then every planned
/// file without a record gets one. Returns the array's account for the final record.
fn follow(
    config: &Config,
    cancel: &Cancel,
    slurm: &Slurm,
    job: JobId,
    layout: &Layout,
    dealt: Dealt,
    intake: &mut dyn Intake,
) -> ArrayReport {
    let mut shards: Vec<Shard> = dealt
        .shards
        .into_iter()
        .enumerate()
        .map(|(k, files)| Shard::new(layout, k, files))
        .collect();
    let mut watch = Watch::new(slurm, job, shards.len());
    let mut asked: Option<Instant> = None;
    let mut hard_since: Option<Instant> = None;
    loop {
        for s in &mut shards {
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
    // Records written just before a task ended may take a moment to show up.
    let settle = Instant::now();
    loop {
        for s in &mut shards {
            s.pump(intake, config.quiet);
        }
        let waiting = shards.iter().any(|s| {
            s.may_have_more_records()
                && watch
                    .state(s.index)
                    .is_some_and(|t| matches!(t.state, State::Completed | State::Failed))
        });
        if !waiting || settle.elapsed() >= SETTLE || cancel.is_hard() {
            break;
        }
        std::thread::sleep(READ_EVERY);
    }
    for s in &mut shards {
        s.relay(intake, true);
    }
    let in_place = config.in_place.is_some();
    account_for_the_rest(&shards, &watch, in_place, config.quiet, cancel, intake);
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
/// shard's commands, one shell-quoted line each, as the workers will run them) on stdout;
/// nothing is written and nothing submitted.
pub(crate) fn dry_run(config: &Config) -> Result<ExitStatus> {
    let cancel = Cancel::default();
    let resume = config.resume.as_deref().map(Resume::load).transpose()?;
    let triaged = triage(config, &cancel, resume.as_ref())?;
    let early = triaged.early;
    let dealt = deal(config, triaged.todo);
    let files = dealt.files();
    if files == 0 {
        print_notice(&crate::exec::nothing_matched(triaged.walk.hint.as_deref()));
        return Ok(if triaged.walk.errors > 0 {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        });
    }
    let layout = Layout {
        dir: plan_dir(config)?,
    };
    let plan = Plan::new(config, dealt.shards.len(), files as u64, dealt.task_mem)?;
    let args = sbatch_args(config, &plan, &layout)?;
    let sbatch = sbatch_line(&args, &layout);
    let mut out = BufWriter::new(io::stdout().lock());
    let result = (|| -> io::Result<()> {
        out.write_all(b"# fanout --executor slurm, dry run: nothing is written or submitted\n# ")?;
        out.write_all(&sbatch)?;
        out.write_all(b"\n# ")?;
        out.write_all(layout.script().as_os_str().as_encoded_bytes())?;
        out.write_all(b":\n")?;
        out.write_all(&script(&plan, &layout, &sbatch))?;
        for (k, shard) in dealt.shards.iter().enumerate() {
            write_shard(&mut out, config, k, shard)?;
        }
        out.flush()
    })();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitStatus::ClosedStdout),
        other => other.context("cannot write to standard output")?,
    }
    print_notice(&format!(
        "dry run: {files} files in {} array tasks of {} jobs at once, --mem={} and --cpus-per-task={} each; {} skipped, {} not runnable",
        plan.shards,
        plan.jobs,
        human(plan.task_mem_bytes),
        plan.jobs * plan.cpus_per_job,
        early.iter().filter(|r| r.status == Status::Skipped).count(),
        early.iter().filter(|r| r.status != Status::Skipped).count(),
    ));
    Ok(
        if triaged.walk.errors > 0 || early.iter().any(|r| r.status.is_failure()) {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        },
    )
}

/// A shard's heading and its commands, one shell-quoted line each (`{out}` stays literal).
fn write_shard(
    out: &mut dyn Write,
    config: &Config,
    k: usize,
    shard: &[PlannedFile],
) -> io::Result<()> {
    let weight: u64 = shard.iter().map(|f| f.weight_bytes).sum();
    writeln!(
        out,
        "# shard {k}: {}, weight {}",
        counted(shard.len() as u64, "file"),
        human(weight)
    )?;
    for f in shard {
        let path = f.path().map_err(io::Error::other)?;
        let argv = config.template.expand(&JobValues {
            path: &path,
            job: f.job,
            slot: 1,
            threads: config.threads,
            out: config.in_place.as_ref().map(|_| Path::new("{out}")),
            mem_mib: config.mem_per_job.unwrap_or(memory::prior(f.weight_bytes)) >> 20,
        });
        out.write_all(&display_argv(&argv))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
