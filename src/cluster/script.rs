//! What is submitted: the plan directory (chosen, claimed, written, and taken back if sbatch
//! refuses), sbatch's options, and the batch script with which every task runs `fanout worker`
//! on its shard.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::plan::{Layout, Plan, PlannedFile};
use crate::config::Config;
use crate::error::counted;
use crate::template::shell_quote;

/// The plan directory: `--plan-dir`, else `.fanout/slurm-TIME-PID`, absolute.
pub(crate) fn plan_dir(config: &Config) -> Result<PathBuf> {
    let given = config.slurm().and_then(|s| s.plan_dir.clone());
    let dir = given.unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!(".fanout/slurm-{stamp}-{}", std::process::id()))
    });
    let dir =
        std::path::absolute(&dir).with_context(|| format!("bad --plan-dir {}", dir.display()))?;
    if dir.as_os_str().as_encoded_bytes().contains(&b'\\') {
        bail!(
            "the plan directory {} has a backslash, which turns off Slurm's %a in log names: choose another --plan-dir",
            dir.display()
        );
    }
    Ok(dir)
}

/// This run's plan directory, claimed: it was new or empty.
pub(crate) struct PlanDir {
    pub layout: Layout,
    existed: bool,
}

impl PlanDir {
    /// Refuses a directory with anything in it: a plan directory holds one run, and old
    /// records would be taken for this run's.
    pub(crate) fn claim(config: &Config) -> Result<PlanDir> {
        let layout = Layout {
            dir: plan_dir(config)?,
        };
        let existed = layout.dir.exists();
        if existed && std::fs::read_dir(&layout.dir).map_or(true, |mut d| d.next().is_some()) {
            bail!(
                "--plan-dir {} is not empty: give a new or empty directory",
                layout.dir.display()
            );
        }
        Ok(PlanDir { layout, existed })
    }

    /// Writes the plan, the shards' inputs and the script.
    pub(crate) fn write(
        &self,
        plan: &Plan,
        shards: &[Vec<PlannedFile>],
        args: &[OsString],
    ) -> Result<()> {
        let layout = &self.layout;
        layout.create()?;
        plan.save(&layout.dir)?;
        for (k, files) in shards.iter().enumerate() {
            layout.write_inputs(k, files)?;
        }
        let path = layout.script();
        std::fs::write(&path, script(plan, layout, &sbatch_line(args, layout)))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Nothing was submitted: takes back what this run wrote (the directory was new or empty).
    pub(crate) fn withdraw(&self) {
        let dir = &self.layout.dir;
        let _ = std::fs::remove_dir_all(dir);
        if self.existed {
            let _ = std::fs::create_dir(dir);
        }
        // The default parent, `.fanout/`, goes too if nothing else is in it.
        if let Some(parent) = dir.parent().filter(|p| p.ends_with(".fanout")) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// sbatch's options (the script comes last).
pub(crate) fn sbatch_args(config: &Config, plan: &Plan, layout: &Layout) -> Result<Vec<OsString>> {
    let mut args: Vec<OsString> = vec![
        "--job-name=fanout".into(),
        format!("--array=0-{}", plan.shards - 1).into(),
        format!("--cpus-per-task={}", plan.run.jobs * plan.run.threads).into(),
    ];
    // sbatch refuses --mem together with --mem-per-cpu or --mem-per-gpu: the user's wins.
    let user_mem = config
        .slurm()
        .is_some_and(|s| s.args.iter().any(|a| a.starts_with("--mem")));
    if !user_mem {
        args.push(format!("--mem={}M", plan.task_mem_bytes >> 20).into());
    }
    // A requeued task would start its journal again from the top.
    args.push("--no-requeue".into());
    for flag in ["--output=", "--error="] {
        let mut a = OsString::from(flag);
        a.push(layout.log_pattern());
        args.push(a);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut chdir = OsString::from("--chdir=");
    chdir.push(&cwd);
    args.push(chdir);
    if let Some(s) = config.slurm() {
        args.extend(s.args.iter().map(OsString::from));
    }
    Ok(args)
}

/// The sbatch command line, shell-quoted: `sbatch --parsable ARGS… SCRIPT`.
pub(crate) fn sbatch_line(args: &[OsString], layout: &Layout) -> Vec<u8> {
    let mut line = b"sbatch --parsable".to_vec();
    for a in args.iter().chain(std::iter::once(&layout.script().into())) {
        line.push(b' ');
        line.extend_from_slice(&shell_quote(a.as_encoded_bytes()));
    }
    line
}

/// The batch script: every task runs `fanout worker` on its shard. `sbatch` is the command
/// line that submits it, kept in a comment.
pub(crate) fn script(plan: &Plan, layout: &Layout, sbatch: &[u8]) -> Vec<u8> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fanout"));
    let mut s = b"#!/bin/sh\n".to_vec();
    s.extend_from_slice(
        format!(
            "# fanout: {} in {}; submitted with:\n#   ",
            counted(plan.files, "file"),
            counted(plan.shards as u64, "array task")
        )
        .as_bytes(),
    );
    // A comment line: a newline in a path must not end it.
    s.extend(
        sbatch
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b'?' } else { b }),
    );
    s.extend_from_slice(b"\nexec ");
    s.extend_from_slice(&shell_quote(exe.as_os_str().as_encoded_bytes()));
    s.extend_from_slice(b" worker --plan ");
    s.extend_from_slice(&shell_quote(layout.dir.as_os_str().as_encoded_bytes()));
    s.extend_from_slice(b" --shard \"$SLURM_ARRAY_TASK_ID\"\n");
    s
}
