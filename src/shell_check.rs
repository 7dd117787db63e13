//! A `-s` script that `sh` cannot parse (an unterminated quote, a `do` without `done`) would
//! fail every job with the same syntax error. `sh -n` reads the script once, as the first job
//! would run it, without running anything; a syntax error stops the run before it starts.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::template::JobValues;

/// Refuses a `-s` script that the shell the jobs use cannot parse. Substituted values are
/// quoted, so one job's script stands for every job's.
pub(crate) fn check(config: &Config) -> Result<()> {
    if !config.run.shell {
        return Ok(());
    }
    let Some(sh) = config.program.as_deref() else {
        return Ok(());
    };
    let argv = config.template.expand(&JobValues {
        path: Path::new("file"),
        job: 1,
        slot: 1,
        threads: 1,
        out: Some(Path::new("out")),
        rel_at: None,
        mem_mib: 1,
        url: None,
    });
    // `sh -c SCRIPT` becomes `sh -n -c SCRIPT`: read, never run.
    let out = Command::new(sh)
        .arg("-n")
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("-s: cannot run {} -n to check the script", sh.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("syntax error");
        bail!(
            "-s: sh cannot parse the script, so every job would fail: {}",
            reason.trim()
        );
    }
    Ok(())
}
