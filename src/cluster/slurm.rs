//! Talking to Slurm through its commands: sbatch to submit, squeue to watch, scancel to stop,
//! scontrol for an ended task's exit code. No Slurm library: the commands are what every
//! cluster has, across Slurm versions.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long squeue or scancel may take before the attempt counts as failed (and is retried):
/// a controller that does not answer must not stall the watch.
const ASK_LIMIT: Duration = Duration::from_secs(20);
/// How long scontrol may take for one ended task's exit code (only a detail of the reason).
const EXIT_CODE_LIMIT: Duration = Duration::from_secs(3);

/// `Command::output` with a deadline: past it the command is killed and an error returned.
trait BoundedOutput {
    fn bounded_output(&mut self, limit: Duration) -> std::io::Result<Output>;
}

impl BoundedOutput for Command {
    fn bounded_output(&mut self, limit: Duration) -> std::io::Result<Output> {
        let mut child = self.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = read(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = read(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", limit.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }
}

/// The Slurm commands, resolved on PATH once.
pub(crate) struct Slurm {
    sbatch: PathBuf,
    squeue: PathBuf,
    scancel: PathBuf,
    scontrol: Option<PathBuf>,
}

/// One array task as squeue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskState {
    pub task: usize,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `OUT_OF_MEMORY`, `TIMEOUT`, `CANCELLED`, …
    pub state: String,
    /// Slurm's reason (why pending, or why it failed).
    pub reason: String,
    /// The node it ran on, if it started.
    pub node: String,
}

impl TaskState {
    /// The task will not change any more.
    pub(crate) fn ended(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
                | "RESV_DEL_HOLD"
        )
    }
}

/// What to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Tasks that have not started: cancelled outright.
    Pending,
    /// Send a signal to the workers of running tasks only (not their jobs): they stop or
    /// drain their jobs themselves and write their records.
    Signal(&'static str),
    /// Slurm's own cancel of everything (SIGTERM to every process, SIGKILL after KillWait).
    All,
}

impl Slurm {
    pub(crate) fn find() -> Result<Slurm> {
        let find = |name: &str| {
            which::which(name).map_err(|_| {
                anyhow::anyhow!(
                    "--executor slurm: {name} is not on PATH (run fanout where Slurm's commands are, e.g. a login node)"
                )
            })
        };
        Ok(Slurm {
            sbatch: find("sbatch")?,
            squeue: find("squeue")?,
            scancel: find("scancel")?,
            scontrol: which::which("scontrol").ok(),
        })
    }

    /// Submits with `sbatch --parsable ARGS…`; returns the job id.
    pub(crate) fn submit(&self, args: &[OsString]) -> Result<String> {
        // Its own process group: a Ctrl-C meant for fanout must not kill sbatch half-way (fanout
        // then cancels what was submitted).
        let out = Command::new(&self.sbatch)
            .process_group(0)
            .arg("--parsable")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run sbatch")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!("sbatch refused the job array: {}", one_line(&err));
        }
        // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
        let id = stdout.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("sbatch printed no job id: {}", one_line(&stdout));
        }
        Ok(id)
    }

    /// Every array task of `job` that Slurm still knows, ended ones included. `Ok(None)` when
    /// Slurm no longer knows the job at all.
    pub(crate) fn tasks(&self, job: &str) -> Result<Option<Vec<TaskState>>> {
        let out = Command::new(&self.squeue)
            .args(["--noheader", "--array", "--states=all", "--jobs", job])
            .args(["--format=%i|%T|%r|%N"])
            .stdin(Stdio::null())
            .bounded_output(ASK_LIMIT)
            .context("cannot run squeue")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("Invalid job id") {
                return Ok(None);
            }
            bail!("squeue failed: {}", one_line(&err));
        }
        Ok(Some(parse_squeue(&String::from_utf8_lossy(&out.stdout))))
    }

    pub(crate) fn stop(&self, job: &str, what: Stop) -> Result<()> {
        let mut cmd = Command::new(&self.scancel);
        match what {
            Stop::Pending => cmd.arg("--state=PENDING"),
            Stop::Signal(sig) => cmd.args(["--batch", &format!("--signal={sig}")]),
            Stop::All => &mut cmd,
        };
        let out = cmd
            .arg(job)
            .stdin(Stdio::null())
            .bounded_output(ASK_LIMIT)
            .context("cannot run scancel")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // Nothing left in that state is not a failure.
            if !err.trim().is_empty()
                && !err.contains("already completing or completed")
                && !err.contains("Invalid job id")
            {
                bail!("scancel failed: {}", one_line(&err));
            }
        }
        Ok(())
    }

    /// An ended task's `ExitCode=CODE:SIGNAL`, from scontrol, if it still knows.
    pub(crate) fn exit_code(&self, job: &str, task: usize) -> Option<(i32, i32)> {
        let scontrol = self.scontrol.as_ref()?;
        let out = Command::new(scontrol)
            .args(["--oneliner", "show", "job", &format!("{job}_{task}")])
            .stdin(Stdio::null())
            .bounded_output(EXIT_CODE_LIMIT)
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ExitCode="))?;
        let (code, sig) = field.split_once(':')?;
        Some((code.parse().ok()?, sig.parse().ok()?))
    }
}

/// Lines of `JOBID_TASK|STATE|REASON|NODE`. Tasks still pending may share one line,
/// `JOBID_[2-5,7%4]`: each gets its own entry. Tasks cancelled before they started are the
/// array's own record, a line without a task (`JOBID|CANCELLED|…`): its entry has task
/// `usize::MAX` and stands for every task without a line of its own.
fn parse_squeue(text: &str) -> Vec<TaskState> {
    let mut tasks = Vec::new();
    for line in text.lines() {
        let mut f = line.trim().splitn(4, '|');
        let (Some(id), Some(state)) = (f.next(), f.next()) else {
            continue;
        };
        let reason = f.next().unwrap_or("").to_string();
        let node = f.next().unwrap_or("").trim().to_string();
        let ids = match id.split_once('_') {
            Some((_, spec)) => task_ids(spec),
            None => vec![usize::MAX],
        };
        for task in ids {
            tasks.push(TaskState {
                task,
                state: state.to_string(),
                reason: reason.clone(),
                node: node.clone(),
            });
        }
    }
    tasks
}

/// `3` → [3]; `[2-4,7%2]` → [2, 3, 4, 7] (`%N` is the throttle, not a task).
fn task_ids(spec: &str) -> Vec<usize> {
    let spec = spec.trim_start_matches('[').trim_end_matches(']');
    let spec = spec.split('%').next().unwrap_or("");
    let mut ids = Vec::new();
    for part in spec.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    ids.extend(a..=b.min(a + 1_000_000));
                }
            }
            None => ids.extend(part.parse::<usize>().ok()),
        }
    }
    ids
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_does_not_answer_is_given_up() {
        let t = Instant::now();
        let err = Command::new("sleep")
            .arg("5")
            .bounded_output(Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2));
        let out = Command::new("echo")
            .arg("hi")
            .bounded_output(Duration::from_secs(5))
            .unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert!(out.status.success());
    }

    #[test]
    fn squeue_lines() {
        let t = parse_squeue(
            "24_0|COMPLETED|None|localhost\n24_3|PENDING|Resources|\n24_1|FAILED|JobLaunchFailure|n1\n24_[5-6,9%2]|CANCELLED|Resources|\n24|CANCELLED|None|\n",
        );
        assert_eq!(t.len(), 7);
        assert_eq!(t[6].task, usize::MAX);
        assert_eq!(t[1].task, 3);
        assert_eq!(t[1].node, "");
        assert!(!t[1].ended());
        assert!(t[0].ended() && t[2].ended());
        let cancelled: Vec<usize> = t[3..].iter().map(|t| t.task).collect();
        assert_eq!(cancelled, vec![5, 6, 9, usize::MAX]);
        assert!(t[3..].iter().all(TaskState::ended));
    }
}
