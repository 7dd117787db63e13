//! `fanout worker --plan DIR --shard K`: one array task. It reads the plan and its shard's
//! files and runs them through the ordinary local pool (memory-aware, in-place safe), writing
//! its journal to `records/shard-K.jsonl` as each file finishes.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::plan::WORKER_MEM;
use super::plan::{Layout, Plan};
use super::records::WorkerHeader;
use crate::config::Config;
use crate::output::Io;
use crate::walk::Source;

/// What an array task runs: its configuration, its shard's inputs, and where output goes.
pub(crate) struct Task {
    pub config: Config,
    pub inputs: Source,
    pub io: Io,
}

/// Reads the plan and sets up shard `shard`: the caller runs it with the local pool. The plan
/// directory must be this user's alone, and the plan must match `digest` (from the batch
/// script Slurm kept), its shard's inputs the digest in the plan: nothing else runs.
pub(crate) fn prepare(plan_dir: &Path, shard: usize, digest: &str) -> Result<Task> {
    let dir = std::path::absolute(plan_dir)
        .with_context(|| format!("bad plan directory {}", plan_dir.display()))?;
    super::private::check_owned(&dir, "the plan directory")?;
    let layout = Layout { dir };
    let plan = Plan::load(&layout.dir, digest)?;
    if shard >= plan.shards {
        bail!(
            "shard {shard} does not exist: the plan has shards 0 to {}",
            plan.shards - 1
        );
    }
    let cwd = plan.cwd()?;
    std::env::set_current_dir(&cwd).with_context(|| {
        format!(
            "cannot change to the submit directory {} on this node",
            cwd.display()
        )
    })?;
    let Some(inputs_digest) = plan.inputs_sha256.get(shard) else {
        bail!("the plan has no digest for shard {shard}: refusing to run it");
    };
    let inputs = layout.read_inputs(shard, inputs_digest)?;
    // The task's own --mem (as Slurm granted it, --slurm-arg included) bounds its jobs.
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|m| m.trim_end_matches('M').parse::<u64>().ok())
    };
    let task_mem = var("SLURM_MEM_PER_NODE")
        .or_else(|| Some(var("SLURM_MEM_PER_CPU")? * var("SLURM_CPUS_ON_NODE")?))
        .map_or(plan.task_mem_bytes, |mib| mib << 20);
    let budget = task_mem.saturating_sub(WORKER_MEM).max(1 << 20);
    let config = Config::for_worker(plan.run, layout.records(shard), budget)?;
    let create =
        |p: PathBuf| File::create(&p).with_context(|| format!("cannot write {}", p.display()));
    let io = Io {
        stdout: Box::new(create(layout.stdout(shard))?),
        stderr: Box::new(create(layout.stderr(shard))?),
        header: Some(
            WorkerHeader {
                v: crate::record::FORMAT_VERSION,
                shard,
                pid: std::process::id(),
                host: hostname(),
                slurm_job_id: std::env::var("SLURM_JOB_ID").ok(),
                files: inputs.len(),
                mem_limit_bytes: budget,
                started_unix_ms: Some(super::records::unix_ms_now()),
            }
            .to_line(),
        ),
        started: Some(create(layout.started(shard))?),
        files: true,
    };
    Ok(Task {
        config,
        inputs: Source::Given(inputs),
        io,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
