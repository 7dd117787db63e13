//! Watching the array through Slurm: squeue for each task's state (asked at most once a
//! second: it goes to the controller), scancel to pass a stop on. It knows nothing of the
//! tasks' files, which `follow` reads.

use anyhow::Result;

use super::follow::Intake;
use super::slurm::{Slurm, Stop, WorkerSignal};
use super::state::{ExitCode, JobId, State, Task, TaskState};
use crate::cancel::{Cancel, Level};

/// What Slurm says of the array's tasks, and what fanout has asked of it.
pub(crate) struct Watch<'a> {
    slurm: &'a Slurm,
    pub job: JobId,
    /// Each task's last known state; `None` until squeue lists it.
    states: Vec<Option<TaskState>>,
    /// Tasks whose workers were sent the current stop.
    signalled: Vec<bool>,
    /// How far the stop has gone: what has been asked of Slurm.
    stop_sent: Level,
    /// Set once fanout itself cancelled tasks.
    pub cancelled: bool,
    /// squeue failures in a row.
    squeue_errors: u32,
    /// Whether squeue has ever listed the job: "unknown" only means "ended" after that.
    seen: bool,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(slurm: &'a Slurm, job: JobId, tasks: usize) -> Watch<'a> {
        Watch {
            slurm,
            job,
            states: vec![None; tasks],
            signalled: vec![false; tasks],
            stop_sent: Level::Run,
            cancelled: false,
            squeue_errors: 0,
            seen: false,
        }
    }

    /// Task K's last known state.
    pub(crate) fn state(&self, k: usize) -> Option<&TaskState> {
        self.states[k].as_ref()
    }

    /// Task K's exit code, if it ended and Slurm still knows.
    pub(crate) fn exit_code(&self, k: usize) -> Option<ExitCode> {
        self.slurm.exit_code(&self.job, k)
    }

    /// Every task ended.
    pub(crate) fn all_ended(&self) -> bool {
        self.states
            .iter()
            .all(|s| s.as_ref().is_some_and(TaskState::is_ended))
    }

    /// Tasks running now.
    pub(crate) fn running(&self) -> u64 {
        self.states
            .iter()
            .filter(|s| s.as_ref().is_some_and(|t| t.state == State::Running))
            .count() as u64
    }

    /// Asks squeue for the tasks' states.
    pub(crate) fn poll(&mut self, intake: &mut dyn Intake) {
        match self.slurm.tasks(&self.job) {
            Ok(Some(listed)) => {
                self.squeue_errors = 0;
                self.seen = true;
                for (k, state) in self.states.iter_mut().enumerate() {
                    // A task squeue says nothing of keeps what was known.
                    if let Some(t) = listed.of(k) {
                        *state = Some(t.clone());
                    }
                }
            }
            Ok(None) if !self.seen => {
                // Not known yet (a controller that is slow to answer for a new job): ask
                // again; it counts as an error if it goes on.
                self.squeue_errors += 1;
                if self.squeue_errors.is_multiple_of(30) {
                    intake.notice(&format!(
                        "squeue does not know job {} (yet); asking again",
                        self.job
                    ));
                }
            }
            Ok(None) => {
                // Slurm forgot the job (it ended long enough ago): nothing will change.
                for state in &mut self.states {
                    if !state.as_ref().is_some_and(TaskState::is_ended) {
                        *state = Some(TaskState::forgotten());
                    }
                }
            }
            Err(err) => {
                self.squeue_errors += 1;
                if self.squeue_errors == 1 || self.squeue_errors.is_multiple_of(30) {
                    intake.notice(&format!("{err:#} (asking again)"));
                }
            }
        }
    }

    /// Passes a stop on to Slurm when the level rose: pending tasks are cancelled; running
    /// workers get SIGHUP (drain: their running jobs finish) or SIGTERM (their jobs are stopped,
    /// records written); a second Ctrl-C has Slurm kill everything.
    pub(crate) fn stop_if_asked(&mut self, cancel: &Cancel, intake: &mut dyn Intake, quiet: bool) {
        let level = cancel.level();
        if level <= self.stop_sent {
            return;
        }
        self.stop_sent = level;
        self.cancelled = true;
        if !quiet {
            let what = match level {
                Level::Drain => "cancelling its pending tasks; running tasks finish their running jobs",
                Level::Stop => "cancelling its pending tasks; running tasks stop their jobs and write their records (Ctrl-C again to kill them at once)",
                _ => "killing every task",
            };
            intake.notice(&format!("stopping Slurm job {}: {what}", self.job));
        }
        self.signalled.fill(false);
        self.keep_stopping(intake);
    }

    /// Once stopping, every poll: tasks that were pending a moment ago may have started since.
    pub(crate) fn keep_stopping(&mut self, intake: &mut dyn Intake) {
        let level = self.stop_sent;
        if level == Level::Run {
            return;
        }
        let mut report = |r: Result<()>| {
            if let Err(err) = r {
                intake.notice(&format!("{err:#}"));
            }
        };
        if level == Level::Hard {
            if !self.signalled.iter().all(|&s| s) {
                report(self.slurm.stop(&self.job, Task::Array, Stop::All));
                self.signalled.fill(true);
            }
            return;
        }
        let pending = self
            .states
            .iter()
            .any(|s| s.as_ref().is_none_or(|t| t.state == State::Pending));
        if pending {
            report(self.slurm.stop(&self.job, Task::Array, Stop::Pending));
        }
        let signal = if level == Level::Drain {
            WorkerSignal::Hup
        } else {
            WorkerSignal::Term
        };
        for (k, state) in self.states.iter().enumerate() {
            let running = state
                .as_ref()
                .is_some_and(|t| !t.is_ended() && t.state != State::Pending);
            if running && !self.signalled[k] {
                // Marked only once Slurm took it: a failed scancel is tried again next poll.
                let sent = self
                    .slurm
                    .stop(&self.job, Task::Index(k), Stop::Signal(signal));
                self.signalled[k] = sent.is_ok();
                report(sent);
            }
        }
    }
}
