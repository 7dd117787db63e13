//! What is submitted: the plan directory (chosen, claimed, written, and taken back if sbatch
//! refuses), sbatch's options, and the batch script with which every task runs `fanout worker`
//! on its shard.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::plan::{Layout, Plan, Sealed};
use super::private;
use crate::config::Config;
use crate::error::counted;
use crate::template::shell_quote;

/// The plan directory: `--plan-dir`, else `.fanout/slurm-TIME-PID-RANDOM`, absolute.
pub(crate) fn plan_dir(config: &Config) -> Result<PathBuf> {
    let given = config.slurm().and_then(|s| s.plan_dir.clone());
    let dir = match given {
        Some(d) => d,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            PathBuf::from(format!(
                "{DEFAULT_PARENT}/slurm-{stamp}-{}-{}",
                std::process::id(),
                private::random_suffix()?
            ))
        }
    };
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

/// Where plans go without `--plan-dir`, under the submit directory.
const DEFAULT_PARENT: &str = ".fanout";

/// This run's plan directory, claimed: created private, or given (`--plan-dir`) empty and this
/// user's alone.
pub(crate) struct PlanDir {
    pub layout: Layout,
    existed: bool,
}

impl PlanDir {
    /// Creates the plan directory (0700). A given one may exist if it is empty, owned by this
    /// user and writable by nobody else (it is made 0700); the default parent `.fanout` the
    /// same. Old records in a used directory would be taken for this run's.
    pub(crate) fn claim(config: &Config) -> Result<PlanDir> {
        let layout = Layout {
            dir: plan_dir(config)?,
        };
        let given = config.slurm().is_some_and(|s| s.plan_dir.is_some());
        let dir = &layout.dir;
        let existed = std::fs::symlink_metadata(dir).is_ok();
        if existed {
            private::check_owned(dir, "--plan-dir")?;
            if std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) {
                bail!(
                    "--plan-dir {} is not empty: give a new or empty directory",
                    dir.display()
                );
            }
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        } else {
            let parent = dir.parent().unwrap_or(Path::new("/"));
            if given {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            } else {
                private::ensure_dir(parent, "the plans' directory")?;
            }
            private::create_dir(dir)?;
        }
        Ok(PlanDir { layout, existed })
    }

    /// Writes the sealed plan, the shards' inputs and the script (a copy: sbatch reads the
    /// script from fanout).
    pub(crate) fn write(&self, sealed: &Sealed, script: &[u8]) -> Result<()> {
        let layout = &self.layout;
        layout.create()?;
        layout.write_sealed(sealed)?;
        private::write_file(&layout.script(), script)
    }

    /// Nothing was submitted: takes back what this run wrote (the directory was new or empty).
    pub(crate) fn withdraw(&self) {
        let dir = &self.layout.dir;
        let _ = std::fs::remove_dir_all(dir);
        if self.existed {
            let _ = private::create_dir(dir);
        }
        // The default parent, `.fanout/`, goes too if nothing else is in it.
        if let Some(parent) = dir.parent().filter(|p| p.ends_with(DEFAULT_PARENT)) {
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
        .is_some_and(|s| s.args.iter().any(|a| sets_memory(a)));
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

/// Whether an sbatch option sizes the task's memory (`--mem`, `--mem-per-cpu`, `--mem-per-gpu`,
/// alone or with `=`): then fanout's own `--mem` is left out. `--mem-bind` does not size it.
fn sets_memory(arg: &str) -> bool {
    ["--mem", "--mem-per-cpu", "--mem-per-gpu"].iter().any(|o| {
        arg.strip_prefix(o)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    })
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

/// The batch script: every task runs `fanout worker` on its shard, with the digest of the plan
/// it must find. `sbatch` is the command line that submits it, kept in a comment.
pub(crate) fn script(plan: &Plan, layout: &Layout, sbatch: &[u8], digest: &str) -> Vec<u8> {
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
    s.extend_from_slice(b" --shard \"$SLURM_ARRAY_TASK_ID\" --plan-sha256 ");
    s.extend_from_slice(digest.as_bytes());
    s.push(b'\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_memory_sizes_replace_fanouts_mem() {
        for a in [
            "--mem",
            "--mem=2G",
            "--mem-per-cpu=1G",
            "--mem-per-cpu",
            "--mem-per-gpu=4G",
        ] {
            assert!(sets_memory(a), "{a}");
        }
        for a in [
            "--mem-bind=local",
            "--mem-bind",
            "--memory=1",
            "--mem_per_cpu=1G",
            "--partition=mem",
            "--mail-user=x",
        ] {
            assert!(!sets_memory(a), "{a}");
        }
    }
}
