//! Talking to Slurm through its commands: sbatch to submit, squeue to watch, scancel to stop,
//! scontrol for an ended task's exit code, each with a deadline. No Slurm library: the commands
//! are what every cluster has, across Slurm versions. What they print is parsed into types by
//! `state`.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::state::{ArrayStates, ExitCode, JobId, Task};

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

/// What to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Tasks that have not started: cancelled outright.
    Pending,
    /// Send a signal to the workers of running tasks only (not their jobs): they stop or
    /// drain their jobs themselves and write their records.
    Signal(WorkerSignal),
    /// Slurm's own cancel of everything (SIGTERM to every process, SIGKILL after KillWait).
    All,
}

/// What a running worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerSignal {
    /// SIGHUP: start no new job, let the running ones finish.
    Hup,
    /// SIGTERM: stop the running jobs, write their records.
    Term,
}

impl WorkerSignal {
    fn name(self) -> &'static str {
        match self {
            WorkerSignal::Hup => "HUP",
            WorkerSignal::Term => "TERM",
        }
    }
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

    /// Submits `script` (on sbatch's standard input) with `sbatch --parsable ARGS…`; returns
    /// the job id.
    pub(crate) fn submit(&self, args: &[OsString], script: &[u8]) -> Result<JobId> {
        // Its own process group: a Ctrl-C meant for fanout must not kill sbatch half-way (fanout
        // then cancels what was submitted).
        let mut child = Command::new(&self.sbatch)
            .process_group(0)
            .arg("--parsable")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run sbatch")?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, script).context("cannot run sbatch")?;
        }
        let out = child.wait_with_output().context("cannot run sbatch")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!("sbatch refused the job array: {}", one_line(&err));
        }
        match JobId::from_sbatch(&stdout) {
            Some(id) => Ok(id),
            None => bail!("sbatch printed no job id: {}", one_line(&stdout)),
        }
    }

    /// Every array task of `job` that Slurm still knows, ended ones included. `Ok(None)` when
    /// Slurm no longer knows the job at all.
    pub(crate) fn tasks(&self, job: &JobId) -> Result<Option<ArrayStates>> {
        let out = Command::new(&self.squeue)
            .args(["--noheader", "--array", "--states=all", "--jobs"])
            .arg(job.name(Task::Array))
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
        Ok(Some(ArrayStates::parse(&String::from_utf8_lossy(
            &out.stdout,
        ))))
    }

    /// Stops `task` of `job` (or the whole array) as `what` says.
    pub(crate) fn stop(&self, job: &JobId, task: Task, what: Stop) -> Result<()> {
        let mut cmd = Command::new(&self.scancel);
        match what {
            Stop::Pending => cmd.arg("--state=PENDING"),
            Stop::Signal(sig) => cmd.args(["--batch", &format!("--signal={}", sig.name())]),
            Stop::All => &mut cmd,
        };
        let out = cmd
            .arg(job.name(task))
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

    /// An ended task's exit code, from scontrol, if it still knows.
    pub(crate) fn exit_code(&self, job: &JobId, task: usize) -> Option<ExitCode> {
        let scontrol = self.scontrol.as_ref()?;
        let out = Command::new(scontrol)
            .args(["--oneliner", "show", "job", &job.name(Task::Index(task))])
            .stdin(Stdio::null())
            .bounded_output(EXIT_CODE_LIMIT)
            .ok()?;
        ExitCode::from_scontrol(&String::from_utf8_lossy(&out.stdout))
    }
}

/// `--resume` of a run that submitted Slurm job `job` and did not follow it to its end: refused
/// while any of its tasks is queued or running (they would transform files this run is about
/// to run again); fine once Slurm says every task ended, or no longer knows the job.
pub(crate) fn refuse_if_running(job: &str) -> Result<()> {
    let Some(id) = JobId::from_sbatch(job) else {
        bail!("its run submitted Slurm job '{job}', which is not a job id");
    };
    let slurm = Slurm::find().map_err(|_| {
        anyhow::anyhow!(
            "its run submitted Slurm job {job} and stopped without following it to its end; squeue is not on PATH to tell whether it still runs: resume where Slurm's commands are"
        )
    })?;
    let running = match slurm.tasks(&id)? {
        None => false,
        Some(states) => states.any_live(),
    };
    if running {
        bail!(
            "its run's Slurm job {job} is still queued or running (its submitter was stopped): wait until it ends (squeue --job {job}) or cancel it (scancel {job}), then resume"
        );
    }
    Ok(())
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
}
