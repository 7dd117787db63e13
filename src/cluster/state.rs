//! Slurm's words for a job array, typed: a submitted job's id and its tasks, job states, what
//! squeue says of each array task, and an ended task's exit code. Parsing only: running the
//! commands is `slurm`'s, acting on what they say is `watch`'s.

use std::collections::HashMap;
use std::fmt;

use serde::{Serialize, Serializer};

/// A submitted job's id, as sbatch printed it (digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobId(String);

impl JobId {
    /// From `sbatch --parsable`'s output: `JOBID` or `JOBID;CLUSTER`.
    pub(crate) fn from_sbatch(stdout: &str) -> Option<JobId> {
        let id = stdout.trim().split(';').next().unwrap_or("");
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| JobId(id.to_string()))
    }

    /// How Slurm's commands name `task` of this job: `JOBID` or `JOBID_K`.
    pub(crate) fn name(&self, task: Task) -> String {
        match task {
            Task::Array => self.0.clone(),
            Task::Index(k) => format!("{}_{k}", self.0),
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which part of a job array a command or a squeue line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    /// The array as a whole. squeue's line for it (`JOBID|…`, no task) holds the tasks that
    /// never got a line of their own, such as those cancelled before they started.
    Array,
    /// Array task K (`JOBID_K`).
    Index(usize),
}

/// A job (or array task) state, as squeue's `%T` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    // Not over: the task may still run or change.
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Stopped,
    Signaling,
    StageOut,
    Resizing,
    Requeued,
    RequeueHold,
    RequeueFed,
    ResvDelHold,
    // Over.
    Completed,
    Failed,
    Cancelled,
    Timeout,
    OutOfMemory,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    Revoked,
    SpecialExit,
    /// Slurm no longer knows the job (it ended long enough ago). fanout's own word: `ENDED`.
    Forgotten,
    /// A state this fanout does not know (a newer Slurm's): taken to be over, so that the
    /// submitter never waits for a task forever.
    Other(String),
}

impl State {
    /// Every state with a name of its own, for parsing.
    const NAMED: [State; 25] = [
        State::Pending,
        State::Configuring,
        State::Running,
        State::Completing,
        State::Suspended,
        State::Stopped,
        State::Signaling,
        State::StageOut,
        State::Resizing,
        State::Requeued,
        State::RequeueHold,
        State::RequeueFed,
        State::ResvDelHold,
        State::Completed,
        State::Failed,
        State::Cancelled,
        State::Timeout,
        State::OutOfMemory,
        State::NodeFail,
        State::Preempted,
        State::BootFail,
        State::Deadline,
        State::Revoked,
        State::SpecialExit,
        State::Forgotten,
    ];

    pub(crate) fn parse(s: &str) -> State {
        State::NAMED
            .iter()
            .find(|state| state.name() == s)
            .cloned()
            .unwrap_or_else(|| State::Other(s.to_string()))
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            State::Pending => "PENDING",
            State::Configuring => "CONFIGURING",
            State::Running => "RUNNING",
            State::Completing => "COMPLETING",
            State::Suspended => "SUSPENDED",
            State::Stopped => "STOPPED",
            State::Signaling => "SIGNALING",
            State::StageOut => "STAGE_OUT",
            State::Resizing => "RESIZING",
            State::Requeued => "REQUEUED",
            State::RequeueHold => "REQUEUE_HOLD",
            State::RequeueFed => "REQUEUE_FED",
            State::ResvDelHold => "RESV_DEL_HOLD",
            State::Completed => "COMPLETED",
            State::Failed => "FAILED",
            State::Cancelled => "CANCELLED",
            State::Timeout => "TIMEOUT",
            State::OutOfMemory => "OUT_OF_MEMORY",
            State::NodeFail => "NODE_FAIL",
            State::Preempted => "PREEMPTED",
            State::BootFail => "BOOT_FAIL",
            State::Deadline => "DEADLINE",
            State::Revoked => "REVOKED",
            State::SpecialExit => "SPECIAL_EXIT",
            State::Forgotten => "ENDED",
            State::Other(s) => s,
        }
    }

    /// The task will not change any more.
    pub(crate) fn is_ended(&self) -> bool {
        !matches!(
            self,
            State::Pending
                | State::Configuring
                | State::Running
                | State::Completing
                | State::Suspended
                | State::Stopped
                | State::Signaling
                | State::StageOut
                | State::Resizing
                | State::Requeued
                | State::RequeueHold
                | State::RequeueFed
                | State::ResvDelHold
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// In the journal a state is its name, as Slurm prints it.
impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One array task as squeue lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskState {
    pub state: State,
    /// Slurm's reason (why pending, or why it failed), when it gives one (not `None`).
    pub reason: Option<String>,
    /// The node it runs or ran on, once it started.
    pub node: Option<String>,
}

impl TaskState {
    /// A task of a job Slurm has forgotten: it ended, nothing more is known.
    pub(crate) fn forgotten() -> TaskState {
        TaskState {
            state: State::Forgotten,
            reason: Some("no longer known to Slurm".into()),
            node: None,
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.state.is_ended()
    }
}

/// What squeue says of one job array: `squeue --array --format=%i|%T|%r|%N`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ArrayStates {
    tasks: HashMap<usize, TaskState>,
    /// The array's own line, if squeue printed one.
    array: Option<TaskState>,
}

impl ArrayStates {
    /// Lines of `JOBID_TASK|STATE|REASON|NODE`. Tasks still pending may share one line,
    /// `JOBID_[2-5,7%4]`; tasks cancelled before they started are on the array's own line,
    /// `JOBID|CANCELLED|…`, without a task.
    pub(crate) fn parse(text: &str) -> ArrayStates {
        let mut states = ArrayStates::default();
        for line in text.lines() {
            let mut f = line.trim().splitn(4, '|');
            let (Some(id), Some(state)) = (f.next(), f.next()) else {
                continue;
            };
            let task = TaskState {
                state: State::parse(state),
                reason: f
                    .next()
                    .filter(|r| !r.is_empty() && *r != "None")
                    .map(str::to_string),
                node: Some(f.next().unwrap_or("").trim())
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
            };
            match id.split_once('_') {
                Some((_, spec)) => {
                    for k in task_ids(spec) {
                        states.tasks.insert(k, task.clone());
                    }
                }
                None => states.array = Some(task),
            }
        }
        states
    }

    /// Whether any task (or the array's own line) is not over yet.
    pub(crate) fn any_live(&self) -> bool {
        self.tasks
            .values()
            .chain(self.array.as_ref())
            .any(|t| !t.is_ended())
    }

    /// Task K's state: its own line, else the array's (which speaks for every task without a
    /// line of its own); `None` when squeue said nothing of it.
    pub(crate) fn of(&self, k: usize) -> Option<&TaskState> {
        self.tasks.get(&k).or(self.array.as_ref())
    }
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

/// How an ended task's batch script ended: scontrol's `ExitCode=CODE:SIGNAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitCode {
    pub code: i32,
    /// The signal that killed it, 0 if none.
    pub signal: i32,
}

impl ExitCode {
    /// From `scontrol --oneliner show job JOBID_K`.
    pub(crate) fn from_scontrol(text: &str) -> Option<ExitCode> {
        let field = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ExitCode="))?;
        let (code, signal) = field.split_once(':')?;
        Some(ExitCode {
            code: code.parse().ok()?,
            signal: signal.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines() {
        let s = ArrayStates::parse(
            "24_0|COMPLETED|None|localhost\n24_3|PENDING|Resources|\n24_1|FAILED|JobLaunchFailure|n1\n24_[5-6,9%2]|CANCELLED|Resources|\n24|CANCELLED|None|\n",
        );
        let done = s.of(0).unwrap();
        assert_eq!(done.state, State::Completed);
        assert_eq!(done.reason, None, "Slurm's `None` is no reason");
        assert_eq!(done.node.as_deref(), Some("localhost"));
        let pending = s.of(3).unwrap();
        assert_eq!(pending.state, State::Pending);
        assert_eq!(pending.reason.as_deref(), Some("Resources"));
        assert_eq!(pending.node, None);
        assert!(!pending.is_ended());
        assert!(s.of(1).unwrap().is_ended());
        assert_eq!(s.of(1).unwrap().node.as_deref(), Some("n1"));
        // A range with a throttle: each task its own entry.
        for k in [5, 6, 9] {
            let t = s.of(k).unwrap();
            assert_eq!(t.state, State::Cancelled);
            assert_eq!(t.reason.as_deref(), Some("Resources"), "task {k}");
        }
        // Tasks without a line of their own have the array's.
        let rest = s.of(7).unwrap();
        assert_eq!(rest.state, State::Cancelled);
        assert_eq!(rest.reason, None);
        assert!(rest.is_ended());
    }

    #[test]
    fn without_the_arrays_own_line_unlisted_tasks_are_unknown() {
        let s = ArrayStates::parse("7_0|RUNNING|None|n2\n7_[1-2]|PENDING|Priority|\n");
        assert_eq!(s.of(0).unwrap().state, State::Running);
        assert_eq!(s.of(2).unwrap().state, State::Pending);
        assert_eq!(s.of(3), None);
        assert_eq!(ArrayStates::parse(""), ArrayStates::default());
        // Lines that are not squeue's are passed over.
        assert_eq!(ArrayStates::parse("garbage\n\n").of(0), None);
    }

    #[test]
    fn task_ids_of_ranges_lists_and_throttles() {
        assert_eq!(task_ids("3"), vec![3]);
        assert_eq!(task_ids("[2-4,7%2]"), vec![2, 3, 4, 7]);
        assert_eq!(task_ids("[0-1]"), vec![0, 1]);
        assert_eq!(task_ids("[x-2,5]"), vec![5]);
    }

    #[test]
    fn states_parse_to_their_names_and_back() {
        for state in State::NAMED {
            assert_eq!(State::parse(state.name()), state);
            assert_eq!(state.to_string(), state.name());
        }
        assert_eq!(State::parse("RUNNING"), State::Running);
        assert_eq!(State::parse("OUT_OF_MEMORY"), State::OutOfMemory);
        assert_eq!(State::parse("ENDED"), State::Forgotten);
        let new = State::parse("LAUNCH_FAILED");
        assert_eq!(new, State::Other("LAUNCH_FAILED".into()));
        assert_eq!(new.to_string(), "LAUNCH_FAILED");
        assert_eq!(serde_json::to_value(&new).unwrap(), "LAUNCH_FAILED");
        assert_eq!(serde_json::to_value(State::Timeout).unwrap(), "TIMEOUT");
    }

    #[test]
    fn which_states_are_over() {
        let live = [
            "PENDING",
            "CONFIGURING",
            "RUNNING",
            "COMPLETING",
            "SUSPENDED",
            "STOPPED",
            "SIGNALING",
            "STAGE_OUT",
            "RESIZING",
            "REQUEUED",
            "REQUEUE_HOLD",
            "REQUEUE_FED",
            "RESV_DEL_HOLD",
        ];
        for s in live {
            assert!(!State::parse(s).is_ended(), "{s}");
        }
        let over = [
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
            "PREEMPTED",
            "BOOT_FAIL",
            "DEADLINE",
            "REVOKED",
            "SPECIAL_EXIT",
            "ENDED",
            "SOMETHING_NEW",
        ];
        for s in over {
            assert!(State::parse(s).is_ended(), "{s}");
        }
        assert!(TaskState::forgotten().is_ended());
    }

    #[test]
    fn job_ids_and_task_names() {
        let id = JobId::from_sbatch("1234\n").unwrap();
        assert_eq!(id.to_string(), "1234");
        assert_eq!(id.name(Task::Array), "1234");
        assert_eq!(id.name(Task::Index(5)), "1234_5");
        assert_eq!(
            JobId::from_sbatch("77;cluster2\n").unwrap().to_string(),
            "77"
        );
        assert_eq!(JobId::from_sbatch(""), None);
        assert_eq!(JobId::from_sbatch("Submitted batch job 9"), None);
    }

    #[test]
    fn exit_codes_from_scontrol() {
        let text = "JobId=17 ArrayJobId=16 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=0:9 DerivedExitCode=0:0";
        assert_eq!(
            ExitCode::from_scontrol(text),
            Some(ExitCode { code: 0, signal: 9 })
        );
        assert_eq!(
            ExitCode::from_scontrol("JobState=FAILED ExitCode=3:0"),
            Some(ExitCode { code: 3, signal: 0 })
        );
        assert_eq!(
            ExitCode::from_scontrol("slurm_load_jobs error: Invalid job id specified"),
            None
        );
    }
}
